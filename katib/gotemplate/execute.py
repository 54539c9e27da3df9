"""Executor: a parsed template + Python data → output text.

Follows text/template/exec.go (Go 1.19): dot and $ rebinding, variables, pipelines (the
piped value becomes the last argument), lazy and/or, if/with/range/break/continue,
{{template}}, and Go's error messages `template: NAME:LINE:COL: executing "NAME" at
<NODE>: ...`, where NODE is the node being evaluated when the error occurred.
Only dataclass fields and dict keys are reachable; output size, steps and template-call
depth are limited so a template cannot run away."""

from .errors import Location, TemplateError
from .funcs import BUILTINS, STRING_PARAM, VALUE, Builtin
from .gofmt import sprint
from .goquote import quote
from .nodes import (ActionNode, BoolNode, BranchNode, BreakNode, ChainNode, ContinueNode, DotNode, FieldNode,
                    IdentifierNode, ListNode, NilNode, Node, NumberNode, PipeNode, StringNode, TemplateNode,
                    TextNode, VariableNode)
from .values import (ANY, INVALID, MAP, MISSING, SLICE, STRING, STRUCT, ExecFailure, FuncError, Iface,
                     as_interface_arg, concrete, elements, field_value, go_type, indirect, is_exported, is_true,
                     kind, map_key_type, sorted_keys, struct_fields, text_of)

MAX_OUTPUT_CHARS = 1 << 20  # 1 MiB: far above any Kubernetes object a trial template renders
MAX_STEPS = 200_000  # nodes walked; a Katib template takes a few dozen
MAX_TEMPLATE_DEPTH = 100  # nested {{template}} calls (Go allows 100000)

_NO_FINAL = object()  # no value piped in from a previous command (Go's missingVal)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def execute(trees: dict[str, ListNode], *, source: str, parse_name: str, name: str, data) -> str:
    state = _State(trees, Location(source), parse_name, name)
    root = MISSING if data is None else data
    state.vars.append(["$", root])
    try:
        state.walk(root, trees[name])
    except ExecFailure as failure:
        raise state.error(str(failure)) from None
    except RecursionError:
        raise state.error("nesting too deep") from None
    return "".join(state.out)


class _State:
    def __init__(self, trees: dict[str, ListNode], loc: Location, parse_name: str, name: str):
        self.trees = trees
        self.loc = loc
        self.parse_name = parse_name
        self.name = name  # the template being executed
        self.node: Node | None = None  # the node being evaluated, for errors
        self.vars: list[list] = []  # [name, value] pairs, innermost last
        self.depth = 0
        self.out: list[str] = []
        self.out_chars = 0
        self.steps = 0

    def error(self, message: str) -> TemplateError:
        if self.node is None:
            return TemplateError(f"template: {self.name}: {message}")
        pos = self.node.pos
        where = self.loc.where(self.parse_name, pos)
        return TemplateError(f"template: {where}: executing {quote(self.name)} at <{self.node}>: {message}",
                             self.loc.line(pos), self.loc.col(pos))

    def fail(self, message: str):
        raise ExecFailure(message)

    def write(self, text: str) -> None:
        self.out_chars += len(text)
        if self.out_chars > MAX_OUTPUT_CHARS:
            self.fail(f"output exceeds {MAX_OUTPUT_CHARS} characters")
        self.out.append(text)

    # --- walking ----------------------------------------------------------------------------

    def walk(self, dot, node: Node) -> None:
        self.node = node
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.fail(f"execution exceeds {MAX_STEPS} steps")
        _WALKERS[type(node)](self, dot, node)

    def walk_list(self, dot, node: ListNode) -> None:
        for child in node.nodes:
            self.walk(dot, child)

    def walk_text(self, dot, node: TextNode) -> None:
        self.write(node.text)

    def walk_action(self, dot, node: ActionNode) -> None:
        value = self.eval_pipeline(dot, node.pipe)
        if not node.pipe.decl:
            self.node = node
            self.write(_printed(value))

    def walk_break(self, dot, node: BreakNode) -> None:
        raise _Break()

    def walk_continue(self, dot, node: ContinueNode) -> None:
        raise _Continue()

    def walk_branch(self, dot, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            if node.keyword == "range":
                self.walk_range(dot, node)
                return
            value = self.eval_pipeline(dot, node.pipe)
            if is_true(value):
                self.walk(value if node.keyword == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, node: BranchNode) -> None:
        value = self.eval_pipeline(dot, node.pipe)
        items = self.range_items(value)
        if not items:
            if node.else_body is not None:
                self.walk(dot, node.else_body)
            return
        inner_mark = len(self.vars)
        try:
            for key, element in items:
                self.range_once(node, inner_mark, key, element)
        except _Break:
            pass

    def range_items(self, value) -> list[tuple]:
        k = kind(value)
        if k == SLICE:
            return list(enumerate(elements(value)))
        if k == MAP:
            return [(key, Iface(value[key])) for key in sorted_keys(value)]
        if k == INVALID:
            return []
        self.fail(f"range can't iterate over {sprint([value])}")

    def range_once(self, node: BranchNode, mark: int, key, element) -> None:
        if node.pipe.decl:
            self.vars[-1][1] = element
        if len(node.pipe.decl) > 1:
            self.vars[-2][1] = key
        try:
            self.walk(element, node.body)
        except _Continue:
            pass
        finally:
            del self.vars[mark:]

    def walk_template(self, dot, node: TemplateNode) -> None:
        tree = self.trees.get(node.name)
        if tree is None:
            self.fail(f"template {quote(node.name)} not defined")
        if self.depth >= MAX_TEMPLATE_DEPTH:
            self.fail(f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})")
        value = self.eval_pipeline(dot, node.pipe)
        outer = self.name, self.vars, self.depth
        # No dynamic scoping: the called template sees only $ (= its dot).
        self.name, self.vars, self.depth = node.name, [["$", value]], self.depth + 1
        self.walk(value, tree)
        self.name, self.vars, self.depth = outer  # not on errors: they name the inner template, as Go's do

    # --- variables -------------------------------------------------------------------------

    def var_slot(self, name: str) -> list:
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot
        self.fail(f"undefined variable: {name}")

    # --- evaluation ------------------------------------------------------------------------

    def eval_pipeline(self, dot, pipe: PipeNode | None):
        if pipe is None:
            return MISSING
        self.node = pipe
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = concrete(self.eval_command(dot, cmd, value))
        for variable in pipe.decl:
            if pipe.is_assign:
                self.var_slot(variable.ident[0])[1] = value
            else:
                self.vars.append([variable.ident[0], value])
        return value

    def eval_command(self, dot, cmd, final):
        first = cmd.args[0]
        handler = _COMMANDS.get(type(first))
        if handler is not None:
            return handler(self, dot, first, cmd, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, NilNode):
            self.fail("nil is not a command")
        return self.eval_literal(dot, first)

    def eval_literal(self, dot, node: Node):
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NumberNode):
            return self.ideal_constant(node)
        return node.text  # StringNode

    def not_a_function(self, args, final) -> None:
        if (args is not None and len(args) > 1) or final is not _NO_FINAL:
            self.fail(f"can't give argument to non-function {args[0]}")

    def ideal_constant(self, node: NumberNode):
        """A number whose type only its spelling tells: float if it looks like one, else int."""
        self.node = node
        number = node.number
        text = number.text
        is_hex_int = text[:2] in ("0x", "0X") and len(text) > 2 and not any(c in text for c in "pP")
        if number.is_float and not is_hex_int and text[0] != "'" and any(c in text for c in ".eEpP"):
            return number.float_value
        if number.is_int:
            return number.int_value
        self.fail(f"{text} overflows int")

    def eval_field_node(self, dot, node: FieldNode, args, final):
        self.node = node
        return self.eval_field_chain(dot, node.ident, args, final)

    def eval_chain_node(self, dot, node: ChainNode, args, final):
        self.node = node
        if isinstance(node.node, NilNode):
            self.fail(f"indirection through explicit nil in {node}")
        receiver = self.eval_arg(dot, None, node.node)
        return self.eval_field_chain(receiver, node.fields, args, final)

    def eval_variable_node(self, dot, node: VariableNode, args, final):
        self.node = node
        value = self.var_slot(node.ident[0])[1]
        if len(node.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(value, node.ident[1:], args, final)

    def eval_field_chain(self, receiver, names: list, args, final):
        for name in names[:-1]:
            receiver = self.eval_field(receiver, name, None, _NO_FINAL)
        return self.eval_field(receiver, names[-1], args, final)

    def eval_field(self, receiver, name: str, args, final):
        if receiver is MISSING:
            return MISSING
        target, is_nil = indirect(receiver)
        if is_nil:
            self.fail(f"nil pointer evaluating {go_type(receiver)}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        k = kind(target)
        if k == STRUCT and name in struct_fields(type(target)):
            if not is_exported(name):
                self.fail(f"{name} is an unexported field of struct type {go_type(receiver)}")
            if has_args:
                self.fail(f"{name} has arguments but cannot be invoked as function")
            return field_value(target, name)
        if k == MAP and map_key_type(target) != "int":
            if has_args:
                self.fail(f"{name} is not a method but has arguments")
            return Iface(target[name]) if name in target else MISSING
        self.fail(f"can't evaluate field {name} in type {go_type(receiver)}")

    def eval_function(self, dot, node: IdentifierNode, cmd: Node, args, final):
        self.node = node
        return self.eval_call(dot, BUILTINS[node.name], cmd, args, final)

    def eval_call(self, dot, builtin: Builtin, cmd: Node, args, final):
        args = args[1:] if args else []
        count = len(args) + (final is not _NO_FINAL)
        self.check_arity(builtin, count, len(args))
        if builtin.name in ("and", "or"):
            return self.eval_and_or(dot, builtin.name, args, final)
        argv = [self.eval_arg(dot, builtin.param_type(i), arg) for i, arg in enumerate(args)]
        if final is not _NO_FINAL:
            argv.append(self.validate_type(final, builtin.param_type(count - 1)))
        argv = [as_interface_arg(arg) if builtin.param_type(i) == ANY else arg for i, arg in enumerate(argv)]
        try:
            result = builtin.call(*argv)
        except FuncError as err:
            self.node = cmd
            self.fail(f"error calling {builtin.name}: {err}")
        if isinstance(result, str) and len(result) > MAX_OUTPUT_CHARS:  # e.g. a string doubled in a loop
            self.node = cmd
            self.fail(f"error calling {builtin.name}: result exceeds {MAX_OUTPUT_CHARS} characters")
        return result

    def check_arity(self, builtin: Builtin, count: int, explicit: int) -> None:
        wanted = len(builtin.params)
        if builtin.variadic and count < wanted - 1:
            self.fail(f"wrong number of args for {builtin.name}: want at least {wanted - 1} got {explicit}")
        if not builtin.variadic and count != wanted:
            self.fail(f"wrong number of args for {builtin.name}: want {wanted} got {count}")

    def eval_and_or(self, dot, name: str, args: list, final):
        """and/or stop at the first argument that decides, and return it."""
        value = MISSING
        for arg in args:
            value = self.eval_arg(dot, VALUE, arg)
            if is_true(value) == (name == "or"):
                return value
        return value if final is _NO_FINAL else final

    def eval_arg(self, dot, param: str | None, node: Node):
        self.node = node
        if isinstance(node, DotNode):
            return self.validate_type(dot, param)
        if isinstance(node, NilNode):
            if param == STRING_PARAM:
                self.fail("cannot assign nil to string")
            return MISSING
        evaluate = _ARGUMENTS.get(type(node))
        if evaluate is not None:
            return self.validate_type(evaluate(self, dot, node), param)
        if param == STRING_PARAM and not isinstance(node, StringNode):
            self.fail(f"expected string; found {node}")
        return self.eval_literal(dot, node)

    def validate_type(self, value, param: str | None):
        if param != STRING_PARAM:
            return value
        if value is MISSING:
            self.fail("invalid value; expected string")
        inner = value.value if isinstance(value, Iface) and value.value is not None else value
        if kind(inner) != STRING:
            self.fail(f"wrong type for value; expected string; got {go_type(inner)}")
        return text_of(inner)


def _printed(value) -> str:
    """fmt.Sprint of an action's value, with fast paths for the usual scalars."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if type(value) is bool:
        return "true" if value else "false"
    return "<no value>" if value is MISSING else sprint([value])


_WALKERS = {ListNode: _State.walk_list, TextNode: _State.walk_text, ActionNode: _State.walk_action,
            BranchNode: _State.walk_branch, BreakNode: _State.walk_break, ContinueNode: _State.walk_continue,
            TemplateNode: _State.walk_template}

_COMMANDS = {  # first word of a command → evaluation with the command's arguments
    FieldNode: lambda state, dot, node, cmd, final: state.eval_field_node(dot, node, cmd.args, final),
    ChainNode: lambda state, dot, node, cmd, final: state.eval_chain_node(dot, node, cmd.args, final),
    VariableNode: lambda state, dot, node, cmd, final: state.eval_variable_node(dot, node, cmd.args, final),
    IdentifierNode: lambda state, dot, node, cmd, final: state.eval_function(dot, node, cmd, cmd.args, final),
}

_ARGUMENTS = {  # an argument that is itself evaluated (not a literal)
    FieldNode: lambda state, dot, node: state.eval_field_node(dot, node, [node], _NO_FINAL),
    VariableNode: lambda state, dot, node: state.eval_variable_node(dot, node, None, _NO_FINAL),
    PipeNode: lambda state, dot, node: state.eval_pipeline(dot, node),
    IdentifierNode: lambda state, dot, node: state.eval_function(dot, node, node, None, _NO_FINAL),
    ChainNode: lambda state, dot, node: state.eval_chain_node(dot, node, None, _NO_FINAL),
}
