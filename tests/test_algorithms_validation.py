"""validate_algorithm: one case per rule per algorithm, asserting field paths and messages.

Upstream messages come from defaults-and-validation.md §4; unlike upstream every problem is
reported, so each case asserts the complete list."""
from __future__ import annotations

import copy

import pytest

from katib.algorithms.registry import ALGORITHMS, validate_algorithm

S = "spec.algorithm.algorithmSettings"


def param(name, kind, **space):
    values = space.pop("values", None)
    if values is not None:
        space["list"] = values
    return {"name": name, "parameterType": kind, "feasibleSpace": space}


PARAMETERS = [
    param("lr", "double", min="0.01", max="0.05", step="0.01"),
    param("--num-epochs", "int", min="1", max="9"),
    param("optimizer", "categorical", values=["sgd", "adam"]),
]
NAS = {
    "graphConfig": {"numLayers": 8, "inputSizes": [32, 32, 3], "outputSizes": [10]},
    "operations": [
        {"operationType": "convolution", "parameters": [
            param("filter_size", "categorical", values=["3", "5"]),
            param("stride", "categorical", values=["1", "2"]),
        ]},
        {"operationType": "reduction", "parameters": [param("pool_size", "int", min="2", max="3", step="1")]},
    ],
}
NAS_ALGORITHMS = ("enas", "darts")


def settings(**values):
    return [{"name": name, "value": value} for name, value in values.items()]


def run(name, *, parameters=None, algorithm_settings=(), parallel=3, nas=None):
    if parameters is None and nas is None:
        parameters, nas = ([], NAS) if name in NAS_ALGORITHMS else (PARAMETERS, None)
    return validate_algorithm(name, parameters=parameters, settings=list(algorithm_settings),
                              parallel_trial_count=parallel, nas_config=nas)


def nas_with(mutate):
    nas = copy.deepcopy(NAS)
    mutate(nas)
    return nas


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_valid_experiment_has_no_problems(name):
    extra = {"hyperband": settings(r_l="9", resource_name="--num-epochs")}.get(name, [])
    assert run(name, algorithm_settings=extra, parallel=9) == []


def test_there_are_exactly_the_eight_upstream_names_and_issue_9s():
    assert sorted(ALGORITHMS) == ["auto", "bayesianoptimization", "cmaes", "darts", "enas", "grid", "hyperband",
                                  "multivariate-tpe", "random", "sobol", "tpe"]


def test_unknown_algorithm_name():
    assert run("chocolate-random") == [(
        "spec.algorithm.algorithmName",
        "unknown algorithm name chocolate-random: must be one of auto, bayesianoptimization, cmaes, darts, enas, "
        "grid, hyperband, multivariate-tpe, random, sobol, tpe",
    )]


CASES = [
    # random (hyperopt service)
    ("random", dict(algorithm_settings=settings(random_state="10")), []),
    ("random", dict(algorithm_settings=settings(random_state="-1")),
     [(f"{S}[0].value", "random_state should be great or equal than zero")]),
    ("random", dict(algorithm_settings=settings(random_state="abc")),
     [(f"{S}[0].value", "failed to validate random_state(abc): invalid literal for int() with base 10: 'abc'")]),
    ("random", dict(algorithm_settings=settings(unknown_conf="1111")),
     [(f"{S}[0].name", "unknown setting unknown_conf for algorithm random")]),
    ("random", dict(parameters=[], nas=NAS),
     [("spec.parameters", "algorithm random needs spec.parameters (spec.nasConfig is only used by enas and darts)")]),
    # tpe (hyperopt service)
    ("tpe", dict(algorithm_settings=settings(random_state="10", gamma="0.25", prior_weight="1.0",
                                             n_EI_candidates="24")), []),
    ("tpe", dict(algorithm_settings=settings(gamma="1.5")), [(f"{S}[0].value", "gamma should be in the range of (0, 1)")]),
    ("tpe", dict(algorithm_settings=settings(gamma="0")), [(f"{S}[0].value", "gamma should be in the range of (0, 1)")]),
    ("tpe", dict(algorithm_settings=settings(prior_weight="0")),
     [(f"{S}[0].value", "prior_weight should be great than zero")]),
    ("tpe", dict(algorithm_settings=settings(prior_weight="aaa")),
     [(f"{S}[0].value", "failed to validate prior_weight(aaa): could not convert string to float: 'aaa'")]),
    ("tpe", dict(algorithm_settings=settings(n_EI_candidates="0")),
     [(f"{S}[0].value", "n_EI_candidates should be great than zero")]),
    ("tpe", dict(algorithm_settings=settings(n_EI_candidates="2.5")),
     [(f"{S}[0].value", "failed to validate n_EI_candidates(2.5): invalid literal for int() with base 10: '2.5'")]),
    ("tpe", dict(algorithm_settings=settings(random_state="-1")),
     [(f"{S}[0].value", "random_state should be great or equal than zero")]),
    ("tpe", dict(algorithm_settings=settings(n_startup_jobs="5")),
     [(f"{S}[0].name", "unknown setting n_startup_jobs for algorithm tpe")]),
    # grid (chocolate service)
    ("grid", dict(parameters=[param("lr", "double", min="0.01", max="0.05"), PARAMETERS[1]]),
     [("spec.parameters[0].feasibleSpace.step", "param lr step is nil")]),
    ("grid", dict(parameters=[PARAMETERS[1], param("lr", "double", min="0.01", max="0.05", step="")]),
     [("spec.parameters[1].feasibleSpace.step", "param lr step is nil")]),
    ("grid", dict(algorithm_settings=settings(anything="goes")), []),
    ("grid", dict(parameters=[], nas=NAS),
     [("spec.parameters", "algorithm grid needs spec.parameters (spec.nasConfig is only used by enas and darts)")]),
    # bayesianoptimization (no upstream validation; our admission checks)
    ("bayesianoptimization", dict(algorithm_settings=settings(base_estimator="rf", n_initial_points="0",
                                                              acq_func="EI", acq_optimizer="sampling",
                                                              random_state="4294967295", unknown="ignored")), []),
    ("bayesianoptimization", dict(algorithm_settings=settings(base_estimator="SVM")),
     [(f"{S}[0].value", 'base_estimator must be one of GP, RF, ET, GBRT, got "SVM"')]),
    ("bayesianoptimization", dict(algorithm_settings=settings(n_initial_points="ten")),
     [(f"{S}[0].value", 'n_initial_points must be an integer >= 0, got "ten"')]),
    ("bayesianoptimization", dict(algorithm_settings=settings(n_initial_points="-1")),
     [(f"{S}[0].value", 'n_initial_points must be an integer >= 0, got "-1"')]),
    ("bayesianoptimization", dict(algorithm_settings=settings(acq_func="EIps")),
     [(f"{S}[0].value", 'acq_func must be one of gp_hedge, EI, LCB, PI, got "EIps"')]),
    ("bayesianoptimization", dict(algorithm_settings=settings(acq_optimizer="adam")),
     [(f"{S}[0].value", 'acq_optimizer must be one of auto, sampling, lbfgs, got "adam"')]),
    ("bayesianoptimization", dict(algorithm_settings=settings(base_estimator="ET", acq_optimizer="lbfgs")),
     [(f"{S}[1].value", "acq_optimizer lbfgs needs base_estimator GP (ET has no gradients); use auto or sampling")]),
    ("bayesianoptimization", dict(algorithm_settings=settings(random_state="4294967296")),
     [(f"{S}[0].value", 'random_state must be an integer between 0 and 4294967295, got "4294967296"')]),
    # hyperband
    ("hyperband", dict(algorithm_settings=settings(resource_name="--num-epochs"), parallel=9),
     [(S, "r_l and resource_name must be set.")]),
    ("hyperband", dict(algorithm_settings=settings(r_l="9"), parallel=9), [(S, "r_l and resource_name must be set.")]),
    ("hyperband", dict(algorithm_settings=settings(r_l="-1", resource_name="--num-epochs"), parallel=9),
     [(f"{S}[0].value", "r_l must be a positive float number.")]),
    ("hyperband", dict(algorithm_settings=settings(r_l="many", resource_name="--num-epochs"), parallel=9),
     [(f"{S}[0].value", "r_l must be a positive float number.")]),
    ("hyperband", dict(algorithm_settings=settings(r_l="0", resource_name="--num-epochs"), parallel=9),
     [(f"{S}[0].value", "r_l must be a positive float number.")]),
    ("hyperband", dict(algorithm_settings=settings(r_l="9", resource_name="--num-epochs"), parallel=8),
     [("spec.parallelTrialCount", "parallelTrialCount must be not less than 9.")]),
    ("hyperband", dict(algorithm_settings=settings(r_l="243", resource_name="--num-epochs"), parallel=27),
     [("spec.parallelTrialCount", "parallelTrialCount must be not less than 81.")]),  # int(log(243)/log(3)) = 4
    ("hyperband", dict(algorithm_settings=settings(r_l="16", eta="4.9", resource_name="--num-epochs"), parallel=3),
     [("spec.parallelTrialCount", "parallelTrialCount must be not less than 16.")]),  # eta = int(4.9) = 4
    ("hyperband", dict(algorithm_settings=settings(r_l="9", eta="-2", resource_name="--num-epochs"), parallel=9), []),
    ("hyperband", dict(algorithm_settings=settings(r_l="9", eta="fast", resource_name="--num-epochs"), parallel=9),
     [(f"{S}[1].value", 'eta must be a number, got "fast"')]),
    ("hyperband", dict(algorithm_settings=settings(r_l="9", eta="1.5", resource_name="--num-epochs"), parallel=9),
     [(f"{S}[1].value", 'eta must be at least 2, got "1.5" (eta is truncated to an integer; '
                        'a value <= 0 selects the default 3)')]),
    ("hyperband", dict(algorithm_settings=settings(r_l="9", resource_name="--epochs"), parallel=9),
     [(f"{S}[1].value", "value of resource_name setting must be in parameters.")]),
    # cmaes (goptuna service)
    ("cmaes", dict(algorithm_settings=settings(random_state="10", sigma="0.5")), []),
    ("cmaes", dict(parameters=[PARAMETERS[0], PARAMETERS[2]]),
     [("spec.parameters", "CMA-ES only supports two or more dimensional continuous search space.")]),
    ("cmaes", dict(parameters=PARAMETERS + [param("lr", "double", min="1", max="2")]),
     [("spec.parameters[3].name", "Detect duplicated parameter name: lr")]),
    ("cmaes", dict(algorithm_settings=settings(random_state="1.5")),
     [(f"{S}[0].value", 'Failed to create goptuna study and search space: random_state must be an integer, got "1.5"')]),
    ("cmaes", dict(algorithm_settings=settings(sigma="0")),
     [(f"{S}[0].value", 'Failed to create goptuna study and search space: sigma must be a positive number, got "0"')]),
    # darts
    ("darts", dict(algorithm_settings=settings(num_epochs="10", anything="goes")), []),
    ("darts", dict(parameters=PARAMETERS, nas=None), [("spec.nasConfig", "algorithm darts needs spec.nasConfig")]),
]


@pytest.mark.parametrize("name,kwargs,expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule(name, kwargs, expected):
    assert run(name, **kwargs) == expected


# ---------------------------------------------------------------------------------------
# enas: upstream messages carry the protobuf text dump of the offending message

ENAS_CASES = [
    ("no input sizes", lambda n: n["graphConfig"].pop("inputSizes"), [(
        "spec.nasConfig.graphConfig.inputSizes",
        "Missing InputSizes in GraphConfig:\nnum_layers: 8\noutput_sizes: 10\n")]),
    ("no output sizes", lambda n: n["graphConfig"].update(outputSizes=[]), [(
        "spec.nasConfig.graphConfig.outputSizes",
        "Missing OutputSizes in GraphConfig:\nnum_layers: 8\ninput_sizes: 32\ninput_sizes: 32\ninput_sizes: 3\n")]),
    ("no layers", lambda n: n["graphConfig"].update(numLayers=0), [(
        "spec.nasConfig.graphConfig.numLayers",
        "Missing NumLayers in GraphConfig:\ninput_sizes: 32\ninput_sizes: 32\ninput_sizes: 3\noutput_sizes: 10\n")]),
    ("no operation type", lambda n: n["operations"][1].pop("operationType"), [(
        "spec.nasConfig.operations[1].operationType",
        'Missing operationType in Operation:\nparameter_specs {\n  parameters {\n    name: "pool_size"\n'
        '    parameter_type: INT\n    feasible_space {\n      max: "3"\n      min: "2"\n      step: "1"\n'
        '    }\n  }\n}\n')]),
    ("no parameters", lambda n: n["operations"][0].update(parameters=[]), [(
        "spec.nasConfig.operations[0].parameters",
        'Missing ParameterConfigs in Operation:\noperation_type: "convolution"\nparameter_specs {\n}\n')]),
    ("no parameter name", lambda n: n["operations"][0]["parameters"][1].update(name=""), [(
        "spec.nasConfig.operations[0].parameters[1].name",
        'Missing Name in ParameterConfig:\nparameter_type: CATEGORICAL\nfeasible_space {\n  list: "1"\n'
        '  list: "2"\n}\n')]),
    ("unknown parameter type", lambda n: n["operations"][0]["parameters"][0].update(parameterType="float"), [(
        "spec.nasConfig.operations[0].parameters[0].parameterType",
        'Missing ParameterType in ParameterConfig:\nname: "filter_size"\nfeasible_space {\n  list: "3"\n'
        '  list: "5"\n}\n')]),
    ("empty list", lambda n: n["operations"][0]["parameters"][0]["feasibleSpace"].update(list=[]), [(
        "spec.nasConfig.operations[0].parameters[0].feasibleSpace.list",
        'Missing List in ParameterConfig.feasibleSpace:\nname: "filter_size"\nparameter_type: CATEGORICAL\n'
        'feasible_space {\n}\n')]),
    ("no min and max", lambda n: n["operations"][1]["parameters"][0].update(feasibleSpace={"step": "1"}), [(
        "spec.nasConfig.operations[1].parameters[0].feasibleSpace",
        'Missing Max and Min in ParameterConfig.feasibleSpace:\nname: "pool_size"\nparameter_type: INT\n'
        'feasible_space {\n  step: "1"\n}\n')]),
    ("double step not positive", lambda n: n["operations"][1]["parameters"].append(
        param("rate", "double", min="0.1", max="0.5", step="0")), [(
        "spec.nasConfig.operations[1].parameters[1].feasibleSpace.step",
        'Step parameter should be > 0 in ParameterConfig.feasibleSpace:\nname: "rate"\nparameter_type: DOUBLE\n'
        'feasible_space {\n  max: "0.5"\n  min: "0.1"\n  step: "0"\n}\n')]),
    ("int without step", lambda n: n["operations"][1]["parameters"][0]["feasibleSpace"].pop("step"), [(
        "spec.nasConfig.operations[1].parameters[0].feasibleSpace.step",
        'Step parameter should be > 0 in ParameterConfig.feasibleSpace:\nname: "pool_size"\nparameter_type: INT\n'
        'feasible_space {\n  max: "3"\n  min: "2"\n}\n')]),
    ("generic space problem", lambda n: n["operations"][1]["parameters"][0]["feasibleSpace"].update(max="1"), [(
        "spec.nasConfig.operations[1].parameters[0].feasibleSpace.max",
        "max (1) is less than min (2); max must be greater than min")]),
    ("no operations", lambda n: n.update(operations=[]), [
        ("spec.nasConfig.operations", "at least one operation is required")]),
    ("escaped strings", lambda n: n["operations"][0].update(operationType='conv "3x3"\n', parameters=[]), [(
        "spec.nasConfig.operations[0].parameters",
        'Missing ParameterConfigs in Operation:\noperation_type: "conv \\"3x3\\"\\n"\nparameter_specs {\n}\n')]),
]


@pytest.mark.parametrize("mutate,expected", [c[1:] for c in ENAS_CASES], ids=[c[0] for c in ENAS_CASES])
def test_enas_nas_config_rule(mutate, expected):
    assert run("enas", parameters=[], nas=nas_with(mutate)) == expected


def test_enas_without_nas_config_reports_the_whole_graph():
    assert run("enas", parameters=PARAMETERS, nas=None) == [
        ("spec.nasConfig.graphConfig.inputSizes", "Missing InputSizes in GraphConfig:\n"),
        ("spec.nasConfig.graphConfig.outputSizes", "Missing OutputSizes in GraphConfig:\n"),
        ("spec.nasConfig.graphConfig.numLayers", "Missing NumLayers in GraphConfig:\n"),
        ("spec.nasConfig.operations", "at least one operation is required"),
    ]


ENAS_SETTING_CASES = [
    (settings(controller_hidden_size="64", controller_temperature="None", controller_tanh_const="None",
              controller_entropy_weight="None", controller_skip_weight="None", controller_baseline_decay="1",
              controller_learning_rate="5e-5", controller_skip_target="0.4", controller_train_steps="1",
              controller_log_every_steps="10"), []),
    (settings(controller_layers="2"), [(f"{S}[0].name", "Unknown Algorithm Setting name: controller_layers")]),
    (settings(controller_hidden_size="None"),
     [(f"{S}[0].value", "Algorithm Setting controller_hidden_size must be int type")]),
    (settings(controller_learning_rate="fast"),
     [(f"{S}[0].value", "Algorithm Setting controller_learning_rate must be float type")]),
    (settings(controller_temperature="0"),
     [(f"{S}[0].value", "Algorithm Setting controller_temperature: 0.0 with float type must be in range (0, inf]")]),
    (settings(controller_baseline_decay="1.5"),
     [(f"{S}[0].value",
       "Algorithm Setting controller_baseline_decay: 1.5 with float type must be in range (0.0, 1.0]")]),
    (settings(controller_skip_target="nan"),
     [(f"{S}[0].value", "Algorithm Setting controller_skip_target: nan with float type must be in range (0.0, 1.0]")]),
    (settings(controller_train_steps="0"),
     [(f"{S}[0].value", "Algorithm Setting controller_train_steps: 0 with int type must be in range [1, inf)")]),
]


@pytest.mark.parametrize("algorithm_settings,expected", ENAS_SETTING_CASES)
def test_enas_setting_rule(algorithm_settings, expected):
    assert run("enas", algorithm_settings=algorithm_settings) == expected


# ---------------------------------------------------------------------------------------
# every problem, not only the first


def test_every_problem_is_reported_in_order():
    bad = settings(random_state="-3", gamma="2", seed="1", prior_weight="x")
    assert [path for path, _ in run("tpe", algorithm_settings=bad)] == [
        f"{S}[0].value", f"{S}[1].value", f"{S}[2].name", f"{S}[3].value"]


def test_hyperband_reports_all_of_its_problems_at_once():
    problems = run("hyperband", algorithm_settings=settings(r_l="x", eta="1", resource_name="epochs"), parallel=1)
    assert problems == [
        (f"{S}[0].value", "r_l must be a positive float number."),
        (f"{S}[1].value", 'eta must be at least 2, got "1" (eta is truncated to an integer; '
                          'a value <= 0 selects the default 3)'),
        (f"{S}[2].value", "value of resource_name setting must be in parameters."),
    ]


def test_a_later_setting_with_the_same_name_wins_like_upstream():
    problems = run("hyperband", algorithm_settings=settings(r_l="9", resource_name="--num-epochs")
                   + settings(r_l="-1"), parallel=9)
    assert problems == [(f"{S}[2].value", "r_l must be a positive float number.")]


def test_missing_setting_fields_read_as_empty_strings():
    problems = run("random", algorithm_settings=[{"name": "random_state"}, {}])
    assert problems == [
        (f"{S}[0].value", "failed to validate random_state(): invalid literal for int() with base 10: ''"),
        (f"{S}[1].name", "unknown setting  for algorithm random"),
    ]
