"""Metric lines → MetricLog records: the StdOut/File collector's parser.

Mirrors Katib v1alpha3 file-metricscollector (shared spec metrics-collection.md §3.2):
a line is considered only if it contains one of the metric names; its first space-separated
token is the timestamp when it is RFC 3339 (else the zero time); every filter's every
non-overlapping match yields (strip(group 1), strip(group 2)) and is kept when the name is
exactly one of the metric names. Values stay strings. Order: lines, then filters, then matches.

Deliberate differences from upstream (also in docs/divergences.md):
- a filter with fewer than two capturing groups is refused (upstream admits `(?:a)(?:b)` or
  `\\(a\\)\\(b\\)` and then silently finds nothing), and an invalid filter raises FilterError
  instead of crashing the collector (upstream compiles without checking and dereferences nil);
- filters run on RE2 (linear time, Go's syntax); Go's messages are kept;
- timestamps must be strict RFC 3339 (Go 1.13 also took a one-digit hour such as `T1:02:03Z`);
- `now=` (off by default) can stamp timestamp-less lines with the reading time.
Kept on purpose: the default filter cuts `1e-05` to `1` (a user filter can take exponents)."""
from __future__ import annotations

import datetime as _dt
import functools
import logging
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from collector.goregex import RegexError, compile_go, go_quote

logger = logging.getLogger(__name__)

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's time.Time{} in RFC 3339
FILTER_FIELD = ".spec.metricsCollectorSpec.source.filter"

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))",
    re.ASCII)
_TWO_BRACKETS = re.compile(r"\(.*\).*\(.*\)")  # upstream's textual `.*\(.*\).*\(.*\).*`
# Go's strings.TrimSpace: unicode.IsSpace (Python's str.strip() also strips \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


@dataclass(frozen=True)
class MetricLog:
    """One reported value: `time_stamp` (RFC 3339) and `metric{name, value}` in the API."""

    timestamp: str
    name: str
    value: str

    def to_api(self) -> dict:
        return {"time_stamp": self.timestamp, "metric": {"name": self.name, "value": self.value}}


class FilterError(ValueError):
    """A metrics filter that cannot be used; str() is the admission message."""


def is_rfc3339(text: str) -> bool:
    """True for an RFC 3339 date-time, fractional seconds optional (Go's time.RFC3339Nano)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if m.group(7) is not None and (int(m.group(7)) > 23 or int(m.group(8)) > 59):
        return False
    try:
        _dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def validate_filter(fmt: str) -> str | None:
    """The admission error for one filter (upstream messages), or None when it is usable."""
    try:
        compiled = compile_go(fmt)
    except RegexError as err:
        return f"Invalid {go_quote(fmt)} in {FILTER_FIELD}: {err}."
    if _TWO_BRACKETS.search(fmt) is None or compiled.groups < 2:
        return f"Invalid {go_quote(fmt)} in {FILTER_FIELD}: two top subexpressions are required"
    return None


@functools.lru_cache(maxsize=256)
def compile_filter(fmt: str):
    """A filter ready for matching; FilterError (admission message) when it is not usable."""
    problem = validate_filter(fmt)
    if problem is not None:
        raise FilterError(problem)
    return compile_go(fmt)


def find_all(pattern, line: str) -> Iterable:
    """Go's FindAllStringSubmatch: successive non-overlapping matches, where an empty match
    right after the previous match is dropped (RE2's finditer moves on as Go does, by one
    character after an empty match, but keeps those)."""
    prev_end = -1
    for m in pattern.finditer(line):
        start, end = m.span()
        if not (start == end == prev_end):
            yield m
        prev_end = end


def line_timestamp(line: str) -> str | None:
    """The line's leading RFC 3339 token, or None (upstream then uses the zero time)."""
    head, sep, _ = line.partition(" ")
    if sep and is_rfc3339(head):
        return head
    return None


def parse_lines(lines: Iterable[str], metric_names: list[str], filters: list[str] | None = None,
                *, now: Callable[[], str] | None = None) -> list[MetricLog]:
    """Every metric record in `lines` (items as split on "\\n"; one trailing "\\n" is ignored).

    `filters` empty or None → the default filter. `now`, when given, stamps lines that carry no
    timestamp with now() (an RFC 3339 string) instead of the zero time upstream uses."""
    patterns = [compile_filter(f) for f in (filters or [DEFAULT_FILTER])]
    wanted = list(dict.fromkeys(metric_names))
    wanted_set = set(wanted)
    logs: list[MetricLog] = []
    for raw in lines:
        line = raw[:-1] if raw.endswith("\n") else raw
        if not any(name in line for name in wanted):
            continue
        stamp = line_timestamp(line)
        if stamp is None:
            logger.debug("metrics line has no timestamp: %.200s", line)
            stamp = now() if now is not None else ZERO_TIME
        for pattern in patterns:
            for m in find_all(pattern, line):
                name = (m.group(1) or "").strip(_GO_SPACE)
                if name in wanted_set:
                    logs.append(MetricLog(stamp, name, (m.group(2) or "").strip(_GO_SPACE)))
    return logs


def parse_text(text: str, metric_names: list[str], filters: list[str] | None = None,
               *, now: Callable[[], str] | None = None) -> list[MetricLog]:
    """Parse a whole metrics file's text (split on "\\n" only, as upstream does)."""
    return parse_lines(text.split("\n"), metric_names, filters, now=now)


def split_list(flag: str) -> list[str]:
    """A `;`-joined sidecar flag (-m, -f) as a list; the empty string is the empty list."""
    return flag.split(";") if flag else []
