"""Durations as people write them in a command line or a configuration file: a whole number of
seconds, minutes, hours or days (`90s`, `10m`, `1h`, `30d`). One parser, so that `datapolicy
token --expires`, `[engine] package_retention` and `[erasure] receipt_retention` read the same
way."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([1-9][0-9]*)([smhd])")


def parse_duration(text: str) -> int:
    """The number of seconds `text` names; ValueError saying what a duration looks like."""
    match = _DURATION.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 10m, 1h or 7d")
    return int(match[1]) * UNITS[match[2]]
