"""Katib v1alpha3 names and values, exactly as upstream spells them.

Enumerations are StrEnums (equal to their plain string, serialised as the string); API fields
stay typed `str` so that objects with a bad value still load and validation can report it."""
from __future__ import annotations

from enum import StrEnum

GROUP = "kubeflow.org"
VERSION = "v1alpha3"
API_VERSION = f"{GROUP}/{VERSION}"

EXPERIMENT, TRIAL, SUGGESTION = "Experiment", "Trial", "Suggestion"

DEFAULT_KATIB_NAMESPACE = "kubeflow"          # env KATIB_CORE_NAMESPACE
KATIB_CONFIG_NAME = "katib-config"


# --------------------------------------------------------------------------- spec enumerations

class ObjectiveType(StrEnum):
    UNKNOWN = ""
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class ParameterType(StrEnum):
    UNKNOWN = "unknown"
    DOUBLE = "double"
    INT = "int"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"


class ResumePolicy(StrEnum):
    NEVER = "Never"
    LONG_RUNNING = "LongRunning"


class CollectorKind(StrEnum):
    STDOUT = "StdOut"
    FILE = "File"
    TENSORFLOW_EVENT = "TensorFlowEvent"
    PROMETHEUS_METRIC = "PrometheusMetric"
    CUSTOM = "Custom"
    NONE = "None"


class FileSystemKind(StrEnum):
    DIRECTORY = "Directory"
    FILE = "File"
    INVALID = "Invalid"


# Collector kinds whose sidecar the pod webhook injects from katib-config.
AUTO_INJECTED_COLLECTORS = (CollectorKind.STDOUT, CollectorKind.TENSORFLOW_EVENT,
                            CollectorKind.FILE, CollectorKind.PROMETHEUS_METRIC)

ALGORITHM_NAMES = ("random", "grid", "tpe", "bayesianoptimization", "hyperband", "cmaes",
                   "enas", "darts")

# ------------------------------------------------------------------------------------ defaults

DEFAULT_PARALLEL_TRIAL_COUNT = 3
DEFAULT_RESUME_POLICY = ResumePolicy.LONG_RUNNING
DEFAULT_TRIAL_TEMPLATE_CONFIGMAP = "trial-template"
DEFAULT_TRIAL_TEMPLATE_PATH = "defaultTrialTemplate.yaml"
TRIAL_TEMPLATE_LABEL = ("app", "katib-trial-templates")

DEFAULT_METRICS_FILE = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"
DEFAULT_PROMETHEUS_PATH = "/metrics"
DEFAULT_PROMETHEUS_PORT = 8080
METRICS_VOLUME = "metrics-volume"
DEFAULT_METRICS_FILTER = r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)"
STDOUT_COLLECTOR_CONTAINER = "metrics-logger-and-collector"   # StdOut and File
COLLECTOR_CONTAINER = "metrics-collector"                      # every other kind

# Trial template rendering at validation time uses this trial name suffix.
VALIDATION_TRIAL_SUFFIX = "-trial"

# (apiVersion, kind) a trial template may render.
SUPPORTED_JOB_GVKS = (("batch/v1", "Job"), ("kubeflow.org/v1", "TFJob"),
                      ("kubeflow.org/v1", "PyTorchJob"))

# --------------------------------------------------------------- labels, annotations, finalizers

LABEL_EXPERIMENT = "experiment"
LABEL_SUGGESTION = "suggestion"
LABEL_DEPLOYMENT = "deployment"
NAMESPACE_INJECTION_LABEL = "katib-metricscollector-injection"
NAMESPACE_INJECTION_VALUE = "enabled"
ISTIO_INJECT_ANNOTATION = "sidecar.istio.io/inject"
FINALIZER_PROMETHEUS = "update-prometheus-metrics"     # on Experiments
FINALIZER_CLEAN_DB = "clean-metrics-in-db"             # on Trials
# Our addition: on a Trial whose template could not be rendered for its assignment, the error
# (the Trial is created without a runSpec and its controller fails it with this message).
TRIAL_TEMPLATE_ERROR_ANNOTATION = "katib.kubeflow.org/trial-template-error"
# Our addition: on a Trial whose job ran without the metrics collector because the pod webhook
# missed its pod (unreachable when the pod was created), the uid of that job: the trial
# controller deleted it to run the job once more, and does so only once per trial.
TRIAL_RERUN_ANNOTATION = "katib.kubeflow.org/rerun-of-job"


# ---------------------------------------------------------------------------------- conditions

class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ExperimentConditionType(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrialConditionType(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    KILLED = "Killed"
    FAILED = "Failed"


class SuggestionConditionType(StrEnum):
    CREATED = "Created"
    DEPLOYMENT_READY = "DeploymentReady"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


# Experiment reasons and messages.
EXPERIMENT_CREATED_REASON = "ExperimentCreated"
EXPERIMENT_CREATED_MESSAGE = "Experiment is created"
EXPERIMENT_RUNNING_REASON = "ExperimentRunning"
EXPERIMENT_RUNNING_MESSAGE = "Experiment is running"
EXPERIMENT_RESTARTING_REASON = "ExperimentRestarting"
EXPERIMENT_RESTARTING_MESSAGE = "Experiment is restarted"
EXPERIMENT_GOAL_REACHED_REASON = "ExperimentGoalReached"
EXPERIMENT_GOAL_REACHED_MESSAGE = "Experiment has succeeded because Objective goal has reached"
EXPERIMENT_MAX_TRIALS_REACHED_REASON = "ExperimentMaxTrialsReached"
EXPERIMENT_MAX_TRIALS_REACHED_MESSAGE = "Experiment has succeeded because max trial count has reached"
EXPERIMENT_SUGGESTION_END_REACHED_REASON = "ExperimentSuggestionEndReached"
EXPERIMENT_SUGGESTION_END_REACHED_MESSAGE = (
    "Experiment has succeeded because suggestion service has reached the end")
EXPERIMENT_FAILED_REASON = "ExperimentFailed"
EXPERIMENT_MAX_FAILED_MESSAGE = "Experiment has failed because max failed count has reached"
EXPERIMENT_SUGGESTION_FAILED_MESSAGE = "Suggestion has failed"
EXPERIMENT_KILLED_REASON = "ExperimentKilled"

# Trial reasons and messages.
TRIAL_CREATED_REASON = "TrialCreated"
TRIAL_CREATED_MESSAGE = "Trial is created"
TRIAL_RUNNING_REASON = "TrialRunning"
TRIAL_RUNNING_MESSAGE = "Trial is running"
TRIAL_SUCCEEDED_REASON = "TrialSucceeded"
TRIAL_SUCCEEDED_MESSAGE = "Trial has succeeded"
TRIAL_METRICS_UNAVAILABLE_REASON = "MetricsUnavailable"
TRIAL_METRICS_UNAVAILABLE_MESSAGE = "Metrics are not available"
TRIAL_FAILED_REASON = "TrialFailed"
TRIAL_FAILED_MESSAGE = "Trial has failed"
TRIAL_KILLED_REASON = "TrialKilled"
TRIAL_KILLED_MESSAGE = "Trial is killed because its experiment has completed"
# Our additions: a trial that can never become a Job fails instead of being retried forever.
TRIAL_INVALID_TEMPLATE_REASON = "InvalidTrialTemplate"
TRIAL_INVALID_RUN_SPEC_REASON = "InvalidRunSpec"

# Suggestion reasons and messages.
SUGGESTION_CREATED_REASON = "SuggestionCreated"
SUGGESTION_CREATED_MESSAGE = "Suggestion is created"
SUGGESTION_DEPLOYMENT_NOT_READY_REASON = "DeploymentNotReady"
SUGGESTION_DEPLOYMENT_NOT_READY_MESSAGE = "Deployment is not ready"
SUGGESTION_DEPLOYMENT_READY_REASON = "DeploymentReady"
SUGGESTION_DEPLOYMENT_READY_MESSAGE = "Deployment is ready"
SUGGESTION_RUNNING_REASON = "SuggestionRunning"
SUGGESTION_RUNNING_MESSAGE = "Suggestion is running"
SUGGESTION_FAILED_REASON = "SuggestionFailed"
SUGGESTION_FAILED_MESSAGE_PREFIX = "Validation failed: "
SUGGESTION_SUCCEEDED_REASON = "SuggestionSucceeded"
SUGGESTION_SUCCEEDED_MESSAGE = "Suggestion is succeeded"
SUGGESTION_KILLED_REASON = "SuggestionKilled"
# Our addition: the algorithm handed out its whole search space (ends the experiment).
SUGGESTION_EXHAUSTED_REASON = "SuggestionExhausted"
SUGGESTION_EXHAUSTED_MESSAGE = "Suggestion has handed out every assignment of the search space"

# Event reasons.
EVENT_RECONCILE_FAILED = "ReconcileFailed"
EVENT_RECONCILE_ERROR = "ReconcileError"
EVENT_JOB_CREATED = "JobCreated"
EVENT_JOB_DELETED = "JobDeleted"
EVENT_JOB_SUCCEEDED = "JobSucceeded"
EVENT_JOB_FAILED = "JobFailed"
EVENT_JOB_RUNNING = "JobRunning"
EVENT_METRICS_UNAVAILABLE = "MetricsUnavailable"
EVENT_JOB_RERUN = "JobRerun"                           # ours: see TRIAL_RERUN_ANNOTATION
