"""Parse-tree nodes. `str(node)` reproduces Go's Node.String(), which error messages quote
(`executing "trial" at <.Foo>`); `pos` is the character offset of the node in the source."""

from dataclasses import dataclass, field

from .gonum import NumberValue
from .goquote import quote


class Node:
    pos: int


@dataclass(eq=False)
class ListNode(Node):
    pos: int
    nodes: list = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(node) for node in self.nodes)


@dataclass(eq=False)
class TextNode(Node):
    pos: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class DotNode(Node):
    pos: int

    def __str__(self) -> str:
        return "."


@dataclass(eq=False)
class NilNode(Node):
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclass(eq=False)
class BoolNode(Node):
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(eq=False)
class NumberNode(Node):
    pos: int
    number: NumberValue

    def __str__(self) -> str:
        return self.number.text


@dataclass(eq=False)
class StringNode(Node):
    pos: int
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(eq=False)
class IdentifierNode(Node):
    """A function name."""
    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class FieldNode(Node):
    """.A.B: ident is ["A", "B"]."""
    pos: int
    ident: list

    def __str__(self) -> str:
        return "".join("." + name for name in self.ident)


@dataclass(eq=False)
class VariableNode(Node):
    """$x.A: ident is ["$x", "A"]."""
    pos: int
    ident: list

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(eq=False)
class ChainNode(Node):
    """(pipeline).A.B: fields of a term that is not a field or variable."""
    pos: int
    node: Node
    fields: list = field(default_factory=list)

    def __str__(self) -> str:
        head = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return head + "".join("." + name for name in self.fields)


@dataclass(eq=False)
class CommandNode(Node):
    pos: int
    args: list = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, PipeNode) else str(arg) for arg in self.args)


@dataclass(eq=False)
class PipeNode(Node):
    pos: int
    decl: list = field(default_factory=list)  # VariableNodes
    is_assign: bool = False
    cmds: list = field(default_factory=list)

    def __str__(self) -> str:
        # Go prints ":=" even for assignments.
        head = ", ".join(str(var) for var in self.decl) + " := " if self.decl else ""
        return head + " | ".join(str(cmd) for cmd in self.cmds)


@dataclass(eq=False)
class ActionNode(Node):
    pos: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(eq=False)
class BranchNode(Node):
    """if / range / with."""
    keyword: str
    pos: int
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.body)
        if self.else_body is not None:
            text += "{{else}}" + str(self.else_body)
        return text + "{{end}}"


@dataclass(eq=False)
class BreakNode(Node):
    pos: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(eq=False)
class ContinueNode(Node):
    pos: int

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(eq=False)
class TemplateNode(Node):
    pos: int
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        return "{{template " + quote(self.name) + ("" if self.pipe is None else " " + str(self.pipe)) + "}}"


@dataclass(eq=False)
class EndNode(Node):
    """{{end}}: only returned to the parser, never kept in a tree."""
    pos: int

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(eq=False)
class ElseNode(Node):
    pos: int

    def __str__(self) -> str:
        return "{{else}}"


def is_empty_tree(node: Node) -> bool:
    """A template body holding only spaces and comments does not replace a definition."""
    if isinstance(node, ListNode):
        return all(is_empty_tree(child) for child in node.nodes)
    if isinstance(node, TextNode):
        return node.text.strip() == ""
    return False
