"""Trial templates: Experiment → Go template source → rendered job manifest → job object.

Mirrors upstream's manifest generator (shared spec trial-templates.md): the source is
`goTemplate.rawTemplate`, else `data[templatePath]` of the ConfigMap named by
`goTemplate.templateSpec`; it is rendered with katib.gotemplate against
`TrialTemplateParams`; the text (what `trial.spec.runSpec` holds) decodes to the job through
the first YAML/JSON document only. NAS experiments need nothing special: their architecture
arrives as ordinary HyperParameters (`architecture`, `nn_config` for ENAS; `algorithm-settings`,
`search-space`, `num-layers` for DARTS)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml

from katib.errors import KatibError, NotFound
from katib.yamljson import yaml_error_text, yaml_first_document

GetConfigMap = Callable[[str, str], "dict | None"]

TEMPLATE_NAME = "Trial"   # upstream parses with template.New("Trial")
# The most a template source may hold: as much as it may render (katib.gotemplate's output
# cap), and below what an API server stores in one object (etcd's 1.5 MiB).
MAX_TEMPLATE_CHARS = 1 << 20


# The template's data object. Field names are Go's exported names, which templates refer to
# (`{{.Trial}}`, `{{.NameSpace}}`, `{{range .HyperParameters}}{{.Name}}={{.Value}}`).
@dataclass
class HyperParameter:
    Name: str
    Value: str


@dataclass
class TrialTemplateParams:
    Experiment: str
    Trial: str
    NameSpace: str
    HyperParameters: list[HyperParameter] = field(default_factory=list)


# Go names these types in template errors ("can't evaluate field Foo in type
# manifest.trialTemplateParams"); katib.gotemplate prints <last module part>.<qualname>.
TrialTemplateParams.__module__, TrialTemplateParams.__qualname__ = "manifest", "trialTemplateParams"
HyperParameter.__module__, HyperParameter.__qualname__ = "v1alpha3", "ParameterAssignment"


class TrialTemplateError(KatibError):
    """The experiment names no usable template source."""


class DecodeError(TrialTemplateError, ValueError):
    """The rendered text is not one YAML/JSON object."""


def template_source(exp: Any, *, get_configmap: GetConfigMap) -> str:
    """The Go template text of `exp` (dict or Experiment). Raises NotFound with upstream's
    texts: `configmaps "<name>" not found`, or `NotFound` when the ConfigMap lacks the key."""
    go = _go_template(_as_dict(exp))
    if go.get("rawTemplate"):
        return _capped(str(go["rawTemplate"]), "spec.trialTemplate.goTemplate.rawTemplate")
    ref = go.get("templateSpec")
    if not isinstance(ref, dict):
        raise TrialTemplateError("spec.trialTemplate.goTemplate has neither rawTemplate nor templateSpec")
    name, namespace = ref.get("configMapName") or "", ref.get("configMapNamespace") or ""
    configmap = get_configmap(namespace, name) if name and namespace else None
    if configmap is None:
        raise NotFound(f'configmaps "{name}" not found')
    data = configmap.get("data") or {}
    path = ref.get("templatePath") or ""
    if path not in data:
        raise NotFound("NotFound")
    return _capped(str(data[path]), f'configmap "{name}" key "{path}"')


def _capped(source: str, where: str) -> str:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TrialTemplateError(f"{where} holds {len(source)} characters, more than the "
                                 f"{MAX_TEMPLATE_CHARS} a trial template may have")
    return source


def template_params(exp: Any, *, trial_name: str,
                    assignments: Iterable[Any] = ()) -> TrialTemplateParams:
    """The data a trial's template is executed with."""
    meta = _as_dict(exp).get("metadata") or {}
    return TrialTemplateParams(
        Experiment=str(meta.get("name") or ""),
        Trial=trial_name,
        NameSpace=str(meta.get("namespace") or ""),
        HyperParameters=[_hyper_parameter(a) for a in assignments],
    )


def render_trial_template(exp: Any, *, trial_name: str, assignments: Iterable[Any],
                          get_configmap: GetConfigMap) -> str:
    """The job manifest text of trial `trial_name` with `assignments` (dicts with name/value or
    ParameterAssignment). Raises NotFound / TrialTemplateError (source) or
    katib.gotemplate.TemplateError (parse/execute)."""
    template = parse_trial_template(exp, get_configmap=get_configmap)
    return template.execute(template_params(exp, trial_name=trial_name, assignments=assignments))


def parse_trial_template(exp: Any, *, get_configmap: GetConfigMap):
    """The parsed template (katib.gotemplate.Template) of `exp`, to execute for several trials.
    Raises as render_trial_template does."""
    from katib.gotemplate import parse

    return parse(template_source(exp, get_configmap=get_configmap), TEMPLATE_NAME)


def decode_job(text: str) -> dict:
    """The object of the first YAML/JSON document of `text`; DecodeError when there is none."""
    try:
        obj = yaml_first_document(text)
    except yaml.YAMLError as err:
        raise DecodeError(f"error converting YAML to JSON: {yaml_error_text(err)}") from None
    if obj is None:
        raise DecodeError("the rendered template is empty")
    if not isinstance(obj, dict):
        raise DecodeError(f"the rendered template is a {_json_type(obj)}, not an object")
    return obj


def _as_dict(exp: Any) -> dict:
    if isinstance(exp, dict):
        return exp
    return exp.to_dict()


def _go_template(exp: dict) -> dict:
    template = (exp.get("spec") or {}).get("trialTemplate") or {}
    go = template.get("goTemplate") if isinstance(template, dict) else None
    if not isinstance(go, dict):
        raise TrialTemplateError("spec.trialTemplate.goTemplate is not specified")
    return go


def _hyper_parameter(assignment: Any) -> HyperParameter:
    if isinstance(assignment, dict):
        name, value = assignment.get("name"), assignment.get("value")
    else:
        name, value = assignment.name, assignment.value
    return HyperParameter(Name="" if name is None else str(name),
                          Value="" if value is None else str(value))


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, (int, float)) else type(value).__name__
