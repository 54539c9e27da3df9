"""Parser: tokens → named parse trees (the main template plus any define/block).

Follows text/template/parse/parse.go (Go 1.19) closely enough that the same inputs are
rejected with the same messages: Go reports the line of the most recently read token,
so we track that token too. We add the column, and a nesting limit Go does not have."""

from .errors import Location, TemplateError
from .funcs import BUILTINS
from .gonum import NumberSyntaxError, parse_float, parse_number, rune_number
from .goquote import UnquoteError, quote, unquote, unquote_rune
from .lexer import (ASSIGN, BOOL, CHAR, CHAR_CONST, COMPLEX, DECLARE, DOT, EOF, ERROR, FIELD, IDENTIFIER,
                    LEFT_DELIM, LEFT_PAREN, NUMBER, PIPE, RAW_STRING, RIGHT_DELIM, RIGHT_PAREN, SPACE, STRING,
                    TEXT, VARIABLE, Token, TokenStream, lex)
from .nodes import (ActionNode, BoolNode, BranchNode, BreakNode, ChainNode, CommandNode, ContinueNode,
                    DotNode, ElseNode, EndNode, FieldNode, IdentifierNode, ListNode, NilNode, Node,
                    NumberNode, PipeNode, StringNode, TemplateNode, TextNode, VariableNode, is_empty_tree)

MAX_NESTING = 50  # if/range/with/block and parentheses; keeps recursion far from Python's limit

_OPERAND_STARTS = {BOOL, CHAR_CONST, COMPLEX, DOT, FIELD, IDENTIFIER, NUMBER, "nil", RAW_STRING, STRING,
                   VARIABLE, LEFT_PAREN}
_LITERALS = (BoolNode, DotNode, NilNode, NumberNode, StringNode)


def parse_trees(source: str, name: str) -> dict[str, ListNode]:
    try:
        return _Parser(source, name).parse()
    except RecursionError:
        raise TemplateError(f"template: {name}: nesting too deep") from None


class _Parser(TokenStream):
    def __init__(self, source: str, name: str):
        super().__init__(lex(source))
        self.name = name
        self.loc = Location(source)
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.depth = 0
        self.trees: dict[str, ListNode] = {}

    def expect(self, kind: str, context: str) -> Token:
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    # --- errors -----------------------------------------------------------------------------

    def errorf(self, message: str, *, at: int | None = None):
        pos = self.tokens[self.seen if at is None else at].pos
        line = self.loc.line(pos)
        raise TemplateError(f"template: {self.name}:{line}:{self.loc.go_col(pos)}: {message}",
                            line, self.loc.col(pos))

    def unexpected(self, token: Token, context: str):
        if token.kind != ERROR:
            self.errorf(f"unexpected {token.describe()} in {context}")
        extra = ""
        if self.action_line and self.action_line != self.loc.line(token.pos):
            extra = f" in action started at {self.name}:{self.action_line}"
            if token.val.endswith(" action"):
                extra = extra[len(" in action"):]
        self.errorf(token.val + extra)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.errorf(f"nesting too deep (more than {MAX_NESTING} levels)")

    # --- templates ----------------------------------------------------------------------------

    def parse(self) -> dict[str, ListNode]:
        root = ListNode(self.peek().pos)
        while self.peek().kind != EOF:
            if self.peek().kind == LEFT_DELIM:
                mark = self.index
                self.next()
                if self.next_non_space().kind == "define":
                    self.in_new_scope(self.parse_definition)
                    continue
                self.index = mark
            node = self.text_or_action()
            if isinstance(node, (EndNode, ElseNode)):
                self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self.add_tree(self.name, root)
        return self.trees

    def in_new_scope(self, parse_body):
        """Run parse_body as the top of a new template: only $ is defined, not in a range."""
        saved = self.vars, self.range_depth, self.action_line
        self.vars, self.range_depth, self.action_line = ["$"], 0, 0
        try:
            return parse_body()
        finally:
            self.vars, self.range_depth, self.action_line = saved

    def parse_definition(self) -> None:
        context = "define clause"
        token = self.next_non_space()
        if token.kind not in (STRING, RAW_STRING):
            self.unexpected(token, context)
        name = self.unquote(token)
        self.expect(RIGHT_DELIM, context)
        body, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add_tree(name, body)

    def add_tree(self, name: str, body: ListNode) -> None:
        existing = self.trees.get(name)
        if existing is None or is_empty_tree(existing):
            self.trees[name] = body
        elif not is_empty_tree(body):
            self.errorf(f"template: multiple definition of template {quote(name)}")

    def item_list(self) -> tuple[ListNode, Node]:
        """Nodes up to the {{end}} or {{else}} that closes them (returned separately)."""
        body = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, (EndNode, ElseNode)):
                return body, node
            body.nodes.append(node)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        token = self.next_non_space()
        if token.kind == TEXT:
            return TextNode(token.pos, token.val)
        if token.kind != LEFT_DELIM:
            self.unexpected(token, "input")
        self.action_line = self.loc.line(token.pos)
        try:
            return self.action()
        finally:
            self.action_line = 0

    # --- actions ------------------------------------------------------------------------------

    def action(self) -> Node:
        token = self.next_non_space()
        control = {"block": self.block_control, "break": self.break_control,
                   "continue": self.continue_control, "else": self.else_control, "end": self.end_control,
                   "if": self.if_control, "range": self.range_control, "template": self.template_control,
                   "with": self.with_control}.get(token.kind)
        if control is not None:
            return control(token)
        self.backup()
        return ActionNode(self.peek().pos, self.pipeline("command", RIGHT_DELIM))

    def break_control(self, token: Token) -> Node:
        return self.loop_control(token, "break", BreakNode)

    def continue_control(self, token: Token) -> Node:
        return self.loop_control(token, "continue", ContinueNode)

    def loop_control(self, token: Token, keyword: str, node_type) -> Node:
        closing = self.next_non_space()
        if closing.kind != RIGHT_DELIM:
            self.unexpected(closing, "{{%s}}" % keyword)
        if self.range_depth == 0:
            self.errorf("{{%s}} outside {{range}}" % keyword)
        return node_type(token.pos)

    def if_control(self, token: Token | None = None) -> Node:
        return self.branch("if", allow_else_if=True)

    def range_control(self, token: Token) -> Node:
        return self.branch("range", allow_else_if=False)

    def with_control(self, token: Token) -> Node:
        return self.branch("with", allow_else_if=False)

    def branch(self, keyword: str, *, allow_else_if: bool) -> BranchNode:
        mark = len(self.vars)
        self.enter()
        try:
            pipe = self.pipeline(keyword, RIGHT_DELIM)
            self.range_depth += keyword == "range"
            body, closing = self.item_list()
            self.range_depth -= keyword == "range"
            else_body = None
            if isinstance(closing, ElseNode):
                else_body = self.else_branch(closing, allow_else_if=allow_else_if)
            return BranchNode(keyword, pipe.pos, pipe, body, else_body)
        finally:
            del self.vars[mark:]
            self.depth -= 1

    def else_branch(self, else_node: ElseNode, *, allow_else_if: bool) -> ListNode:
        if allow_else_if and self.peek().kind == "if":
            # {{else if x}} is {{else}}{{if x}}...{{end}} sharing one {{end}}.
            self.next()
            return ListNode(else_node.pos, [self.if_control()])
        else_body, closing = self.item_list()
        if not isinstance(closing, EndNode):
            self.errorf(f"expected end; found {closing}")
        return else_body

    def else_control(self, token: Token) -> Node:
        following = self.peek_non_space()
        if following.kind == "if":
            return ElseNode(following.pos)
        return ElseNode(self.expect(RIGHT_DELIM, "else").pos)

    def end_control(self, token: Token) -> Node:
        return EndNode(self.expect(RIGHT_DELIM, "end").pos)

    def block_control(self, token: Token) -> Node:
        context = "block clause"
        name_token = self.next_non_space()
        name = self.template_name(name_token, context)
        pipe = self.pipeline(context, RIGHT_DELIM)
        opened_at = self.seen  # Go reports a bad block end at the block's own line

        def parse_block_body():
            self.enter()
            body, end = self.item_list()
            if not isinstance(end, EndNode):
                self.errorf(f"unexpected {end} in {context}", at=opened_at)
            self.add_tree(name, body)
            self.depth -= 1

        self.in_new_scope(parse_block_body)
        return TemplateNode(name_token.pos, name, pipe)

    def template_control(self, token: Token) -> Node:
        context = "template clause"
        name_token = self.next_non_space()
        name = self.template_name(name_token, context)
        pipe = None
        if self.next_non_space().kind != RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, RIGHT_DELIM)
        return TemplateNode(name_token.pos, name, pipe)

    def template_name(self, token: Token, context: str) -> str:
        if token.kind not in (STRING, RAW_STRING):
            self.unexpected(token, context)
        return self.unquote(token)

    # --- pipelines ------------------------------------------------------------------------------

    def pipeline(self, context: str, end: str) -> PipeNode:
        pipe = PipeNode(self.peek_non_space().pos)
        self.declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.kind not in _OPERAND_STARTS:
                self.unexpected(token, context)
            self.backup()
            pipe.cmds.append(self.command())

    def declarations(self, pipe: PipeNode, context: str) -> None:
        """`$x :=`, `$x =`, and in range `$i, $v :=`."""
        while self.peek_non_space().kind == VARIABLE:
            mark = self.index
            variable = self.next()
            following = self.peek_non_space()
            if following.kind in (ASSIGN, DECLARE):
                pipe.is_assign = following.kind == ASSIGN
                self.next_non_space()
                self.declare(pipe, variable)
                return
            if following.kind != CHAR or following.val != ",":
                self.index = mark  # a variable used as an operand
                return
            self.next_non_space()
            self.declare(pipe, variable)
            if context != "range" or len(pipe.decl) >= 2:
                self.errorf(f"too many declarations in {context}")
            if self.peek_non_space().kind not in (VARIABLE, RIGHT_DELIM, RIGHT_PAREN):
                self.errorf("range can only initialize variables")

    def declare(self, pipe: PipeNode, variable: Token) -> None:
        pipe.decl.append(VariableNode(variable.pos, [variable.val]))
        self.vars.append(variable.val)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], _LITERALS):
                self.errorf(f"non executable command in pipeline stage {stage}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.kind == SPACE:
                continue
            if token.kind in (RIGHT_DELIM, RIGHT_PAREN):
                self.backup()
            elif token.kind != PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().kind != FIELD:
            return node
        chain = ChainNode(self.peek().pos, node)
        while self.peek().kind == FIELD:
            chain.fields.append(self.next().val[1:])
        if isinstance(node, FieldNode):
            return FieldNode(chain.pos, node.ident + chain.fields)
        if isinstance(node, VariableNode):
            return VariableNode(chain.pos, node.ident + chain.fields)
        if isinstance(node, _LITERALS):
            self.errorf(f"unexpected . after term {quote(str(node))}")
        return chain

    def term(self) -> Node | None:
        token = self.next_non_space()
        kind, pos = token.kind, token.pos
        if kind == IDENTIFIER:
            if token.val not in BUILTINS:
                self.errorf(f"function {quote(token.val)} not defined")
            return IdentifierNode(pos, token.val)
        if kind == DOT:
            return DotNode(pos)
        if kind == "nil":
            return NilNode(pos)
        if kind == VARIABLE:
            return self.use_var(token)
        if kind == FIELD:
            return FieldNode(pos, [token.val[1:]])
        if kind == BOOL:
            return BoolNode(pos, token.val == "true")
        if kind in (CHAR_CONST, COMPLEX, NUMBER):
            return NumberNode(pos, self.number(token))
        if kind == LEFT_PAREN:
            return self.parenthesized()
        if kind in (STRING, RAW_STRING):
            return StringNode(pos, token.val, self.unquote(token))
        self.backup()
        return None

    def parenthesized(self) -> PipeNode:
        self.enter()
        pipe = self.pipeline("parenthesized pipeline", RIGHT_PAREN)
        self.depth -= 1
        return pipe

    def use_var(self, token: Token) -> VariableNode:
        if token.val not in self.vars:
            self.errorf(f"undefined variable {quote(token.val)}")
        return VariableNode(token.pos, [token.val])

    def number(self, token: Token):
        if token.kind == CHAR_CONST:
            try:
                return rune_number(token.val, unquote_rune(token.val))
            except UnquoteError as err:
                self.errorf(str(err))
        is_imaginary = token.val.endswith("i") and parse_float(token.val[:-1]) is not None
        if token.kind == COMPLEX or is_imaginary:
            self.errorf(f"complex number {token.val} is not supported")
        try:
            return parse_number(token.val)
        except NumberSyntaxError as err:
            self.errorf(str(err))

    def unquote(self, token: Token) -> str:
        try:
            return unquote(token.val)
        except UnquoteError as err:
            self.errorf(str(err))
