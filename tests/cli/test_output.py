"""How commands print (cli/output.py): a table cell shows a value's control characters as
escapes, so that text from the directory or the data (a display name a person chose) cannot
drive the operator's terminal: clear the screen, rewrite or hide rows, set the clipboard."""

from __future__ import annotations

import unicodedata

import pytest

from datapolicy.cli.output import print_table

HOSTILE = [
    "\x1b[2J",  # clear the screen
    "\x1b[1A\x1b[2K",  # move up and erase a line: hide the row above
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: write the clipboard
    "\x9b31m",  # an 8-bit CSI
    "\x00\x7f",
    "\u202eecila",  # right-to-left override: shows as "alice"
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_shows_control_characters_escaped(capsys, value):
    print_table(("id", "displayName"), [("1", f"Eve{value}!")])
    printed = capsys.readouterr().out
    controls = [c for c in value if unicodedata.category(c) in ("Cc", "Cf")]
    assert controls
    assert not any(control in printed for control in controls)
    assert "Eve\\" in printed
    assert "!" in printed


def test_plain_text_is_shown_as_it_is(capsys):
    print_table(("id", "displayName"), [("1", "Zoë O'Brien-Łukasiewicz 李")])
    assert "Zoë O'Brien-Łukasiewicz 李" in capsys.readouterr().out
