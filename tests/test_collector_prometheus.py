"""collector.prometheus: the text exposition format as the PrometheusMetric collector reads it."""
from __future__ import annotations

from collector.prometheus import parse_exposition, samples

TEXT = """# HELP accuracy Validation accuracy.
# TYPE accuracy gauge
accuracy 0.5
accuracy{split="val",note="a \\"quoted\\" }brace"} 0.75 1700000000000
loss NaN
loss{x="1"} +Inf
accuracy_total 3
accuracy_bucket{le="0.5"} 2
   accuracy   0.25
accuracy not-a-number
garbage {{{
"""


def test_wanted_samples_with_labels_values_and_timestamps():
    got = samples(TEXT, ["accuracy", "loss"])
    assert [(n, v, t) for n, _l, v, t in got] == [
        ("accuracy", "0.5", None), ("accuracy", "0.75", 1_700_000_000.0), ("loss", "NaN", None),
        ("loss", "+Inf", None), ("accuracy", "0.25", None)]
    assert got[1][1] == '{split="val",note="a \\"quoted\\" }brace"}'


def test_records_are_stamped_with_their_own_time_or_the_scrape():
    logs = parse_exposition(TEXT, ["accuracy"], scraped_at=1.5)
    assert [(log.timestamp, log.value) for log in logs] == [
        ("1970-01-01T00:00:01.500Z", "0.5"), ("2023-11-14T22:13:20.000Z", "0.75"), ("1970-01-01T00:00:01.500Z", "0.25")]


def test_names_match_exactly():
    assert samples(TEXT, ["accuracy_t", "acc"]) == []
    assert [v for _n, _l, v, _t in samples(TEXT, ["accuracy_total"])] == ["3"]
