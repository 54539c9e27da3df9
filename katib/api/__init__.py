"""Katib v1alpha3 API: pure data types (`types`), names (`constants`), defaulting
(`defaults`), admission checks (`validation`, `validation_collector`) and trial templates
(`templates`). Nothing here does I/O; ConfigMaps and namespaces come in as callables/dicts."""
from katib.api.types import (  # noqa: F401  (re-exported)
    AlgorithmSetting, AlgorithmSpec, CollectorSpec, Condition, EarlyStoppingSetting,
    EarlyStoppingSpec, Experiment, ExperimentSpec, ExperimentStatus, FeasibleSpace,
    FileSystemPath, FilterSpec, GoTemplate, GraphConfig, Metric, MetricsCollectorSpec, NasConfig,
    Observation, Operation, OptimalTrial, ParameterAssignment, ParameterSpec, Resource,
    SourceSpec, Suggestion, SuggestionSpec, SuggestionStatus, TemplateSpec, Trial,
    TrialAssignment, TrialSpec, TrialStatus, TrialTemplate, KINDS,
)
