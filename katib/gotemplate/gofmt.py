"""Go's fmt package for template values: Sprint, Sprintln and Sprintf.

Used by print/println/printf (printf.py parses the format directives) and for the output
of {{.X}}. Follows fmt's print.go and format.go (Go 1.19): verbs and flags, %v of floats
(shortest, 1e+06), slices ([a b]), maps (map[a:1]), structs ({a b}, %+v, %#v) and the
%!d(string=x) marker for a verb that does not fit its operand. Float %b/%x and %p are not
supported (FormatError)."""

from . import values as v
from .gonum import format_float
from .goquote import can_backquote, is_print, quote, quote_rune

_LOWER, _UPPER = "0123456789abcdefx", "0123456789ABCDEFX"
_UINT64 = (1 << 64) - 1
_UNSET = object()


class FormatError(v.FuncError):
    """A formatting request we do not support."""


def sprint(args: list) -> str:
    printer = Printer()
    previous_string = False
    for index, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if index > 0 and not is_string and not previous_string:
            printer.write(" ")
        printer.print_arg(arg, "v")
        previous_string = is_string
    return printer.text()


def sprintln(args: list) -> str:
    printer = Printer()
    for index, arg in enumerate(args):
        if index > 0:
            printer.write(" ")
        printer.print_arg(arg, "v")
    printer.write("\n")
    return printer.text()


class Printer:
    """fmt's pp + fmt: one output buffer and the flags of the verb being printed."""

    def __init__(self):
        self.parts: list[str] = []
        self.arg = _UNSET
        self.value = _UNSET
        self.clear_flags()

    def clear_flags(self) -> None:
        self.wid = self.prec = 0
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False

    def text(self) -> str:
        return "".join(self.parts)

    def write(self, text: str) -> None:
        self.parts.append(text)

    def write_padding(self, count: int) -> None:
        if count > 0:
            self.write(("0" if self.zero else " ") * count)

    def pad(self, text: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.write(text)
        elif self.minus:
            self.write(text)
            self.write_padding(self.wid - len(text))
        else:
            self.write_padding(self.wid - len(text))
            self.write(text)

    def pad_without_zeros(self, text: str) -> None:
        saved, self.zero = self.zero, False
        self.pad(text)
        self.zero = saved

    # --- by kind --------------------------------------------------------------------------

    def print_arg(self, arg, verb: str) -> None:
        self.arg, self.value = arg, _UNSET
        if arg is None:
            return self.pad("<nil>") if verb in ("T", "v") else self.bad_verb(verb)
        if verb == "T":
            return self.fmt_s(v.go_type(arg))
        if verb == "p":
            return self.fmt_pointer(arg)
        self.print_scalar_or_value(arg, verb, 0)

    def print_scalar_or_value(self, value, verb: str, depth: int) -> None:
        k = v.kind(value)
        if k == v.BOOL:
            self.fmt_bool(value, verb)
        elif k in (v.INT, v.UINT):
            self.fmt_integer(int(value), k == v.INT, verb)
        elif k == v.FLOAT:
            self.fmt_float(value, verb)
        elif k == v.STRING:
            self.fmt_string(v.text_of(value), verb)
        else:
            self.print_value(value, verb, depth)

    def print_value(self, value, verb: str, depth: int) -> None:
        self.arg, self.value = None, value
        k = v.kind(value)
        if k == v.NIL:  # a nil interface{} inside a slice, map or struct
            self.write(v.ANY + "(nil)" if self.sharp_v else "<nil>")
        elif k == v.MAP:
            self.print_map(value, verb, depth)
        elif k == v.STRUCT:
            self.print_struct(value, verb, depth)
        elif k == v.SLICE:
            self.print_slice(value, verb, depth)
        else:
            self.print_scalar_or_value(value, verb, depth)

    def print_map(self, mapping: dict, verb: str, depth: int) -> None:
        self.write(v.go_type(mapping) + "{" if self.sharp_v else "map[")
        for index, key in enumerate(v.sorted_keys(mapping)):
            if index:
                self.write(", " if self.sharp_v else " ")
            self.print_value(key, verb, depth + 1)
            self.write(":")
            self.print_value(mapping[key], verb, depth + 1)
        self.write("}" if self.sharp_v else "]")

    def print_struct(self, obj, verb: str, depth: int) -> None:
        if self.sharp_v:
            self.write(v.go_type(obj))
        self.write("{")
        for index, name in enumerate(v.struct_fields(type(obj))):
            if index:
                self.write(", " if self.sharp_v else " ")
            if self.plus_v or self.sharp_v:
                self.write(name + ":")
            self.print_value(getattr(obj, name), verb, depth + 1)
        self.write("}")

    def print_slice(self, items, verb: str, depth: int) -> None:
        if self.sharp_v:
            self.write(v.go_type(items) + "{")
        else:
            self.write("[")
        for index, item in enumerate(items):
            if index:
                self.write(", " if self.sharp_v else " ")
            self.print_value(item, verb, depth + 1)
        self.write("}" if self.sharp_v else "]")

    def fmt_pointer(self, arg) -> None:
        if v.kind(arg) in (v.SLICE, v.MAP):
            raise FormatError("verb %p is not supported")
        self.bad_verb("p")

    def bad_verb(self, verb: str) -> None:
        self.write("%!" + verb + "(")
        if self.arg is not _UNSET and self.arg is not None:
            self.write(v.go_type(self.arg) + "=")
            self.print_arg(self.arg, "v")
        elif self.value is not _UNSET:
            self.write(v.go_type(self.value) + "=")
            self.print_value(self.value, "v", 0)
        else:
            self.write("<nil>")
        self.write(")")

    def fmt_bool(self, value: bool, verb: str) -> None:
        if verb in ("t", "v"):
            self.pad("true" if value else "false")
        else:
            self.bad_verb(verb)

    # --- integers -------------------------------------------------------------------------------

    def fmt_integer(self, number: int, signed: bool, verb: str) -> None:
        bases = {"d": (10, _LOWER), "b": (2, _LOWER), "o": (8, _LOWER), "O": (8, _LOWER),
                 "x": (16, _LOWER), "X": (16, _UPPER)}
        if verb == "v" and self.sharp_v and not signed:
            self.fmt_hex_prefixed(number)
        elif verb == "v":
            self.fmt_int(number, 10, verb, _LOWER)
        elif verb in bases:
            base, digits = bases[verb]
            self.fmt_int(number, base, verb, digits)
        elif verb == "c":
            self.pad(chr(_rune(number)))
        elif verb == "q":
            self.pad(quote_rune(_rune(number), ascii_only=self.plus))
        elif verb == "U":
            self.fmt_unicode(number & _UINT64)
        else:
            self.bad_verb(verb)

    def fmt_hex_prefixed(self, number: int) -> None:
        saved, self.sharp = self.sharp, True
        self.fmt_int(number, 16, "v", _LOWER)
        self.sharp = saved

    def fmt_int(self, number: int, base: int, verb: str, digits: str) -> None:
        negative = number < 0
        number = abs(number)
        precision = 0
        if self.prec_present:
            precision = self.prec
            if precision == 0 and number == 0:
                saved, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = saved
                return
        elif self.zero and self.wid_present:
            precision = self.wid - (negative or self.plus or self.space)
        text = _to_base(number, base, digits).rjust(precision, "0")
        if self.sharp:
            text = {2: "0b" + text, 8: text if text.startswith("0") else "0" + text,
                    16: "0" + digits[16] + text}.get(base, text)
        if verb == "O":
            text = "0o" + text
        sign = "-" if negative else "+" if self.plus else " " if self.space else ""
        self.pad_without_zeros(sign + text)

    def fmt_unicode(self, number: int) -> None:
        precision = self.prec if self.prec_present and self.prec > 4 else 4
        text = "U+" + f"{number:X}".rjust(precision, "0")
        if self.sharp and number <= 0x10FFFF and is_print(chr(number)):
            text += " '" + chr(number) + "'"
        self.pad_without_zeros(text)

    # --- floats -----------------------------------------------------------------------------------

    def fmt_float(self, number: float, verb: str) -> None:
        if verb in ("v", "g", "G"):
            self.fmt_float_as(number, "g" if verb == "v" else verb, -1)
        elif verb in ("e", "E", "f", "F"):
            self.fmt_float_as(number, "f" if verb == "F" else verb, 6)
        elif verb in ("b", "x", "X"):
            raise FormatError(f"verb %{verb} for float64 is not supported")
        else:
            self.bad_verb(verb)

    def fmt_float_as(self, number: float, verb: str, precision: int) -> None:
        if self.prec_present:
            precision = self.prec
        text = format_float(number, verb, precision)
        sign, body = (text[0], text[1:]) if text[0] in "+-" else ("+", text)
        if self.space and sign == "+" and not self.plus:
            sign = " "
        if body[0] in "IN":  # Inf and NaN are never zero-padded
            if body[0] == "N" and not self.space and not self.plus:
                sign = ""
            return self.pad_without_zeros(sign + body)
        if self.sharp:
            body = _keep_decimal_point(body, verb, precision)
        if not self.plus and sign == "+":
            return self.pad(body)
        if self.zero and self.wid_present and self.wid > len(body) + 1:
            self.write(sign)  # the sign goes before the zero padding
            self.write_padding(self.wid - len(body) - 1)
            return self.write(body)
        self.pad(sign + body)

    # --- strings ----------------------------------------------------------------------------------

    def fmt_string(self, text: str, verb: str) -> None:
        if verb == "v":
            return self.fmt_q(text) if self.sharp_v else self.fmt_s(text)
        handlers = {"s": self.fmt_s, "q": self.fmt_q, "x": lambda s: self.fmt_sx(s, _LOWER),
                    "X": lambda s: self.fmt_sx(s, _UPPER)}
        if verb in handlers:
            return handlers[verb](text)
        self.bad_verb(verb)

    def truncate(self, text: str) -> str:
        return text[:self.prec] if self.prec_present else text

    def fmt_s(self, text: str) -> None:
        self.pad(self.truncate(text))

    def fmt_q(self, text: str) -> None:
        text = self.truncate(text)
        if self.sharp and can_backquote(text):
            self.pad("`" + text + "`")
        else:
            self.pad(quote(text, ascii_only=self.plus))

    def fmt_sx(self, text: str, digits: str) -> None:
        data = text.encode("utf-8")
        if self.prec_present:
            data = data[:self.prec]
        if not data:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        prefix = "0" + digits[16] if self.sharp else ""
        pairs = [digits[byte >> 4] + digits[byte & 15] for byte in data]
        encoded = " ".join(prefix + pair for pair in pairs) if self.space else prefix + "".join(pairs)
        if self.wid_present and not self.minus:
            self.write_padding(self.wid - len(encoded))
        self.write(encoded)
        if self.wid_present and self.minus:
            self.write_padding(self.wid - len(encoded))


def _keep_decimal_point(body: str, verb: str, precision: int) -> str:
    """The # flag: always print a decimal point; %g keeps its trailing zeros."""
    digits = (6 if precision == -1 else precision) if verb in ("g", "G") else 0
    mantissa, tail = body, ""
    for index, ch in enumerate(body):
        if ch in "eEpP":
            mantissa, tail = body[:index], body[index:]
            break
    significant = mantissa.replace(".", "").lstrip("0")
    digits -= len(significant)
    if "." not in mantissa:
        if mantissa == "0":
            digits -= 1
        mantissa += "."
    return mantissa + "0" * max(digits, 0) + tail


def _rune(number: int) -> int:
    number &= _UINT64
    return 0xFFFD if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF else number


def _to_base(number: int, base: int, digits: str) -> str:
    if base == 10:
        return str(number)
    text = format(number, {2: "b", 8: "o", 16: "x"}[base])
    return text.upper() if digits is _UPPER else text
