"""Metrics collector: parses training output into observation-log records.

A standalone package (it imports nothing from `katib`) so that it can also run as the
metrics-collector sidecar program: `python -m collector -m accuracy -path metrics.log`."""
from collector.goregex import RegexError, compile_go, go_quote
from collector.parse import (
    DEFAULT_FILTER,
    ZERO_TIME,
    FilterError,
    MetricLog,
    compile_filter,
    is_rfc3339,
    line_timestamp,
    parse_lines,
    parse_text,
    split_list,
    validate_filter,
)

__all__ = [
    "DEFAULT_FILTER", "ZERO_TIME", "FilterError", "MetricLog", "RegexError", "compile_filter",
    "compile_go", "go_quote", "is_rfc3339", "line_timestamp", "parse_lines", "parse_text",
    "split_list", "validate_filter",
]
