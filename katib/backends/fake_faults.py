"""Error injection for FakeBackend: make the next N matching calls fail, before they change
anything (as a refused write) or after they committed (as a reply lost on the way back)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

OPS = ("get", "list", "create", "update", "update_status", "delete")


@dataclass(eq=False)
class Injection:
    """One rule. `times=None` fails forever; `hits` counts the failures produced so far."""

    op: str
    error: BaseException
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    times: int | None = 1
    after: bool = False
    hits: int = 0
    _faults: Faults | None = field(default=None, repr=False)

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else self.times - self.hits

    def cancel(self) -> None:
        if self._faults is not None:
            self._faults.remove(self)

    def _matches(self, op: str, kind: str, namespace: str | None, name: str | None, after: bool) -> bool:
        return (self.op == op and self.after == after and self.kind in (None, kind)
                and self.namespace in (None, namespace) and self.name in (None, name))


class Faults:
    def __init__(self) -> None:
        self._rules: list[Injection] = []
        self._lock = threading.Lock()

    def add(self, rule: Injection) -> Injection:
        if rule.op not in OPS:
            raise ValueError(f"op must be one of {OPS}, not {rule.op!r}")
        if rule.times is not None and rule.times < 1:
            raise ValueError("times must be at least 1 (or None for always)")
        rule._faults = self
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Injection) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def check(self, op: str, kind: str, namespace: str | None = None, name: str | None = None, *,
              after: bool = False) -> None:
        """Raise the error of the first matching rule, using up one of its `times`."""
        if not self._rules:
            return
        with self._lock:
            rule = next((r for r in self._rules if r._matches(op, kind, namespace, name, after)), None)
            if rule is None:
                return
            rule.hits += 1
            if rule.remaining == 0:
                self._rules.remove(rule)
        raise rule.error
