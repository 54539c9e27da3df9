"""Go text/template, in pure Python: what Katib v1alpha3 trial templates are written in.

    render(source, data, *, name="template") -> str       # parse + execute
    parse(source, name="template").execute(data) -> str
    TemplateError                                          # .message, .line, .col

Behaves as Go 1.19's text/template (checked against it by tests/gotemplate_fixtures):
output, whitespace trimming, and error messages, e.g.
`template: trial:1:2: executing "trial" at <.Foo>: can't evaluate field Foo in type main.Data`.

Data model: a dict is a map[string]interface {} (a missing key prints `<no value>`); a
dataclass instance is a struct, whose declared fields are the only attributes reachable
(a missing or lower-case field is an error); lists and tuples are slices; str, bool,
int, float are themselves; None is nil. Other Python types are an execution error.

Supported: the whole template language of Go 1.19 (actions, pipelines, variables, if /
else if / with / range / break / continue, define / template / block, comments, trim
markers) with its builtin functions. There are no custom functions and no methods.
Not supported (TemplateError): complex numbers, printf's %p and float %b/%x, strings that
are not valid UTF-8. Limits Go does not have: nesting depth 50, 100 nested {{template}}
calls, 1 MiB of output (and per function result), 200,000 execution steps."""

from .errors import TemplateError
from .template import Template

__all__ = ["Template", "TemplateError", "parse", "render"]


def parse(source: str, name: str = "template") -> Template:
    """Parse `source`; raises TemplateError (`template: NAME:LINE:COL: ...`) if it is invalid."""
    return Template(source, name)


def render(source: str, data, *, name: str = "template") -> str:
    """Parse and execute in one step; raises TemplateError on parse or execution errors."""
    return parse(source, name).execute(data)
