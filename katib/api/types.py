"""Experiment, Trial, Suggestion and the common types of kubeflow.org/v1alpha3 as dataclasses.

Field for field the Go structs of upstream pkg/apis/controller/*/v1alpha3 (shared spec
api-v1alpha3.md); JSON names come from katib.serde (camelCase, `list_` → `list`). Every field
is optional: None means absent, as in the JSON. Unknown keys survive in `extras`.
`metadata`, `httpGet` and `customCollector` are core/v1 types and stay plain dicts.
Times are RFC 3339 strings (katib.clock.rfc3339)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from katib.serde import Int32, NumStr, Struct

# ------------------------------------------------------------------------------- common types


@dataclass(kw_only=True)
class AlgorithmSetting(Struct):
    name: str | None = None
    value: str | None = None


@dataclass(kw_only=True)
class EarlyStoppingSetting(Struct):
    name: str | None = None
    value: str | None = None


@dataclass(kw_only=True)
class EarlyStoppingSpec(Struct):
    """Declared by v1alpha3, used by nothing."""
    early_stopping_algorithm_name: str | None = None
    early_stopping_settings: list[EarlyStoppingSetting] | None = None


@dataclass(kw_only=True)
class AlgorithmSpec(Struct):
    algorithm_name: str | None = None
    algorithm_settings: list[AlgorithmSetting] | None = None
    early_stopping: EarlyStoppingSpec | None = None


@dataclass(kw_only=True)
class ObjectiveSpec(Struct):
    type: str | None = None                      # ObjectiveType
    goal: float | None = None
    objective_metric_name: str | None = None
    additional_metric_names: list[str] | None = None


@dataclass(kw_only=True)
class ParameterAssignment(Struct):
    name: str | None = None
    value: str | None = None


@dataclass(kw_only=True)
class Metric(Struct):
    name: str | None = None
    value: float | None = None                   # absent means 0 (Go omitempty)


@dataclass(kw_only=True)
class Observation(Struct):
    metrics: list[Metric] | None = None


@dataclass(kw_only=True)
class FileSystemPath(Struct):
    path: str | None = None
    kind: str | None = None                      # FileSystemKind


@dataclass(kw_only=True)
class FilterSpec(Struct):
    metrics_format: list[str] | None = None


@dataclass(kw_only=True)
class SourceSpec(Struct):
    http_get: dict[str, Any] | None = None       # core/v1 HTTPGetAction
    file_system_path: FileSystemPath | None = None
    filter: FilterSpec | None = None


@dataclass(kw_only=True)
class CollectorSpec(Struct):
    kind: str | None = None                      # CollectorKind
    custom_collector: dict[str, Any] | None = None   # core/v1 Container


@dataclass(kw_only=True)
class MetricsCollectorSpec(Struct):
    source: SourceSpec | None = None
    collector: CollectorSpec | None = None


@dataclass(kw_only=True)
class Condition(Struct):
    """ExperimentCondition, TrialCondition and SuggestionCondition share this shape."""
    type: str | None = None
    status: str | None = None                    # ConditionStatus
    reason: str | None = None
    message: str | None = None
    last_update_time: str | None = None
    last_transition_time: str | None = None


# --------------------------------------------------------------------------------- experiment


@dataclass(kw_only=True)
class FeasibleSpace(Struct):
    """Bounds and lists are strings in the API; YAML numbers are accepted and stringified."""
    max: NumStr | None = None
    min: NumStr | None = None
    list_: list[NumStr] | None = None
    step: NumStr | None = None


@dataclass(kw_only=True)
class ParameterSpec(Struct):
    name: str | None = None
    parameter_type: str | None = None            # ParameterType
    feasible_space: FeasibleSpace | None = None


@dataclass(kw_only=True)
class TemplateSpec(Struct):
    config_map_name: str | None = None
    config_map_namespace: str | None = None
    template_path: str | None = None


@dataclass(kw_only=True)
class GoTemplate(Struct):
    raw_template: str | None = None
    template_spec: TemplateSpec | None = None


@dataclass(kw_only=True)
class TrialTemplate(Struct):
    retain: bool | None = None
    go_template: GoTemplate | None = None


@dataclass(kw_only=True)
class GraphConfig(Struct):
    num_layers: Int32 | None = None
    input_sizes: list[Int32] | None = None
    output_sizes: list[Int32] | None = None


@dataclass(kw_only=True)
class Operation(Struct):
    operation_type: str | None = None
    parameters: list[ParameterSpec] | None = None


@dataclass(kw_only=True)
class NasConfig(Struct):
    graph_config: GraphConfig | None = None
    operations: list[Operation] | None = None


@dataclass(kw_only=True)
class ExperimentSpec(Struct):
    parameters: list[ParameterSpec] | None = None
    objective: ObjectiveSpec | None = None
    algorithm: AlgorithmSpec | None = None
    trial_template: TrialTemplate | None = None
    parallel_trial_count: Int32 | None = None
    max_trial_count: Int32 | None = None
    max_failed_trial_count: Int32 | None = None
    metrics_collector_spec: MetricsCollectorSpec | None = None
    nas_config: NasConfig | None = None
    resume_policy: str | None = None             # ResumePolicy


@dataclass(kw_only=True)
class OptimalTrial(Struct):
    best_trial_name: str | None = None
    parameter_assignments: list[ParameterAssignment] | None = None
    observation: Observation | None = None


@dataclass(kw_only=True)
class ExperimentStatus(Struct):
    start_time: str | None = None
    completion_time: str | None = None
    last_reconcile_time: str | None = None
    conditions: list[Condition] | None = None
    current_optimal_trial: OptimalTrial | None = None
    running_trial_list: list[str] | None = None
    pending_trial_list: list[str] | None = None
    failed_trial_list: list[str] | None = None
    succeeded_trial_list: list[str] | None = None
    killed_trial_list: list[str] | None = None
    trials: Int32 | None = None
    trials_succeeded: Int32 | None = None
    trials_failed: Int32 | None = None
    trials_killed: Int32 | None = None
    trials_pending: Int32 | None = None
    trials_running: Int32 | None = None


# ---------------------------------------------------------------------------- trial, suggestion


@dataclass(kw_only=True)
class TrialSpec(Struct):
    objective: ObjectiveSpec | None = None
    parameter_assignments: list[ParameterAssignment] | None = None
    run_spec: str | None = None                  # the rendered job manifest
    retain_run: bool | None = None
    metrics_collector: MetricsCollectorSpec | None = None


@dataclass(kw_only=True)
class TrialStatus(Struct):
    start_time: str | None = None
    completion_time: str | None = None
    last_reconcile_time: str | None = None
    conditions: list[Condition] | None = None
    observation: Observation | None = None


@dataclass(kw_only=True)
class TrialAssignment(Struct):
    parameter_assignments: list[ParameterAssignment] | None = None
    name: str | None = None


@dataclass(kw_only=True)
class SuggestionSpec(Struct):
    algorithm_name: str | None = None
    requests: Int32 | None = None


@dataclass(kw_only=True)
class SuggestionStatus(Struct):
    algorithm_settings: list[AlgorithmSetting] | None = None
    suggestion_count: Int32 | None = None
    suggestions: list[TrialAssignment] | None = None
    start_time: str | None = None
    completion_time: str | None = None
    last_reconcile_time: str | None = None
    conditions: list[Condition] | None = None


# ------------------------------------------------------------------------- top-level resources


@dataclass(kw_only=True)
class Resource(Struct):
    """apiVersion, kind and a plain-dict ObjectMeta; `name`/`namespace` read the metadata."""
    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str((self.metadata or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.metadata or {}).get("namespace") or "")


@dataclass(kw_only=True)
class Experiment(Resource):
    spec: ExperimentSpec | None = None
    status: ExperimentStatus | None = None


@dataclass(kw_only=True)
class Trial(Resource):
    spec: TrialSpec | None = None
    status: TrialStatus | None = None


@dataclass(kw_only=True)
class Suggestion(Resource):
    spec: SuggestionSpec | None = None
    status: SuggestionStatus | None = None


KINDS: dict[str, type[Resource]] = {"Experiment": Experiment, "Trial": Trial,
                                    "Suggestion": Suggestion}
