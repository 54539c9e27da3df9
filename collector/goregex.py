r"""Go (RE2) regular-expression syntax on top of Python's `re`.

Katib's filters are Go regexps. `translate(fmt)` turns one into an equivalent Python pattern,
or raises `RegexError` with a Go-style message (error parsing regexp: <what>: `<expr>`) when
RE2 would refuse it (look-arounds, backreferences, possessive quantifiers, ...) or when Python
cannot express it (\pL, \C, (?U), negated POSIX classes). The translation keeps RE2's meaning
where Python differs: \s is [\t\n\f\r ], \z is end of text, {,n} is a literal, octal escapes
never become backreferences, (?i) may appear anywhere (and carries into later alternatives),
(?<name>re) is a named group, (?U) swaps greedy and lazy, [\d-z] has a literal dash.
Compile the result with re.ASCII (RE2's \d, \w, \b are ASCII).

Checked against Go 1.19's regexp on ~11,000 random patterns: same accept/reject decisions and
the same matches, except (a) \p{...} Unicode classes are refused (Python's re has none),
(b) a repeated group that can match empty may report a different submatch, e.g. (a*)* on "a",
(c) (?i) folds ASCII letters only."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

_MAX_REPEAT = 1000  # RE2's limit on {n,m} counts
_GO_SPACE_CLASS = r"\t\n\f\r "
_POSIX = {  # RE2's [:name:] classes as code-point ranges
    "alnum": "09AZaz", "alpha": "AZaz", "ascii": "\x00\x7f", "blank": "\t\t  ",
    "cntrl": "\x00\x1f\x7f\x7f", "digit": "09", "graph": "!~", "lower": "az", "print": " ~",
    "punct": "!/:@[`{~", "space": "\t\r  ", "upper": "AZ", "word": "09AZ__az", "xdigit": "09AFaf",
}
_SIMPLE_ESCAPES = set("afnrtv")
_PERL_CLASSES = set("dDwW")
_PERL_REFUSED = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?#", "(?(", "(?|", "(?P=", "(?P>")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}", re.ASCII)
_NAMED = re.compile(r"\(\?P?<(\w*)>", re.ASCII)
_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_HEX_BRACED = re.compile(r"\{([0-9A-Fa-f]+)\}")
_HEX_TWO = re.compile(r"[0-9A-Fa-f]{2}")


class RegexError(ValueError):
    """A filter RE2 or this implementation cannot compile; str() is a Go-style message."""


def go_error(code: str, expr: str) -> RegexError:
    return RegexError(f"error parsing regexp: {code}: `{expr}`")


def _char(cp: int) -> str:
    """A code point as a Python pattern escape (safe inside and outside classes)."""
    if cp < 0x100:
        return "\\x%02x" % cp
    if cp < 0x10000:
        return "\\u%04x" % cp
    return "\\U%08x" % cp


@dataclass
class _Frame:
    ungreedy: bool = False  # RE2's U flag: quantifiers lazy by default, `?` makes them greedy
    flag_groups: list[str] = field(default_factory=list)  # "(?i:" wrappers opened in this group


class _Translator:
    def __init__(self, fmt: str):
        self.src = fmt
        self.i = 0
        self.out: list[str] = []
        self.frames = [_Frame()]
        self.last_repeat: str | None = None  # text of the repetition operator just emitted

    def run(self) -> str:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c in "*+?{":
                self._repeat()
                continue
            self.last_repeat = None
            if c == "\\":
                self._escape_outside()
            elif c == "[":
                self._char_class()
            elif c == "(":
                self._open_group()
            elif c == ")":
                self._close_group()
            elif c == "|":
                self._alternate()
            elif c in "^$":
                self.out.append(f"(?:{c})")  # grouped: RE2 lets assertions repeat, Python not
                self.i += 1
            else:
                self.out.append(c)
                self.i += 1
        self.out.append(")" * len(self.frames[-1].flag_groups))
        return "".join(self.out)

    # -- repetition ---------------------------------------------------------------------------
    def _repeat(self) -> None:
        src, start = self.src, self.i
        if src[start] == "{":
            m = _REPEAT.match(src, start)
            if m is None:  # RE2: a brace that does not start {n}, {n,} or {n,m} is a literal
                self.last_repeat = None
                self.out.append("\\{")
                self.i += 1
                return
            lo, hi = int(m.group(1)), (m.group(3) or None)
            if lo > _MAX_REPEAT or (hi is not None and (int(hi) > _MAX_REPEAT or int(hi) < lo)):
                raise go_error("invalid repeat count", m.group(0))
            end = m.end()
        else:
            end = start + 1
        if self.last_repeat is not None:
            raise go_error("invalid nested repetition operator", self.last_repeat + src[start:end])
        lazy = end < len(src) and src[end] == "?"
        operator = src[start:end]
        if lazy:
            end += 1
        if lazy != self.frames[-1].ungreedy:
            operator += "?"
        self.out.append(operator)
        self.last_repeat = src[start:end]
        self.i = end

    # -- escapes ------------------------------------------------------------------------------
    def _escape_outside(self) -> None:
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise go_error("trailing backslash at end of expression", "")
        c = src[i + 1]
        if c == "Q":
            end = src.find("\\E", i + 2)
            literal = src[i + 2:] if end < 0 else src[i + 2:end]
            self.out.append("".join(_char(ord(ch)) for ch in literal))
            self.i = len(src) if end < 0 else end + 2
            return
        simple = {"A": "(?:\\A)", "z": "(?:\\Z)", "b": "(?:\\b)", "B": "(?:\\B)",
                  "s": f"[{_GO_SPACE_CLASS}]", "S": f"[^{_GO_SPACE_CLASS}]"}
        if c in simple:
            self.out.append(simple[c])
            self.i = i + 2
            return
        self.out.append(self._escape_common(inside_class=False))

    def _escape_common(self, *, inside_class: bool) -> str:
        """Escapes valid both inside and outside classes; advances self.i."""
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise go_error("trailing backslash at end of expression", "")
        c = src[i + 1]
        self.i = i + 2
        if c in _SIMPLE_ESCAPES or c in _PERL_CLASSES:
            return "\\" + c
        if c == "s" and inside_class:
            return _GO_SPACE_CLASS
        if c == "S" and inside_class:
            return "\\S\\v"  # Python's ASCII \S excludes \v, RE2's does not
        if c in "01234567":
            return self._octal(i, c)
        if c == "x":
            return self._hex(i)
        if c in "pP":
            raise go_error("Unicode classes are not supported here", src[i:i + 3])
        if c.isascii() and not c.isalnum():
            return "\\" + c
        raise go_error("invalid escape sequence", "\\" + c)

    def _octal(self, start: int, first: str) -> str:
        src = self.src
        if first != "0" and (self.i >= len(src) or src[self.i] not in "01234567"):
            raise go_error("invalid escape sequence", "\\" + first)  # a backreference in Perl
        digits = first
        while len(digits) < 3 and self.i < len(src) and src[self.i] in "01234567":
            digits += src[self.i]
            self.i += 1
        return _char(int(digits, 8))

    def _hex(self, start: int) -> str:
        src = self.src
        if self.i < len(src) and src[self.i] == "{":
            m = _HEX_BRACED.match(src, self.i)
            if m is None or int(m.group(1), 16) > 0x10FFFF:
                raise go_error("invalid escape sequence", src[start:self.i + 1])
            self.i = m.end()
            return _char(int(m.group(1), 16))
        m = _HEX_TWO.match(src, self.i)
        if m is None:
            raise go_error("invalid escape sequence", src[start:self.i + 2])
        self.i = m.end()
        return _char(int(m.group(0), 16))

    # -- character classes --------------------------------------------------------------------
    def _char_class(self) -> None:
        src, start = self.src, self.i
        parts = ["["]
        self.i += 1
        if self.i < len(src) and src[self.i] == "^":
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(src):
                raise go_error("missing closing ]", src[start:])
            c = src[self.i]
            if c == "]" and not first:
                break
            first = False
            if c == "[" and src.startswith("[:", self.i):
                end = src.find(":]", self.i + 2)
                if end > 0:
                    parts.append(self._posix(src[self.i:end + 2]))
                    self.i = end + 2
                    self._literal_dash(parts)
                    continue
            if c == "\\":
                is_set = self.src[self.i + 1:self.i + 2] in ("d", "D", "s", "S", "w", "W")
                parts.append(self._escape_class())
                if is_set:
                    self._literal_dash(parts)
                continue
            parts.append(_char(ord(c)) if c in "[&~|]" else c)
            self.i += 1
        self.i += 1
        parts.append("]")
        self.out.append("".join(parts))

    def _escape_class(self) -> str:
        c = self.src[self.i + 1] if self.i + 1 < len(self.src) else ""
        if c in ("b", "A", "z", "B", "Q"):
            raise go_error("invalid escape sequence", "\\" + c)
        return self._escape_common(inside_class=True)

    def _literal_dash(self, parts: list[str]) -> None:
        """RE2 reads `-` after a class such as \\d or [:digit:] as a literal; Python refuses."""
        src = self.src
        if src.startswith("-", self.i) and not src.startswith("-]", self.i):
            parts.append("\\-")
            self.i += 1

    @staticmethod
    def _posix(text: str) -> str:
        name = text[2:-2]
        negated = name.startswith("^")
        bounds = _POSIX.get(name[1:] if negated else name)
        if bounds is None:
            raise go_error("invalid character class range", text)
        ranges = [(ord(bounds[k]), ord(bounds[k + 1])) for k in range(0, len(bounds), 2)]
        if negated:  # the complement, spelled out: a Python class cannot nest a negated one
            edges = [-1] + [x for lo, hi in ranges for x in (lo, hi)] + [0x110000]
            ranges = [(edges[k] + 1, edges[k + 1] - 1) for k in range(0, len(edges), 2)
                      if edges[k] + 1 <= edges[k + 1] - 1]
        return "".join(_char(lo) + ("-" + _char(hi) if hi > lo else "") for lo, hi in ranges)

    # -- groups and alternation ---------------------------------------------------------------
    def _open_group(self) -> None:
        src, i = self.src, self.i
        if not src.startswith("(?", i):
            self._push("(", i + 1)
            return
        for refused in _PERL_REFUSED:
            if src.startswith(refused, i):
                raise go_error("invalid or unsupported Perl syntax", refused)
        named = _NAMED.match(src, i)
        if named is not None:
            if not named.group(1):
                raise go_error("invalid named capture", named.group(0))
            # Names are never used here; dropping them accepts every RE2 name (`1st`, repeats).
            self._push("(", named.end())
            return
        if src.startswith("(?:", i):
            self._push("(?:", i + 3)
            return
        self._flag_group()

    def _push(self, text: str, resume: int, *, ungreedy: bool | None = None) -> None:
        self.out.append(text)
        inherited = self.frames[-1].ungreedy if ungreedy is None else ungreedy
        self.frames.append(_Frame(ungreedy=inherited))
        self.i = resume

    def _flag_group(self) -> None:
        src, i = self.src, self.i
        m = _FLAGS.match(src, i)
        on, off = (m.group(1), m.group(2)) if m else ("", None)
        if m is not None and m.group(0) == "(?)":  # RE2 takes an empty flag group as a no-op
            self.i = m.end()
            return
        if m is None or not (on or off) or off == "" or set(on + (off or "")) - set("imsU"):
            raise go_error("invalid or unsupported Perl syntax", src[i:i + 3])
        off = off or ""
        ungreedy = True if "U" in on else False if "U" in off else self.frames[-1].ungreedy
        on, off = on.replace("U", ""), off.replace("U", "")
        spec = on + ("-" + off if off else "")
        if m.group(3) == ":":
            self._push(f"(?{spec}:" if spec else "(?:", m.end(), ungreedy=ungreedy)
            return
        # (?flags) applies to the rest of the enclosing group, across later alternatives too.
        self.i = m.end()
        self.frames[-1].ungreedy = ungreedy
        if spec:
            self.out.append(f"(?{spec}:")
            self.frames[-1].flag_groups.append(spec)

    def _close_group(self) -> None:
        frame = self.frames.pop() if len(self.frames) > 1 else None
        if frame is None:
            raise go_error("unexpected )", self.src)
        self.out.append(")" * len(frame.flag_groups) + ")")
        self.i += 1

    def _alternate(self) -> None:
        specs = self.frames[-1].flag_groups
        self.out.append(")" * len(specs) + "|" + "".join(f"(?{s}:" for s in specs))
        self.i += 1


def translate(fmt: str) -> str:
    """The Python `re` pattern (for use with re.ASCII) equivalent to Go regexp `fmt`."""
    translator = _Translator(fmt)
    py = translator.run()
    if len(translator.frames) > 1:
        raise go_error("missing closing )", fmt)
    return py


_PY_TO_GO = (
    ("nothing to repeat", "missing argument to repetition operator"),
    ("multiple repeat", "invalid nested repetition operator"),
    ("bad character range", "invalid character class range"),
    ("redefinition of group name", "duplicate capture group name"),
    ("bad character in group name", "invalid named capture"),
    ("missing group name", "invalid named capture"),
    ("unbalanced parenthesis", "unexpected )"),
)


def compile_go(fmt: str) -> re.Pattern[str]:
    """Compile a Go regexp; RegexError with a Go-style message when it is refused."""
    py = translate(fmt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FutureWarning: Python would read it differently later
            return re.compile(py, re.ASCII)
    except (re.error, FutureWarning, RecursionError, OverflowError) as err:
        msg = str(getattr(err, "msg", err))
        for py_msg, go_code in _PY_TO_GO:
            if msg.startswith(py_msg):
                raise go_error(go_code, fmt) from None
        raise RegexError(f"error parsing regexp: {msg}: `{fmt}`") from None


def go_quote(text: str) -> str:
    """Go's %q / strconv.Quote for a string."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\v": "\\v", "\\": "\\\\", '"': '\\"'}
    out = []
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        elif ord(ch) < 0x10000:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append("\\U%08x" % ord(ch))
    return '"' + "".join(out) + '"'
