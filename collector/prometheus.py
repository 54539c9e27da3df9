"""PrometheusMetric collector: samples of the trial's Prometheus endpoint → MetricLog records.

Upstream v1alpha3 admits the kind but has no collector for it; ours scrapes the endpoint named
by `source.httpGet` (port, path, scheme) every poll interval while the training runs, keeps
every new sample of the wanted metric names, and reports them when the training ends.

Text exposition format 0.0.4: `# HELP`/`# TYPE` comments; samples `name{label="v",...} value
[timestamp_ms]`. A sample counts when its name is exactly a wanted metric name (labels are not
part of the name); its time is the sample's own timestamp, else the scrape's. `NaN`, `+Inf` and
`-Inf` are kept as Prometheus writes them (the trial's objective skips what does not parse)."""
from __future__ import annotations

import datetime as _dt
import re
import urllib.request
from typing import Iterable

from collector.parse import MetricLog

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^}\"\\]|\"(?:[^\"\\]|\\.)*\")*\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")


def _stamp(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def samples(text: str, metric_names: Iterable[str]) -> list[tuple[str, str, str, float | None]]:
    """(name, labels text, value, timestamp in seconds or None) of each wanted sample."""
    wanted = set(metric_names)
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None or m.group(1) not in wanted:
            continue
        value = m.group(3)
        try:
            float(value)
        except ValueError:
            continue  # not a sample value: a malformed line
        out.append((m.group(1), m.group(2) or "", value, int(m.group(4)) / 1000 if m.group(4) else None))
    return out


def parse_exposition(text: str, metric_names: Iterable[str], *, scraped_at: float) -> list[MetricLog]:
    return [MetricLog(_stamp(scraped_at if at is None else at), name, value)
            for name, _labels, value, at in samples(text, metric_names)]


def fetch(url: str, *, timeout: float = 5.0) -> str:
    """The endpoint's exposition text; OSError when it cannot be read."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return resp.read(16 * 1024 * 1024).decode("utf-8", "replace")


class Scraper:
    """Scrapes `url` on demand and keeps a record per change: a sample with its own timestamp
    once per timestamp, one without whenever its value differs from the previous scrape's
    (a gauge read 100 times at 0.9 is one observation, not 100)."""

    def __init__(self, url: str, metric_names: Iterable[str]):
        self.url = url
        self.names = list(metric_names)
        self.logs: list[MetricLog] = []
        self._last: dict[tuple[str, str], tuple[str, float | None]] = {}
        self.last_error: str | None = None
        self.scrapes = 0

    def once(self, now: float) -> int:
        try:
            text = fetch(self.url)
        except OSError as err:
            self.last_error = str(getattr(err, "reason", err))
            return 0
        self.scrapes += 1
        added = 0
        for name, labels, value, at in samples(text, self.names):
            key = (name, labels)
            if self._last.get(key) == (value, at):
                continue
            self._last[key] = (value, at)
            self.logs.append(MetricLog(_stamp(now if at is None else at), name, value))
            added += 1
        return added
