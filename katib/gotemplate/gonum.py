"""Go numbers: literal parsing (strconv.ParseInt/ParseUint/ParseFloat with base 0, as the
template parser uses them) and float formatting (strconv.FormatFloat for 'e', 'f', 'g')."""

import math
import re
from dataclasses import dataclass

from .goquote import quote

INT64_MIN, INT64_MAX, UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1

_DECIMAL_FLOAT = re.compile(r"[+-]?(?=[0-9_.]*[0-9])[0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9][0-9_]*)?")
_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?=[0-9a-fA-F_.]*[0-9a-fA-F])[0-9a-fA-F_]*(\.[0-9a-fA-F_]*)?[pP][+-]?[0-9][0-9_]*")


class NumberSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class NumberValue:
    """Every Go type a numeric literal can stand for (parse.NumberNode's fields)."""
    text: str
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    int_value: int = 0
    uint_value: int = 0
    float_value: float = 0.0


def underscore_ok(text: str) -> bool:
    """Underscores may only separate digits (or follow a base prefix)."""
    saw, i = "^", 0
    if text[:1] in ("+", "-"):
        text = text[1:]
    hexa = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexa = 2, "0", text[1].lower() == "x"
    for ch in text[i:]:
        if ch.isdigit() and ch.isascii() or hexa and ch.lower() in "abcdef":
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_uint(text: str) -> int | None:
    """strconv.ParseUint(text, 0, 64), or None on error."""
    if not text:
        return None
    base, digits = 10, text
    if text[0] == "0":
        prefix = text[1:2].lower()
        if len(text) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], text[2:]
        else:
            base, digits = 8, text[1:]
    if "_" in digits and not underscore_ok(text):
        return None
    value = 0
    for ch in digits.replace("_", ""):
        digit = int(ch, 36) if ch.isascii() and ch.isalnum() else 99
        if digit >= base:
            return None
        value = value * base + digit
    return value if value <= UINT64_MAX else None


def parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), or None on error."""
    sign = -1 if text[:1] == "-" else 1
    magnitude = parse_uint(text[1:] if text[:1] in ("+", "-") else text)
    if magnitude is None:
        return None
    value = sign * magnitude
    return value if INT64_MIN <= value <= INT64_MAX else None


def parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64), or None on syntax or range error."""
    try:
        if _HEX_FLOAT.fullmatch(text):
            value = float.fromhex(text.replace("_", ""))
        elif _DECIMAL_FLOAT.fullmatch(text):
            value = float(text.replace("_", ""))
        else:
            return None
    except OverflowError:
        return None
    if "_" in text and not underscore_ok(text):
        return None
    return None if math.isinf(value) else value


def parse_number(text: str) -> NumberValue:
    """The parser's newNumber for an integer/float literal (not a character or complex)."""
    uint_value, int_value = parse_uint(text), parse_int(text)
    fields = {}
    if uint_value is not None:
        fields.update(is_uint=True, uint_value=uint_value)
    if int_value is not None:
        fields.update(is_int=True, int_value=int_value)
        if int_value == 0:
            fields.update(is_uint=True, uint_value=uint_value or 0)
    if int_value is not None or uint_value is not None:
        whole = int_value if int_value is not None else uint_value
        return NumberValue(text, is_float=True, float_value=float(whole), **fields)
    value = parse_float(text)
    if value is None:
        raise NumberSyntaxError(f"illegal number syntax: {quote(text)}")
    if not any(ch in text for ch in ".eEpP"):
        raise NumberSyntaxError(f"integer overflow: {quote(text)}")
    integral = value.is_integer()
    return NumberValue(
        text, is_float=True, float_value=value,
        is_int=integral and INT64_MIN <= value <= INT64_MAX, int_value=int(value) if integral else 0,
        is_uint=integral and 0 <= value <= UINT64_MAX, uint_value=int(value) if integral else 0)


def rune_number(text: str, code: int) -> NumberValue:
    return NumberValue(text, is_int=True, is_uint=True, is_float=True,
                       int_value=code, uint_value=code, float_value=float(code))


# --- formatting ----------------------------------------------------------------------------

def _digits_of(formatted: str) -> tuple[str, int]:
    """Decimal digits and point position (value = 0.DIGITS × 10^dp) of a formatted number."""
    mantissa, _, exponent = formatted.lower().partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    dp = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    stripped = stripped.rstrip("0")
    return (stripped, dp) if stripped else ("", 0)


def _fmt_e(digits: str, dp: int, prec: int, letter: str) -> str:
    first = digits[:1] or "0"
    frac = digits[1:prec + 1].ljust(prec, "0") if prec > 0 else ""
    exp = dp - 1 if digits else 0
    sign = "-" if exp < 0 else "+"
    return first + ("." + frac if prec > 0 else "") + letter + sign + f"{abs(exp):02d}"


def _fmt_f(digits: str, dp: int, prec: int) -> str:
    whole = digits[:dp].ljust(dp, "0") if dp > 0 else "0"
    frac = "".join(digits[dp + i] if 0 <= dp + i < len(digits) else "0" for i in range(prec))
    return whole + ("." + frac if prec > 0 else "")


def _fmt_g(digits: str, dp: int, prec: int, letter: str, *, shortest: bool) -> str:
    eprec = prec
    if eprec > len(digits) >= dp:
        eprec = len(digits)
    if shortest:
        eprec = 6
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        return _fmt_e(digits, dp, min(prec, len(digits)) - 1, "e" if letter == "g" else "E")
    if prec > dp:
        prec = len(digits)
    return _fmt_f(digits, dp, max(prec - dp, 0))


def format_float(value: float, verb: str, prec: int) -> str:
    """strconv.FormatFloat(value, verb, prec, 64) for verb in e E f g G; prec -1 = shortest."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    magnitude = abs(value)
    shortest = prec < 0
    if shortest:
        digits, dp = _digits_of(repr(magnitude))
        prec = {"e": max(len(digits) - 1, 0), "f": max(len(digits) - dp, 0)}.get(verb.lower(), len(digits))
    elif verb in "eE":
        digits, dp = _digits_of(f"{magnitude:.{prec}e}")
    elif verb == "f":
        digits, dp = _digits_of(f"{magnitude:.{prec}f}")
    else:
        prec = max(prec, 1)
        digits, dp = _digits_of(f"{magnitude:.{prec - 1}e}")
    if verb in "eE":
        return sign + _fmt_e(digits, dp, prec, verb)
    if verb == "f":
        return sign + _fmt_f(digits, dp, prec)
    return sign + _fmt_g(digits, dp, prec, verb, shortest=shortest)
