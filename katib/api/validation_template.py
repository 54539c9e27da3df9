"""Admission checks of spec.trialTemplate (upstream validateTrialTemplate; shared spec
defaults-and-validation.md §2.2).

The template is rendered as for a real trial named `<experiment>-trial`; the first document of
the output must be a Job, TFJob or PyTorchJob named `<experiment>-trial` in the experiment's
namespace, with metadata an API server accepts. Upstream rendered it without hyperparameters,
so a parameter name or value that breaks the manifest (`error converting YAML to JSON`) passed
admission and every trial then failed to start; here it is rendered once per representative
assignment list too (the real names, values from katib.algorithms.samples), and a failure names
the assignment. Every message is upstream's sentence `Invalid spec.trialTemplate: ...`,
reported at path `spec.trialTemplate` in the bare `path: message` form (the sentence already
shows what is wrong). Unlike upstream, the namespace and name problems are both reported."""
from __future__ import annotations

from typing import Callable, Sequence

from katib.api import constants as c
from katib.api.meta import metadata_errors
from katib.api.templates import decode_job, parse_trial_template, template_params
from katib.errors import FieldError, KatibError

PATH = "spec.trialTemplate"
Assignments = Sequence[tuple[str, str]]


def validate_trial_template(exp: dict, *, get_configmap: Callable[[str, str], dict | None],
                            assignments: Sequence[Assignments] = ()) -> list[FieldError]:
    """Every problem of the (defaulted) Experiment `exp`'s trial template, rendered with no
    hyperparameters and with each of `assignments` ((name, value) lists)."""
    from katib.gotemplate import TemplateError

    meta = exp.get("metadata") or {}
    name = str(meta.get("name") or meta.get("generateName") or "")
    namespace = str(meta.get("namespace") or "")
    trial_name = name + c.VALIDATION_TRIAL_SUFFIX
    try:
        template = parse_trial_template(exp, get_configmap=get_configmap)
        job = decode_job(template.execute(template_params(exp, trial_name=trial_name)))
    except (KatibError, TemplateError) as err:   # DecodeError is a KatibError
        return [_error(f"{err}.")]
    errors = _check_job(job, namespace=namespace, trial_name=trial_name)
    for row in assignments:
        params = template_params(exp, trial_name=trial_name,
                                 assignments=[{"name": n, "value": v} for n, v in row])
        try:
            decode_job(template.execute(params))
        except (KatibError, TemplateError) as err:
            return errors + [_error(f"{err} (rendered with {_shown(row)}).")]
    return errors


def _shown(row: Assignments) -> str:
    return ", ".join(f"{n}={v}" for n, v in row)


def _check_job(job: dict, *, namespace: str, trial_name: str) -> list[FieldError]:
    errors = []
    api_version, kind = str(job.get("apiVersion") or ""), str(job.get("kind") or "")
    if (api_version, kind) not in c.SUPPORTED_JOB_GVKS:
        errors.append(_error(f"Job type {gvk_text(api_version, kind)} not supported."))
    meta = job.get("metadata") if isinstance(job.get("metadata"), dict) else {}
    if meta.get("namespace") != namespace:
        errors.append(_error(f"metadata.namespace should be {namespace} or {{{{.NameSpace}}}}"))
    if meta.get("name") != trial_name:
        errors.append(_error("metadata.name should be {{.Trial}}"))
    # Labels, annotations, ... the API server would refuse when the trial creates the Job.
    errors += [_error(f"the Job's {e}.") for e in metadata_errors(meta)]
    return errors


def gvk_text(api_version: str, kind: str) -> str:
    """Go's GroupVersionKind.String(): `batch/v1, Kind=Job`, `/v1, Kind=Pod`."""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def _error(detail: str) -> FieldError:
    return FieldError(PATH, f"Invalid spec.trialTemplate: {detail}", kind="")
