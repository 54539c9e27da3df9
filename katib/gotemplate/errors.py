"""TemplateError and the Go-style locations it carries.

Messages follow text/template: `template: NAME:LINE:COL: ...`. The column in the
message is Go's (0-based byte offset within the line, as in Go's exec errors; Go's
parse errors omit it, we add it). The attributes are for humans: 1-based line and
1-based character column."""
import bisect
import re


class TemplateError(Exception):
    """A Go template failed to parse or execute; `str(err)` is the Go-style message."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


class Location:
    """Line/column arithmetic for one template source. The parser asks for the line of every
    action, so lines come from a table of line starts built once (bisect: O(log n) a query,
    where counting newlines from the start made parsing quadratic in the template's size)."""

    def __init__(self, source: str):
        self.source = source
        self._starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self._starts, pos)

    def line_start(self, pos: int) -> int:
        return self._starts[bisect.bisect_right(self._starts, pos) - 1]

    def go_col(self, pos: int) -> int:
        """Go's column: bytes from the start of the line, 0-based."""
        return len(self.source[self.line_start(pos):pos].encode("utf-8"))

    def col(self, pos: int) -> int:
        """Human column: characters from the start of the line, 1-based."""
        return pos - self.line_start(pos) + 1

    def where(self, name: str, pos: int) -> str:
        return f"{name}:{self.line(pos)}:{self.go_col(pos)}"
