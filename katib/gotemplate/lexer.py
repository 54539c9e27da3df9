"""Lexer: template source → tokens.

Follows text/template/parse/lex.go (Go 1.19): the same token kinds, trim-marker rules
(`{{- ` and ` -}}` need the space, so `{{-3}}` is the number -3) and error texts. Lexing
stops at the first error, which becomes the last token (kind ERROR)."""

from typing import NamedTuple

from .goquote import is_alphanumeric, is_space, quote, rune_repr

LEFT, RIGHT, LEFT_COMMENT, RIGHT_COMMENT = "{{", "}}", "/*", "*/"
SPACES = " \t\r\n"

ERROR, BOOL, CHAR, CHAR_CONST, COMPLEX = "error", "bool", "char", "char constant", "complex"
ASSIGN, DECLARE, EOF, FIELD, IDENTIFIER = "assign", "declare", "EOF", "field", "identifier"
LEFT_DELIM, LEFT_PAREN, NUMBER, PIPE, RAW_STRING = "left delim", "(", "number", "pipe", "raw string"
RIGHT_DELIM, RIGHT_PAREN, SPACE, STRING, TEXT = "right delim", ")", "space", "string", "text"
VARIABLE = "variable"
KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"}
DOT = "."  # a keyword kind too: it prints as <.>


class Token(NamedTuple):
    kind: str
    pos: int
    val: str

    def describe(self) -> str:
        """How Go's parser names the token in an error message."""
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.val
        if self.kind in KEYWORDS or self.kind == DOT:
            return f"<{self.val}>"
        if len(self.val.encode("utf-8")) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def lex(source: str) -> list[Token]:
    return _Lexer(source).run()


class TokenStream:
    """The parser's view of the tokens: read, peek and back up, skipping spaces on request.

    `seen` is the furthest token read so far; Go's parser reports errors at its line."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.index = 0
        self.seen = 0

    def next(self) -> Token:
        at = min(self.index, len(self.tokens) - 1)
        self.seen = max(self.seen, at)
        self.index += 1
        return self.tokens[at]

    def backup(self) -> None:
        self.index -= 1

    def peek(self) -> Token:
        token = self.next()
        self.backup()
        return token

    def next_non_space(self) -> Token:
        token = self.next()
        while token.kind == SPACE:
            token = self.next()
        return token

    def peek_non_space(self) -> Token:
        token = self.next_non_space()
        self.backup()
        return token


def _has_left_trim(text: str, at: int) -> bool:
    return text[at:at + 1] == "-" and is_space(text[at + 1:at + 2])


def _has_right_trim(text: str, at: int) -> bool:
    return is_space(text[at:at + 1]) and text[at + 1:at + 2] == "-"


class _Lexer:
    def __init__(self, source: str):
        self.src = source
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        state = self.lex_text
        while state is not None:
            state = state()
        return self.tokens

    # --- primitives ---------------------------------------------------------------------

    def next(self) -> str:
        ch = self.src[self.pos:self.pos + 1]
        self.pos += len(ch)
        return ch

    def peek(self) -> str:
        return self.src[self.pos:self.pos + 1]

    def accept(self, valid: str) -> bool:
        ch = self.peek()
        if ch and ch in valid:
            self.pos += 1
            return True
        return False

    def accept_run(self, valid: str) -> None:
        while self.accept(valid):
            pass

    def emit(self, kind: str) -> None:
        self.tokens.append(Token(kind, self.start, self.src[self.start:self.pos]))
        self.start = self.pos

    def ignore(self) -> None:
        self.start = self.pos

    def fail(self, message: str) -> None:
        self.tokens.append(Token(ERROR, self.start, message))
        return None

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at a right delimiter, it carries a trim marker)."""
        if _has_right_trim(self.src, self.pos) and self.src.startswith(RIGHT, self.pos + 2):
            return True, True
        return self.src.startswith(RIGHT, self.pos), False

    def left_trim_length(self, at: int) -> int:
        rest = self.src[at:]
        return len(rest) - len(rest.lstrip(SPACES))

    def at_terminator(self) -> bool:
        ch = self.peek()
        return ch in ("", ".", ",", "|", ":", ")", "(") or is_space(ch) or self.src.startswith(RIGHT, self.pos)

    # --- states ---------------------------------------------------------------------------

    def lex_text(self):
        found = self.src.find(LEFT, self.pos)
        if found < 0:
            self.pos = len(self.src)
            if self.pos > self.start:
                self.emit(TEXT)
            self.emit(EOF)
            return None
        trim = 0
        if _has_left_trim(self.src, found + len(LEFT)):
            text = self.src[self.start:found]
            trim = len(text) - len(text.rstrip(SPACES))
        self.pos = found - trim
        if self.pos > self.start:
            self.emit(TEXT)
        self.pos = found
        self.ignore()
        return self.lex_left_delim

    def lex_left_delim(self):
        self.pos += len(LEFT)
        after_marker = 2 if _has_left_trim(self.src, self.pos) else 0
        if self.src.startswith(LEFT_COMMENT, self.pos + after_marker):
            self.pos += after_marker
            self.ignore()
            return self.lex_comment
        self.emit(LEFT_DELIM)
        self.pos += after_marker
        self.ignore()
        self.paren_depth = 0
        return self.lex_inside_action

    def lex_comment(self):
        end = self.src.find(RIGHT_COMMENT, self.pos + len(LEFT_COMMENT))
        if end < 0:
            return self.fail("unclosed comment")
        self.pos = end + len(RIGHT_COMMENT)
        delim, trim = self.at_right_delim()
        if not delim:
            return self.fail("comment ends before closing delimiter")
        self.pos += (2 if trim else 0) + len(RIGHT)
        if trim:
            self.pos += self.left_trim_length(self.pos)
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        trim = _has_right_trim(self.src, self.pos)
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(RIGHT)
        self.emit(RIGHT_DELIM)
        if trim:
            self.pos += self.left_trim_length(self.pos)
            self.ignore()
        return self.lex_text

    def lex_inside_action(self):
        delim, _ = self.at_right_delim()
        if delim:
            return self.lex_right_delim if self.paren_depth == 0 else self.fail("unclosed left paren")
        ch = self.next()
        if ch == "":
            return self.fail("unclosed action")
        if is_space(ch):
            self.pos -= 1  # put it back: it may start " -}}"
            return self.lex_space
        simple = {"=": ASSIGN, "|": PIPE, "(": LEFT_PAREN}
        if ch in simple:
            self.emit(simple[ch])
            self.paren_depth += ch == "("
            return self.lex_inside_action
        handler = {":": self.lex_declare, '"': self.lex_quote, "`": self.lex_raw_quote,
                   "$": self.lex_variable, "'": self.lex_char, ")": self.lex_right_paren}.get(ch)
        if handler is not None:
            return handler
        if ch == "." and self.peek() != "" and not "0" <= self.peek() <= "9":
            return self.lex_field
        if ch in "+-." or "0" <= ch <= "9":
            return self.lex_number_from_start
        if is_alphanumeric(ch):
            return self.lex_identifier
        if ord(ch) < 0x80 and ch.isprintable():
            self.emit(CHAR)
            return self.lex_inside_action
        return self.fail(f"unrecognized character in action: {rune_repr(ch)}")

    def lex_declare(self):
        if self.next() != "=":
            return self.fail("expected :=")
        self.emit(DECLARE)
        return self.lex_inside_action

    def lex_right_paren(self):
        self.emit(RIGHT_PAREN)
        self.paren_depth -= 1
        if self.paren_depth < 0:
            return self.fail("unexpected right paren U+0029 ')'")
        return self.lex_inside_action

    def lex_space(self):
        count = 0
        while is_space(self.peek()):
            self.pos += 1
            count += 1
        if _has_right_trim(self.src, self.pos - 1) and self.src.startswith(RIGHT, self.pos + 1):
            self.pos -= 1  # the last space belongs to " -}}"
            if count == 1:
                return self.lex_right_delim
        self.emit(SPACE)
        return self.lex_inside_action

    def lex_identifier(self):
        while is_alphanumeric(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            return self.fail(f"bad character {rune_repr(self.peek())}")
        word = self.src[self.start:self.pos]
        if word in KEYWORDS:
            self.emit(word)
        elif word in ("true", "false"):
            self.emit(BOOL)
        else:
            self.emit(IDENTIFIER)
        return self.lex_inside_action

    def lex_field(self):
        return self.lex_field_or_variable(FIELD)

    def lex_variable(self):
        if self.at_terminator():
            self.emit(VARIABLE)
            return self.lex_inside_action
        return self.lex_field_or_variable(VARIABLE)

    def lex_field_or_variable(self, kind: str):
        if self.at_terminator():
            self.emit(VARIABLE if kind == VARIABLE else DOT)
            return self.lex_inside_action
        while is_alphanumeric(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            return self.fail(f"bad character {rune_repr(self.peek())}")
        self.emit(kind)
        return self.lex_inside_action

    def lex_char(self):
        return self.lex_quoted("'", CHAR_CONST, "unterminated character constant")

    def lex_quote(self):
        return self.lex_quoted('"', STRING, "unterminated quoted string")

    def lex_quoted(self, quote_char: str, kind: str, error: str):
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch not in ("", "\n"):
                    continue
            if ch in ("", "\n"):
                return self.fail(error)
            if ch == quote_char:
                break
        self.emit(kind)
        return self.lex_inside_action

    def lex_raw_quote(self):
        end = self.src.find("`", self.pos)
        if end < 0:
            return self.fail("unterminated raw quoted string")
        self.pos = end + 1
        self.emit(RAW_STRING)
        return self.lex_inside_action

    def lex_number_from_start(self):
        self.pos = self.start
        if not self.scan_number():
            return self.fail(f"bad number syntax: {quote(self.src[self.start:self.pos])}")
        if self.peek() in ("+", "-"):
            if not self.scan_number() or self.src[self.pos - 1] != "i":
                return self.fail(f"bad number syntax: {quote(self.src[self.start:self.pos])}")
            self.emit(COMPLEX)
        else:
            self.emit(NUMBER)
        return self.lex_inside_action

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if is_alphanumeric(self.peek()):
            self.pos += 1
            return False
        return True
