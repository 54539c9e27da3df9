"""Admission checks of spec.trialTemplate (upstream validateTrialTemplate; shared spec
defaults-and-validation.md §2.2).

The template is rendered as for a real trial named `<experiment>-trial`, without
hyperparameters; the first document of the output must be a Job, TFJob or PyTorchJob named
`<experiment>-trial` in the experiment's namespace. Every message is upstream's sentence
`Invalid spec.trialTemplate: ...`, reported at path `spec.trialTemplate` in the bare
`path: message` form (the sentence already shows what is wrong). Unlike upstream, the
namespace and name problems are both reported when both occur."""
from __future__ import annotations

from typing import Callable

from katib.api import constants as c
from katib.api.templates import DecodeError, decode_job, render_trial_template
from katib.errors import FieldError, KatibError

PATH = "spec.trialTemplate"


def validate_trial_template(exp: dict, *,
                            get_configmap: Callable[[str, str], dict | None]) -> list[FieldError]:
    """Every problem of the (defaulted) Experiment `exp`'s trial template."""
    from katib.gotemplate import TemplateError

    meta = exp.get("metadata") or {}
    name = str(meta.get("name") or meta.get("generateName") or "")
    namespace = str(meta.get("namespace") or "")
    trial_name = name + c.VALIDATION_TRIAL_SUFFIX
    try:
        text = render_trial_template(exp, trial_name=trial_name, assignments=[],
                                     get_configmap=get_configmap)
        job = decode_job(text)
    except (KatibError, TemplateError, DecodeError) as err:
        return [_error(f"{err}.")]
    return _check_job(job, namespace=namespace, trial_name=trial_name)


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
    return errors


def gvk_text(api_version: str, kind: str) -> str:
    """Go's GroupVersionKind.String(): `batch/v1, Kind=Job`, `/v1, Kind=Pod`."""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def _error(detail: str) -> FieldError:
    return FieldError(PATH, f"Invalid spec.trialTemplate: {detail}", kind="")
