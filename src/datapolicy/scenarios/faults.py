"""Fault injection rules: which requests get a fault, and which fault.

A rule matches by method, by route template relative to the API root (`/users/{id}/
exportPersonalData`, `/dataPolicyOperations/{id}`; `{id}` matches one segment, `*` any one
segment, and no route means every route) and optionally by operation id (the `{id}` of a
`/dataPolicyOperations/{id}` request, which the caller reads from the route table's match). A
rule's route is a pattern the client writes, matched segment by segment against the request's
path, not a route of the route table: `{id}` and `*` match any segment, `$count` included, and
a rule may name an unknown path or one id. It then injects either an exact *sequence* of
faults, one per matching request, until it is used up, or one fault at a *rate* (0..1) drawn
from a random generator seeded by the rule, so a run can be repeated exactly.

Faults: `status` (a Graph error body with the chosen status and code, optional `Retry-After`),
`latency` (the request goes on after a delay), `timeout` (no answer for `seconds`, then 504),
`drop` (the connection is closed without an answer).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datapolicy.errors import THROTTLED, InvalidRequest

KINDS = ("status", "latency", "timeout", "drop")
_DEFAULT_CODES = {
    429: ("TooManyRequests", THROTTLED),  # Graph's own default message for the code
    500: ("generalException", "An internal server error occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable."),
    504: ("gatewayTimeout", "The gateway timed out."),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Fault(_Model):
    kind: str = "status"
    status: int = Field(default=503, ge=400, le=599)
    code: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=2000)
    retry_after: int | None = Field(default=None, alias="retryAfter", ge=0, le=86400)
    seconds: float = Field(default=0.0, ge=0, le=600)

    @model_validator(mode="after")
    def _known_kind(self) -> Fault:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        return self

    @property
    def error(self) -> tuple[str, str]:
        """The Graph error code and message of a `status` fault."""
        code, message = _DEFAULT_CODES.get(self.status, ("injectedFault", "An injected fault."))
        return self.code or code, self.message or message


class RuleSpec(_Model):
    """A rule as the admin API receives it."""

    method: str | None = Field(default=None, max_length=10)
    route: str | None = Field(default=None, max_length=300)
    operation_id: str | None = Field(default=None, alias="operationId", max_length=300)
    sequence: tuple[Fault, ...] | None = Field(default=None, min_length=1, max_length=1000)
    fault: Fault | None = None
    rate: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _sequence_or_rate(self) -> RuleSpec:
        if (self.sequence is None) == (self.fault is None):
            raise ValueError("give either 'sequence' (a list of faults) or 'fault' with 'rate'")
        if self.fault is not None and self.rate is None:
            raise ValueError("'fault' needs a 'rate' (1 for every matching request)")
        if self.route is not None and not self.route.startswith("/"):
            raise ValueError("'route' starts with '/' and is relative to the API root")
        return self


def parse_rule(document: Any) -> RuleSpec:
    try:
        return RuleSpec.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(
            f"Invalid fault rule{f' at {where}' if where else ''}: {first['msg']}."
        ) from None


@dataclass
class Rule:
    id: int
    spec: RuleSpec
    matched: int = 0
    _pending: Iterator[Fault] | None = None
    _random: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._random.seed(self.spec.seed)
        if self.spec.sequence is not None:
            self._pending = iter(self.spec.sequence)

    def matches(self, method: str, segments: list[str], operation_id: str | None) -> bool:
        spec = self.spec
        if spec.method is not None and spec.method.upper() != method:
            return False
        if spec.operation_id is not None and operation_id != spec.operation_id:
            return False
        if spec.route is None:
            return True
        template = spec.route.strip("/").split("/")
        if len(template) != len(segments):
            return False
        for part, segment in zip(template, segments, strict=True):
            if part not in ("*", "{id}") and part != segment:
                return False
        return True

    def draw(self) -> Fault | None:
        """The fault for a matching request, if any (advancing the sequence or the generator)."""
        self.matched += 1
        if self._pending is not None:
            return next(self._pending, None)
        fault, rate = self.spec.fault, self.spec.rate or 0.0
        return fault if self._random.random() < rate else None

    @property
    def used_up(self) -> bool:
        spec = self.spec
        return spec.sequence is not None and self.matched >= len(spec.sequence)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            **self.spec.model_dump(by_alias=True, exclude_unset=True),
            "matched": self.matched,
        }


class FaultInjector:
    """The rules in the order they were added; the first that matches a request and yields a
    fault decides. Used-up sequences are removed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._ids = itertools.count(1)

    def add(self, spec: RuleSpec) -> Rule:
        with self._lock:
            rule = Rule(next(self._ids), spec)
            self._rules.append(rule)
            return rule

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != rule_id]
            removed = len(kept) != len(self._rules)
            self._rules = kept
            return removed

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def fault_for(self, method: str, path: str, operation_id: str | None = None) -> Fault | None:
        """The fault for `method` on `path` (relative to the API root), if any rule gives one;
        `operation_id`: the operation a `/dataPolicyOperations/{id}` request addresses."""
        segments = path.strip("/").split("/")
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, segments, operation_id):
                    continue
                fault = rule.draw()
                if rule.used_up:
                    self._rules.remove(rule)
                if fault is not None:
                    return fault
        return None
