"""Template: a parsed Go text/template, ready to execute over Python data."""

from .execute import execute
from .parser import parse_trees


class Template:
    """The result of parse(); execute() may be called any number of times, concurrently."""

    def __init__(self, source: str, name: str):
        self.name = name
        self.source = source
        self._trees = parse_trees(source, name)

    def execute(self, data) -> str:
        """Render with `data` as dot and $ (see the package docstring for the data model)."""
        return execute(self._trees, source=self.source, parse_name=self.name, name=self.name, data=data)

    def __repr__(self) -> str:
        return f"Template({self.name!r})"
