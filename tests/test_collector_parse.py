"""collector.parse / collector.goregex: the StdOut/File collector's line parsing and filters on RE2
(shared spec metrics-collection.md §3.2, defaults-and-validation.md §2.3)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector import (
    DEFAULT_FILTER,
    ZERO_TIME,
    FilterError,
    MetricLog,
    RegexError,
    compile_go,
    go_quote,
    is_rfc3339,
    parse_lines,
    parse_text,
    split_list,
    validate_filter,
)
from collector.parse import find_all

ROOT = Path(__file__).resolve().parent.parent
Z = ZERO_TIME
EXAMPLE_FILTER = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"
FIELD = ".spec.metricsCollectorSpec.source.filter"


def logs(*triples):
    return [MetricLog(*t) for t in triples]


# -- default filter ---------------------------------------------------------------------------
DEFAULT_CASES = [
    # (id, lines, metric names, expected (timestamp, name, value) triples)
    ("mxnet-line", ["2019-09-24T01:37:26Z INFO     Epoch[0] Validation-accuracy=0.9612"],
     ["Validation-accuracy"], [("2019-09-24T01:37:26Z", "Validation-accuracy", "0.9612")]),
    ("no-timestamp", ["accuracy=0.5"], ["accuracy"], [(Z, "accuracy", "0.5")]),
    ("first-token-not-time", ["INFO accuracy=0.5"], ["accuracy"], [(Z, "accuracy", "0.5")]),
    ("timestamp-without-space", ["2019-09-24T01:37:26Z,accuracy=0.5"], ["accuracy"],
     [(Z, "accuracy", "0.5")]),
    ("timestamp-kept-verbatim", ["2019-09-24T01:37:26.123456789+02:00 accuracy=0.5"],
     ["accuracy"], [("2019-09-24T01:37:26.123456789+02:00", "accuracy", "0.5")]),
    ("impossible-date", ["2019-02-30T01:37:26Z accuracy=0.5"], ["accuracy"],
     [(Z, "accuracy", "0.5")]),
    ("several-metrics-one-line", ["epoch 3: accuracy=0.9 loss=0.25"], ["loss", "accuracy"],
     [(Z, "accuracy", "0.9"), (Z, "loss", "0.25")]),
    ("same-metric-twice", ["loss=0.5 loss=0.4"], ["loss"], [(Z, "loss", "0.5"), (Z, "loss", "0.4")]),
    ("other-names-ignored", ["val_loss=0.3 lr=0.1 loss=0.2"], ["loss"], [(Z, "loss", "0.2")]),
    ("substring-is-not-a-match", ["train_accuracy=0.9"], ["accuracy"], []),
    ("line-without-metric-name", ["x=1 y=2"], ["accuracy"], []),
    ("spaces-around-equals", ["accuracy = 0.5"], ["accuracy"], [(Z, "accuracy", "0.5")]),
    ("negative", ["loss=-1.5"], ["loss"], [(Z, "loss", "-1.5")]),
    ("exponent-cut-as-upstream", ["loss=1e-05"], ["loss"], [(Z, "loss", "1")]),
    ("leading-dot-no-match", ["loss=.5"], ["loss"], []),
    ("second-dot-cut", ["version=1.2.3"], ["version"], [(Z, "version", "1.2")]),
    ("pipe-and-dash-in-name", ["a|b-c=3"], ["a|b-c"], [(Z, "a|b-c", "3")]),
    ("ascii-digits-only", ["accuracy=\u0663"], ["accuracy"], []),
    ("non-ascii-word-not-in-name", ["précision=0.5"], ["cision"], [(Z, "cision", "0.5")]),
    ("empty-and-blank-lines", ["", "   ", "loss=1"], ["loss"], [(Z, "loss", "1")]),
    ("trailing-newline-ignored", ["2019-09-24T01:37:26Z\n", "loss=2\n"], ["loss"],
     [(Z, "loss", "2")]),
    ("duplicate-metric-names", ["loss=1"], ["loss", "loss"], [(Z, "loss", "1")]),
    ("file-order", ["2020-01-01T00:00:02Z loss=2", "loss=1", "2020-01-01T00:00:01Z loss=3"],
     ["loss"], [("2020-01-01T00:00:02Z", "loss", "2"), (Z, "loss", "1"),
                ("2020-01-01T00:00:01Z", "loss", "3")]),
]


@pytest.mark.parametrize("lines,names,expected", [c[1:] for c in DEFAULT_CASES],
                         ids=[c[0] for c in DEFAULT_CASES])
def test_default_filter(lines, names, expected):
    assert parse_lines(lines, names) == logs(*expected)


def test_default_filter_is_upstream_text():
    assert DEFAULT_FILTER == r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)"
    assert parse_lines(["loss=1"], ["loss"], [DEFAULT_FILTER]) == parse_lines(["loss=1"], ["loss"])


def test_now_stamps_lines_without_timestamp():
    got = parse_lines(["loss=1", "2020-01-01T00:00:00Z loss=2"], ["loss"],
                      now=lambda: "2021-05-05T05:05:05Z")
    assert got == logs(("2021-05-05T05:05:05Z", "loss", "1"), ("2020-01-01T00:00:00Z", "loss", "2"))


def test_parse_text_splits_on_newline_only():
    text = "loss=1\r\nbar\rloss=2\n\nloss=3"
    assert [log.value for log in parse_text(text, ["loss"])] == ["1", "2", "3"]


# -- user filters -----------------------------------------------------------------------------
USER_CASES = [
    ("upstream-example", [EXAMPLE_FILTER],
     ["{metricName: accuracy, metricValue: 0.9723};{metricName: loss, metricValue: 0.1234}"],
     ["accuracy", "loss"], [(Z, "accuracy", "0.9723"), (Z, "loss", "0.1234")]),
    ("groups-are-stripped", [r'"(\w+ *)": *"([^"]*)"'], ['{"loss ": "  0.5 "}'], ["loss"],
     [(Z, "loss", "0.5")]),
    ("unmatched-value-group-is-empty", [r"(\w+)=(\d+)?"], ["loss=x"], ["loss"], [(Z, "loss", "")]),
    ("filter-order-then-match-order", [r"(\w+):(\d+)", r"(\w+)=(\d+)"], ["a=1 a:2 a=3 a:4"],
     ["a"], [(Z, "a", "2"), (Z, "a", "4"), (Z, "a", "1"), (Z, "a", "3")]),
    ("timestamp-token-also-searched", [r"(\d+)-(\d+)"], ["2020-01-01T00:00:00Z x"], ["2020"],
     [("2020-01-01T00:00:00Z", "2020", "01")]),
    ("named-groups", [r"(?P<name>\w+)=(?P<value>\d+)"], ["loss=7"], ["loss"], [(Z, "loss", "7")]),
    ("go-named-groups", [r"(?<name>\w+)=(?<value>\d+)"], ["loss=7"], ["loss"], [(Z, "loss", "7")]),
    ("case-insensitive-flag", [r"(?i)(LOSS)=(\d+)"], ["loss=7"], ["loss"], [(Z, "loss", "7")]),
    ("flag-mid-pattern-spans-alternatives", [r"x(?i)|(loss)=(\d)"], ["LOSS=1"], ["LOSS"],
     [(Z, "LOSS", "1")]),
    ("posix-class", [r"([[:alpha:]]+)=([[:digit:]]+)"], ["loss=12"], ["loss"],
     [(Z, "loss", "12")]),
    ("go-space-class-excludes-vt", [r"(\w+)\s(\d+)"], ["loss\v1 loss 2"], ["loss"],
     [(Z, "loss", "2")]),
    ("brace-without-count-is-literal", [r"(\w+){,2}=(\d)"], ["a{,2}=1"], ["a"], [(Z, "a", "1")]),
    ("octal-is-not-a-backreference", [r"(\w+)\075(\d)"], ["a=1"], ["a"], [(Z, "a", "1")]),
    ("hex-brace-escape", [r"(\w+)\x{3d}(\d)"], ["a=1"], ["a"], [(Z, "a", "1")]),
    ("quoted-literal", [r"(\w+)\Q=[\E(\d)"], ["a=[1"], ["a"], [(Z, "a", "1")]),
    ("end-of-text", [r"(\w+)=(\d)\z"], ["a=1 b=2"], ["a", "b"], [(Z, "b", "2")]),
    ("ungreedy-flag", [r"(?U)(\w+)=(\d+)"], ["loss=123"], ["loss"], [(Z, "loss", "1")]),
    ("ungreedy-flag-question-makes-greedy", [r"(?U)(\w+?)=(\d+?)"], ["loss=123"], ["loss"],
     [(Z, "loss", "123")]),
    ("ungreedy-scoped", [r"(?U:(\w+))(\w+)"], ["ab"], ["a"], [(Z, "a", "b")]),
    ("any-re2-group-name", [r"(?P<1st>\w+)=(?P<1st>\d)"], ["a=1"], ["a"], [(Z, "a", "1")]),
    ("dash-after-class-escape", [r"([\w-]+)=([\d-z]+)"], ["a-b=1-z"], ["a-b"],
     [(Z, "a-b", "1-z")]),
    ("negated-posix", [r"([[:^space:]]+)=([^[:^digit:]]+)"], ["a.b=12x"], ["a.b"],
     [(Z, "a.b", "12")]),
    ("negated-posix-among-others", [r"([a[:^alpha:]]+)=(\d)"], ["ba.1=2"], ["a.1"],
     [(Z, "a.1", "2")]),
    ("not-space-in-class-includes-vt", [r"(\w+)=([\S]+)"], ["a=1\v2 b"], ["a"],
     [(Z, "a", "1\v2")]),
    ("repeated-assertion", [r"^*(\w+)=(\d)"], ["a=1"], ["a"], [(Z, "a", "1")]),
]


@pytest.mark.parametrize("filters,lines,names,expected", [c[1:] for c in USER_CASES],
                         ids=[c[0] for c in USER_CASES])
def test_user_filters(filters, lines, names, expected):
    assert parse_lines(lines, names, filters) == logs(*expected)


def test_flag_persists_into_later_alternatives():
    # RE2/Perl: `a(?i)b|c` also matches "C"; Python needs the flag carried into each branch.
    pattern = compile_go(r"a(?i)b|c")
    assert [m.group(0) for m in pattern.finditer("aB C ab Ab")] == ["aB", "C", "ab"]


def test_empty_filters_mean_default():
    assert parse_lines(["loss=1"], ["loss"], []) == logs((Z, "loss", "1"))


def test_invalid_filter_raises_with_admission_message():
    with pytest.raises(FilterError, match="two top subexpressions are required"):
        parse_lines(["loss=1"], ["loss"], [r"(\w+)=\d+"])


@pytest.mark.parametrize("pattern,text,spans", [
    # Go's regexp find_test.go: empty matches right after a match are dropped.
    ("a*", "baaab", [(0, 0), (1, 4), (5, 5)]),
    ("", "abc", [(0, 0), (1, 1), (2, 2), (3, 3)]),
    ("ab*", "abbaab", [(0, 3), (3, 4), (4, 6)]),
    ("a*", "baaacaa", [(0, 0), (1, 4), (5, 7)]),
])
def test_find_all_follows_go_empty_match_rules(pattern, text, spans):
    assert [m.span() for m in find_all(compile_go(pattern), text)] == spans


# Recorded from Go 1.19 regexp (Compile + FindAllStringSubmatchIndex; UTF-8 byte offsets).
GO_RESULTS = [
    (DEFAULT_FILTER, "2019-09-24T01:37:26Z Validation-accuracy=0.96 a|b-c = -3 x=1e-05",
     [[21, 45, 21, 40, 41, 45, 41, 42, 42, 45], [46, 56, 46, 51, 54, 56, 54, 56, -1, -1],
      [57, 60, 57, 58, 59, 60, 59, 60, -1, -1]]),
    (EXAMPLE_FILTER,
     "{metricName: accuracy, metricValue: 0.9723};{metricName: loss, metricValue: 0.1234}",
     [[0, 43, 13, 21, 36, 42, 36, 37, 37, 42], [44, 83, 57, 61, 76, 82, 76, 77, 77, 82]]),
    (r"(\w+)\s(\d+)", "loss\v1 loss 2", [[7, 13, 7, 11, 12, 13]]),
    (r"(\w+)=([\S]+)", "a=1\v2 b", [[0, 5, 0, 1, 2, 5]]),
    (r"a(?i)b|c", "aB C ab Ab", [[0, 2], [3, 4], [5, 7]]),
    (r"x(?i)|(loss)=(\d)", "LOSS=1 loss=2", [[0, 6, 0, 4, 5, 6], [7, 13, 7, 11, 12, 13]]),
    (r"(?U)(\w+)=(\d+)", "loss=123", [[0, 6, 0, 4, 5, 6]]),
    (r"(?U:(\w+))(\w+)", "ab", [[0, 2, 0, 1, 1, 2]]),
    (r"(\w+){,2}=(\d)", "a{,2}=1", [[0, 7, 0, 1, 6, 7]]),
    (r"(\w+)\075(\d)", "a=1", [[0, 3, 0, 1, 2, 3]]),
    (r"(\w+)\x{3d}(\d)", "a=1", [[0, 3, 0, 1, 2, 3]]),
    (r"(\w+)\Q=[\E(\d)", "a=[1", [[0, 4, 0, 1, 3, 4]]),
    (r"(\w+)=(\d)\z", "a=1 b=2", [[4, 7, 4, 5, 6, 7]]),
    (r"([\w-]+)=([\d-z]+)", "a-b=1-z", [[0, 7, 0, 3, 4, 7]]),
    (r"([[:^space:]]+)=([^[:^digit:]]+)", "a.b=12x", [[0, 6, 0, 3, 4, 6]]),
    (r"^*(\w+)=(\d)", "a=1", [[0, 3, 0, 1, 2, 3]]),
    (r"(?P<1st>\w+)=(?P<1st>\d)", "a=1", [[0, 3, 0, 1, 2, 3]]),
    (r"\bacc\b=(\d)(x?)", "acc=1 tacc=2 acc=3", [[0, 5, 4, 5, 5, 5], [13, 18, 17, 18, 18, 18]]),
    (r"(?i)(ACC)=(\d)", "acc=1 Acc=2", [[0, 5, 0, 3, 4, 5], [6, 11, 6, 9, 10, 11]]),
    (r"(a|ab)(c|bcd)(d*)", "abcd", [[0, 4, 0, 1, 1, 4, 4, 4]]),
    (r"(\w+)=(\d+)", "é=1 a=١ b=2", [[10, 13, 10, 11, 12, 13]]),
    (r"[]a]+(b)", "]a]ab", [[0, 5, 4, 5]]),
    (r"(a).(c)", "a\nc abc", [[4, 7, 4, 5, 6, 7]]),
    (r"(?m)^(a)(b)$", "ab\nab", [[0, 2, 0, 1, 1, 2], [3, 5, 3, 4, 4, 5]]),
    (r"(a)(b)\Z", "", "error parsing regexp: invalid escape sequence: `\\Z`"),
    (r"(a)(b)\1", "", "error parsing regexp: invalid escape sequence: `\\1`"),
    (r"(?=a)(a)(b)", "", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    (r"(a*+)(b)", "", "error parsing regexp: invalid nested repetition operator: `*+`"),
    (r"(a{1001})(b)", "", "error parsing regexp: invalid repeat count: `{1001}`"),
    (r"[", "", "error parsing regexp: missing closing ]: `[`"),
    (r"(a)(b", "", "error parsing regexp: missing closing ): `(a)(b`"),
    (r"(a))(b)", "", "error parsing regexp: unexpected ): `(a))(b)`"),
    (r"(a)(b)\C", "", "error parsing regexp: invalid escape sequence: `\\C`"),
    (r"(a)([\b])", "", "error parsing regexp: invalid escape sequence: `\\b`"),
    (r"(\pL+)=(\d)", "é=1 ab=2 Ωx=3", [[0, 4, 0, 2, 3, 4], [5, 9, 5, 7, 8, 9], [10, 15, 10, 13, 14, 15]]),
    (r"(\p{Greek}+)=(\d)", "αβ=1 ab=2 Ω=3", [[0, 6, 0, 4, 5, 6], [12, 16, 12, 14, 15, 16]]),
    (r"(?i)(straße)=(\d)", "STRASSE=1 Straße=2 STRAẞE=3", [[10, 19, 10, 17, 18, 19], [20, 30, 20, 28, 29, 30]]),
    (r"((?:\w+)+)=(\d+)", "aaaa=1 b=22", [[0, 6, 0, 4, 5, 6], [7, 11, 7, 8, 9, 11]]),
    (r"(a)(\C)", "", "error parsing regexp: invalid escape sequence: `\\C`"),
    (r"(a)([\C])", "", "error parsing regexp: invalid escape sequence: `\\C`"),
    (r"(\Q\C\E)(b)", "\\Cb", [[0, 3, 0, 2, 2, 3]]),
    (r"(\\C)(b)", "\\Cb", [[0, 3, 0, 2, 2, 3]]),
    (r"\C[", "", "error parsing regexp: invalid escape sequence: `\\C`"),
    (r"a{2}{1001}", "", "error parsing regexp: invalid repeat count: `{1001}`"),
    (r"a{1001}?", "", "error parsing regexp: invalid repeat count: `{1001}`"),
    (r"a*{2}", "", "error parsing regexp: invalid nested repetition operator: `*{2}`"),
]


@pytest.mark.parametrize("pattern,text,go", GO_RESULTS, ids=[c[0] for c in GO_RESULTS])
def test_matches_what_go_reports(pattern, text, go):
    if isinstance(go, str):
        with pytest.raises(RegexError) as err:
            compile_go(pattern)
        assert str(err.value) == go
        return
    rx = compile_go(pattern)

    def byte(i):
        return len(text[:i].encode()) if i >= 0 else -1

    got = [[byte(x) for k in range(rx.groups + 1) for x in m.span(k)] for m in find_all(rx, text)]
    assert got == go


# -- timestamps -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,ok", [
    ("2019-09-24T01:37:26Z", True),
    ("2019-09-24T01:37:26.5Z", True),
    ("2019-09-24T01:37:26.123456789123Z", True),
    ("2019-09-24T01:37:26+05:30", True),
    ("2019-09-24T01:37:26-00:00", True),
    ("2020-02-29T23:59:59Z", True),
    ("2019-02-29T00:00:00Z", False),
    ("2019-09-24T24:00:00Z", False),
    ("2019-09-24T01:60:00Z", False),
    ("2019-09-24T01:37:60Z", False),
    ("2019-09-24t01:37:26z", False),
    ("2019-09-24 01:37:26Z", False),
    ("2019-09-24T01:37:26", False),
    ("2019-09-24T01:37:26.Z", False),
    ("2019-09-24T1:37:26Z", False),
    ("2019-09-24T01:37:26+0530", False),
    ("2019-09-24T01:37:26+24:00", False),
    ("2019-09-24", False),
])
def test_rfc3339(text, ok):
    assert is_rfc3339(text) is ok


# -- filter validation ------------------------------------------------------------------------
def msg(fmt, err):
    return f"Invalid {go_quote(fmt)} in {FIELD}: error parsing regexp: {err}."


def two_groups(fmt):
    return f"Invalid {go_quote(fmt)} in {FIELD}: two top subexpressions are required"


VALID = [DEFAULT_FILTER, EXAMPLE_FILTER, r"(\w+)\s*:\s*(\S+)", r"(?i)(a)(b)", r"([[:word:]]+)=(.*)",
         "(?U)(a)(b)", "([[:^alpha:]])(b)", "([a[:^alpha:]])(b)", r"(\x{10FFFF})(b)", "(?)(a)(b)",
         r"(?P<n>a)(b)", r"(a{2,1000})(b)", r"(a)(b)[|&~-]", r"(a)(b)\z", r"(a)(b)(?s:.)"]


@pytest.mark.parametrize("fmt", VALID)
def test_valid_filters(fmt):
    assert validate_filter(fmt) is None


INVALID = [
    # (fmt, expected message) — Go's wording where RE2 itself refuses the pattern.
    ("[", msg("[", "missing closing ]: `[`")),
    (r"{metricName: ([\w|-]+)}", two_groups(r"{metricName: ([\w|-]+)}")),
    ("(a)", two_groups("(a)")),
    ("(?:a)(?:b)", two_groups("(?:a)(?:b)")),
    (r"\(a\)\(b\)", two_groups(r"\(a\)\(b\)")),
    ("(?=a)(b)(c)", msg("(?=a)(b)(c)", "invalid or unsupported Perl syntax: `(?=`")),
    ("(a)(?!b)(c)", msg("(a)(?!b)(c)", "invalid or unsupported Perl syntax: `(?!`")),
    ("(?<=a)(b)(c)", msg("(?<=a)(b)(c)", "invalid or unsupported Perl syntax: `(?<`")),
    ("(?<!a)(b)(c)", msg("(?<!a)(b)(c)", "invalid or unsupported Perl syntax: `(?<`")),
    ("(?>a)(b)(c)", msg("(?>a)(b)(c)", "invalid or unsupported Perl syntax: `(?>`")),
    ("(?#c)(a)(b)", msg("(?#c)(a)(b)", "invalid or unsupported Perl syntax: `(?#`")),
    ("(?P<n>a)(b)(?P=n)", msg("(?P<n>a)(b)(?P=n)", "invalid or unsupported Perl syntax: `(?P`")),
    (r"(a)(b)\1", msg(r"(a)(b)\1", r"invalid escape sequence: `\1`")),
    ("(a*+)(b)", msg("(a*+)(b)", "invalid nested repetition operator: `*+`")),
    ("(a++)(b)", msg("(a++)(b)", "invalid nested repetition operator: `++`")),
    ("(a?+)(b)", msg("(a?+)(b)", "invalid nested repetition operator: `?+`")),
    ("(a{2}+)(b)", msg("(a{2}+)(b)", "invalid nested repetition operator: `{2}+`")),
    ("(a**)(b)", msg("(a**)(b)", "invalid nested repetition operator: `**`")),
    ("(a{1001})(b)", msg("(a{1001})(b)", "invalid repeat count: `{1001}`")),
    ("(a{3,2})(b)", msg("(a{3,2})(b)", "invalid repeat count: `{3,2}`")),
    (r"(a)(b)\Z", msg(r"(a)(b)\Z", r"invalid escape sequence: `\Z`")),
    (r"(a)(b)\u0041", msg(r"(a)(b)\u0041", r"invalid escape sequence: `\u`")),
    (r"(a)(b)\é", msg(r"(a)(b)\é", r"invalid escape sequence: `\é`")),
    (r"(a)([\b])", msg(r"(a)([\b])", r"invalid escape sequence: `\b`")),
    ("(a)(b)\\", msg("(a)(b)\\", "trailing backslash at end of expression: ``")),
    ("(?x)(a)(b)", msg("(?x)(a)(b)", "invalid or unsupported Perl syntax: `(?x`")),
    ("(a)(b", msg("(a)(b", "missing closing ): `(a)(b`")),
    ("(a))(b)", msg("(a))(b)", "unexpected ): `(a))(b)`")),
    ("(a)([b)", msg("(a)([b)", "missing closing ]: `[b)`")),
    ("([[:foo:]])(b)", msg("([[:foo:]])(b)", "invalid character class range: `[:foo:]`")),
    (r"(\C)(b)", msg(r"(\C)(b)", r"invalid escape sequence: `\C`")),
]


@pytest.mark.parametrize("fmt,expected", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_filters(fmt, expected):
    assert validate_filter(fmt) == expected


@pytest.mark.parametrize("fmt", [r"(\pL+)(b)", r"(\p{Greek})(b)", r"(?i)(\pL)(\PN)"])
def test_unicode_classes_work_as_in_go(fmt):
    assert validate_filter(fmt) is None


def test_hostile_filter_runs_in_linear_time():
    """Nested repetition on a line that never matches: exponential for a backtracking engine
    (Python's re took minutes at 30 characters), linear for RE2. Run in a child with a deadline,
    so that a regression fails instead of hanging the suite."""
    code = ("from collector import parse_lines; import sys; "
            "line = 'accuracy ' + 'a' * 20000 + '!'; "
            "print(len(parse_lines([line] * 50, ['accuracy'], [r'((?:\\w+)+)=(\\d+)', r'(a*)*(b)'])))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "0"), done.stderr


def test_re2_prints_nothing_for_a_refused_filter():
    code = "from collector import validate_filter; print(validate_filter('(a)(b'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stderr == ""
    assert "missing closing )" in done.stdout


@pytest.mark.parametrize("text,quoted", [
    (r"([\w|-]+)", r'"([\\w|-]+)"'), ('say "hi"', r'"say \"hi\""'), ("a\tb\n", r'"a\tb\n"'),
    ("\x01é", r'"\x01é"'), ("\u200b", r'"\u200b"'),
])
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted


# -- sidecar flags and CLI --------------------------------------------------------------------
def test_split_list():
    assert split_list("") == []
    assert split_list("Validation-accuracy;Train-accuracy") == ["Validation-accuracy", "Train-accuracy"]


def test_cli_prints_report_request(tmp_path):
    path = tmp_path / "metrics.log"
    path.write_text("2019-09-24T01:37:26Z Epoch[0] Validation-accuracy=0.96 Train-accuracy=0.9\n")
    out = subprocess.run([sys.executable, "-m", "collector", "-t", "trial-1", "-m",
                          "Validation-accuracy;Train-accuracy", "-path", str(path)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"trial_name": "trial-1", "observation_log": {"metric_logs": [
        {"time_stamp": "2019-09-24T01:37:26Z",
         "metric": {"name": "Validation-accuracy", "value": "0.96"}},
        {"time_stamp": "2019-09-24T01:37:26Z", "metric": {"name": "Train-accuracy", "value": "0.9"}},
    ]}}


def test_cli_rejects_bad_filter(tmp_path):
    done = subprocess.run([sys.executable, "-m", "collector", "-m", "a", "-f", "(a)", "-path", "-"],
                          cwd=ROOT, input="", capture_output=True, text=True)
    assert done.returncode == 2 and "two top subexpressions are required" in done.stderr


def test_collector_imports_nothing_from_katib():
    code = "import sys, collector, collector.__main__; print(sorted(m for m in sys.modules " \
           "if m == 'katib' or m.startswith('katib.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
