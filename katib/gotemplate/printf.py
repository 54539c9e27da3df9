"""fmt.Sprintf's directive parsing: %[flags][width][.precision]verb, with `*` and `[n]`.

Follows doPrintf in Go's fmt/print.go, including its markers for malformed directives:
%!(NOVERB), %!d(MISSING), %!d(BADINDEX), %!(BADWIDTH), %!(BADPREC), %!(EXTRA type=value)."""

from .gofmt import Printer
from .values import INT, UINT, go_type, kind

_FLAGS = "#0+- "


def sprintf(format_text: str, args: list) -> str:
    printer = Printer()
    _Directives(printer, format_text, args).run()
    return printer.text()


def _too_large(number: int) -> bool:
    return number > 1_000_000 or number < -1_000_000


def _parse_number(text: str, start: int, end: int) -> tuple[int, bool, int]:
    """fmt's parsenum: (number, found, index after it); an absurd number eats the rest."""
    number, found, index = 0, False, start
    while index < end and "0" <= text[index] <= "9":
        if _too_large(number):
            return 0, False, end
        number = number * 10 + int(text[index])
        found = True
        index += 1
    return number, found, index


def _parse_arg_index(text: str) -> tuple[int, int, bool]:
    """`[n]` at the start of text → (n - 1, characters consumed, well formed)."""
    if len(text) < 3:
        return 0, 1, False
    close = text.find("]", 1)
    if close < 0:
        return 0, 1, False
    number, found, after = _parse_number(text, 1, close)
    if not found or after != close:
        return 0, close + 1, False
    return number - 1, close + 1, True


class _Directives:
    def __init__(self, printer: Printer, text: str, args: list):
        self.p = printer
        self.text = text
        self.end = len(text)
        self.args = args
        self.arg_num = 0
        self.reordered = False
        self.good_arg_num = True

    def run(self) -> None:
        i = 0
        while i < self.end:
            self.good_arg_num = True
            start = i
            i = self.text.find("%", i)
            if i < 0:
                i = self.end
            if i > start:
                self.p.write(self.text[start:i])
            if i >= self.end:
                break
            i = self.directive(i + 1)
            if i is None:
                break
        self.report_extra_args()

    def directive(self, i: int) -> int | None:
        """Format one directive starting after its '%'; the index after it (None: stop)."""
        p, text, end = self.p, self.text, self.end
        p.clear_flags()
        i = self.flags(i)
        if i < end and "a" <= text[i] <= "z" and self.arg_num < len(self.args):  # the common case
            self.print_verb(text[i])
            return i + 1
        i, after_index = self.arg_index(i)
        if i < end and text[i] == "*":
            p.wid, p.wid_present = self.int_from_arg()
            if not p.wid_present:
                p.write("%!(BADWIDTH)")
            if p.wid < 0:
                p.wid, p.minus, p.zero = -p.wid, True, False
            i, after_index = i + 1, False
        else:
            p.wid, p.wid_present, i = _parse_number(text, i, end)
            if after_index and p.wid_present:
                self.good_arg_num = False
        if i + 1 < end and text[i] == ".":
            i, after_index = self.precision(i + 1, after_index)
        if not after_index:
            i, after_index = self.arg_index(i)
        if i >= end:
            p.write("%!(NOVERB)")
            return None
        self.finish(text[i])
        return i + 1

    def flags(self, i: int) -> int:
        p = self.p
        while i < self.end and self.text[i] in _FLAGS:
            flag = self.text[i]
            if flag == "#":
                p.sharp = True
            elif flag == "0":
                p.zero = not p.minus  # only pad with zeros on the left
            elif flag == "+":
                p.plus = True
            elif flag == "-":
                p.minus, p.zero = True, False
            else:
                p.space = True
            i += 1
        return i

    def precision(self, i: int, after_index: bool) -> tuple[int, bool]:
        p = self.p
        if after_index:  # "%[3].2d"
            self.good_arg_num = False
        i, after_index = self.arg_index(i)
        if i < self.end and self.text[i] == "*":
            p.prec, p.prec_present = self.int_from_arg()
            if p.prec < 0:
                p.prec, p.prec_present = 0, False
            if not p.prec_present:
                p.write("%!(BADPREC)")
            return i + 1, False
        p.prec, p.prec_present, i = _parse_number(self.text, i, self.end)
        if not p.prec_present:
            p.prec, p.prec_present = 0, True
        return i, after_index

    def arg_index(self, i: int) -> tuple[int, bool]:
        """An explicit argument index [n] at i: (index after it, whether one was found)."""
        if i >= self.end or self.text[i] != "[":
            return i, False
        self.reordered = True
        index, width, ok = _parse_arg_index(self.text[i:])
        if ok and 0 <= index < len(self.args):
            self.arg_num = index
            return i + width, True
        self.good_arg_num = False
        return i + width, ok

    def int_from_arg(self) -> tuple[int, bool]:
        number, is_int = 0, False
        if self.arg_num < len(self.args):
            arg = self.args[self.arg_num]
            if kind(arg) in (INT, UINT):
                number, is_int = int(arg), True
            self.arg_num += 1
            if _too_large(number):
                number, is_int = 0, False
        return number, is_int

    def finish(self, verb: str) -> None:
        if verb == "%":  # takes no operand and ignores width and precision
            self.p.write("%")
        elif not self.good_arg_num:
            self.p.write(f"%!{verb}(BADINDEX)")
        elif self.arg_num >= len(self.args):
            self.p.write(f"%!{verb}(MISSING)")
        else:
            self.print_verb(verb)

    def print_verb(self, verb: str) -> None:
        p = self.p
        if verb == "v":  # %#v is Go syntax and %+v names struct fields: flags of their own
            p.sharp_v, p.sharp = p.sharp, False
            p.plus_v, p.plus = p.plus, False
        p.print_arg(self.args[self.arg_num], verb)
        self.arg_num += 1

    def report_extra_args(self) -> None:
        if self.reordered or self.arg_num >= len(self.args):
            return
        p = self.p
        p.clear_flags()
        p.write("%!(EXTRA ")
        for index, arg in enumerate(self.args[self.arg_num:]):
            if index:
                p.write(", ")
            if arg is None:
                p.write("<nil>")
            else:
                p.write(go_type(arg) + "=")
                p.print_arg(arg, "v")
        p.write(")")
