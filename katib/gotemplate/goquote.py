"""Go string and rune literals: quoting (strconv.Quote) and unquoting (strconv.Unquote).

Used for literals in templates, for %q in printf and for Go-style error messages."""

import unicodedata

_SIMPLE_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}
_UNESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_MAX_RUNE = 0x10FFFF


class UnquoteError(ValueError):
    """strconv.ErrSyntax: the literal is malformed."""

    def __init__(self, message: str = "invalid syntax"):
        super().__init__(message)


def is_print(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch == " " or ch.isprintable()


def is_space(ch: str) -> bool:
    return ch != "" and ch in " \t\r\n"


def is_alphanumeric(ch: str) -> bool:
    """The lexer's identifier characters: '_', Unicode letters and decimal digits."""
    return ch == "_" or ch.isalpha() or (ch != "" and unicodedata.category(ch) == "Nd")


def rune_repr(ch: str) -> str:
    """fmt's %#U: `U+0041 'A'` (the character only when printable)."""
    if ch == "":
        return "U+FFFFFFFFFFFFFFFF"  # Go's eof rune (-1) printed as unsigned
    text = f"U+{ord(ch):04X}"
    return f"{text} '{ch}'" if is_print(ch) else text


def _escape(ch: str, quote: str, ascii_only: bool) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    if is_print(ch) and (not ascii_only or ord(ch) < 0x80):
        return ch
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch]
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote(text: str, *, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII)."""
    return '"' + "".join(_escape(ch, '"', ascii_only) for ch in text) + '"'


def quote_rune(code: int, *, ascii_only: bool = False) -> str:
    """strconv.QuoteRune: invalid code points print as U+FFFD."""
    if code > _MAX_RUNE or code < 0 or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return "'" + _escape(chr(code), "'", ascii_only) + "'"


def can_backquote(text: str) -> bool:
    """strconv.CanBackquote: no control characters other than tab, no backquote, no BOM."""
    for ch in text:
        if ch == "`" or ch == "\ufeff":
            return False
        if ch != "\t" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            return False
    return True


def _hex_value(digits: str) -> int:
    if not digits or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
        raise UnquoteError()
    return int(digits, 16)


def unquote_char(text: str, quote_char: str) -> tuple[bytes, str]:
    """strconv.UnquoteChar: decode one (possibly escaped) character.

    Returns the UTF-8 bytes it stands for (a `\\x` or octal escape is one raw byte)
    and the rest of the text."""
    first = text[:1]
    if first == "" or first == quote_char:
        raise UnquoteError()
    if first != "\\":
        return first.encode("utf-8"), text[1:]
    code, rest = text[1:2], text[2:]
    if code in _UNESCAPES:
        return _UNESCAPES[code].encode(), rest
    if code in ("'", '"'):
        if code != quote_char:
            raise UnquoteError()
        return code.encode(), rest
    if code in ("x", "u", "U"):
        size = {"x": 2, "u": 4, "U": 8}[code]
        value = _hex_value(rest[:size]) if len(rest) >= size else _hex_value("")
        if code == "x":
            return bytes([value]), rest[size:]
        if value > _MAX_RUNE or 0xD800 <= value <= 0xDFFF:
            raise UnquoteError()
        return chr(value).encode("utf-8"), rest[size:]
    if code in "01234567" and code:
        digits = code + rest[:2]
        if len(digits) < 3 or any(ch not in "01234567" for ch in digits) or int(digits, 8) > 255:
            raise UnquoteError()
        return bytes([int(digits, 8)]), rest[2:]
    raise UnquoteError()


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnquoteError("string constant is not valid UTF-8 (unsupported)") from None


def unquote(literal: str) -> str:
    """strconv.Unquote for "..." and `...` literals (raw strings drop carriage returns)."""
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in "\"`":
        raise UnquoteError()
    body = literal[1:-1]
    if literal[0] == "`":
        if "`" in body:
            raise UnquoteError()
        return body.replace("\r", "")
    if "\n" in body:
        raise UnquoteError()
    out = bytearray()
    while body:
        raw, body = unquote_char(body, '"')
        out += raw
    return _decode(bytes(out))


def unquote_rune(literal: str) -> int:
    """A character constant 'x' → its code point (as the parser's newNumber does)."""
    raw, tail = unquote_char(literal[1:], "'")
    if tail != "'":
        raise UnquoteError(f"malformed character constant: {literal}")
    if len(raw) == 1:
        return raw[0]
    return ord(raw.decode("utf-8"))
