"""space.py: validate_space rules (one case per rule), axes, keys, the unit cube, rendering."""
from __future__ import annotations

import numpy as np
import pytest

from katib.algorithms.space import InvalidSpace, parse_space, validate_space
from katib.algorithms.registry import validate_space as registry_validate_space


def param(name, kind, **space):
    values = space.pop("values", None)
    if values is not None:
        space["list"] = values
    return {"name": name, "parameterType": kind, "feasibleSpace": space}


P0 = "spec.parameters[0]"
F0 = f"{P0}.feasibleSpace"

SPACE_CASES = [
    ("valid", [param("a", "double", min="-1e-3", max="2.5"), param("b", "int", min="-3", max="3", step="2"),
               param("c", "discrete", values=["1", "0.5"]), param("d", "categorical", values=["x", ""]),
               param("e", "double", min=0.1, max=1, step=0.1)], []),
    ("empty name", [param("", "int", min="1", max="2")], [(f"{P0}.name", "parameter name must not be empty")]),
    ("duplicate name", [param("lr", "int", min="1", max="2"), param("lr", "int", min="1", max="2")],
     [("spec.parameters[1].name", 'duplicate parameter name "lr" (also spec.parameters[0])')]),
    ("empty type", [param("a", "", min="1", max="2")],
     [(f"{P0}.parameterType", "parameterType must be one of double, int, discrete, categorical")]),
    ("unknown type", [param("a", "float", min="1", max="2")],
     [(f"{P0}.parameterType", 'unknown parameterType "float": must be one of double, int, discrete, categorical')]),
    ("min missing", [param("a", "double", max="2")], [(f"{F0}.min", "min is required for parameterType double")]),
    ("max missing", [param("a", "int", min="1", max="")], [(f"{F0}.max", "max is required for parameterType int")]),
    ("min not a number", [param("a", "double", min="low", max="2")], [(f"{F0}.min", 'min "low" is not a number')]),
    ("max not finite", [param("a", "double", min="1", max="inf")], [(f"{F0}.max", 'max "inf" is not a number')]),
    ("min equals max", [param("a", "double", min="1", max="1.0")],
     [(f"{F0}.max", "max (1.0) is equal to min (1); max must be greater than min")]),
    ("min above max", [param("a", "int", min="5", max="2")],
     [(f"{F0}.max", "max (2) is less than min (5); max must be greater than min")]),
    ("int bound not integer", [param("a", "int", min="1.5", max="4")],
     [(f"{F0}.min", 'min "1.5" is not an integer (parameterType int)')]),
    ("int step not integer", [param("a", "int", min="1", max="4", step="0.5")],
     [(f"{F0}.step", 'step "0.5" is not an integer (parameterType int)')]),
    ("step zero", [param("a", "double", min="1", max="4", step="0")], [(f"{F0}.step", 'step "0" must be greater than 0')]),
    ("step negative", [param("a", "int", min="1", max="4", step="-1")],
     [(f"{F0}.step", 'step "-1" must be greater than 0')]),
    ("step not a number", [param("a", "double", min="1", max="4", step="tiny")],
     [(f"{F0}.step", 'step "tiny" is not a number')]),
    ("empty categorical list", [param("a", "categorical", values=[])],
     [(f"{F0}.list", "list must not be empty for parameterType categorical")]),
    ("no discrete list", [param("a", "discrete")], [(f"{F0}.list", "list must not be empty for parameterType discrete")]),
    ("discrete not numeric", [param("a", "discrete", values=["1", "big"])],
     [(f"{F0}.list[1]", 'discrete value "big" is not a number')]),
    ("duplicate categorical value", [param("a", "categorical", values=["sgd", "adam", "sgd"])],
     [(f"{F0}.list[2]", 'duplicate value "sgd" (also list[0])')]),
    ("duplicate discrete number", [param("a", "discrete", values=["1", "2", "1.0"])],
     [(f"{F0}.list[2]", 'duplicate value "1.0" (also list[0])')]),
    ("feasibleSpace not an object", [{"name": "a", "parameterType": "int", "feasibleSpace": "1..2"}],
     [(F0, "feasibleSpace must be an object")]),
    ("parameter not an object", ["lr"], [(P0, "must be an object with name, parameterType and feasibleSpace")]),
]


@pytest.mark.parametrize("parameters,expected", [c[1:] for c in SPACE_CASES], ids=[c[0] for c in SPACE_CASES])
def test_validate_space_rule(parameters, expected):
    assert validate_space(parameters) == expected


def test_validate_space_reports_every_problem():
    parameters = [param("a", "int", min="x", max="1.5", step="0"), param("a", "categorical", values=[])]
    assert registry_validate_space(parameters) == [
        (f"{F0}.min", 'min "x" is not a number'),
        (f"{F0}.max", 'max "1.5" is not an integer (parameterType int)'),
        (f"{F0}.step", 'step "0" must be greater than 0'),
        ("spec.parameters[1].name", 'duplicate parameter name "a" (also spec.parameters[0])'),
        ("spec.parameters[1].feasibleSpace.list", "list must not be empty for parameterType categorical"),
    ]


def test_parse_space_raises_with_every_problem():
    with pytest.raises(InvalidSpace) as error:
        parse_space([param("a", "int", min="3", max="1"), param("", "categorical", values=["x"])])
    assert str(error.value) == (
        "spec.parameters[0].feasibleSpace.max: max (1) is less than min (3); max must be greater than min; "
        "spec.parameters[1].name: parameter name must not be empty")


SPACE = parse_space([
    param("lr", "double", min="0.1", max="0.5", step="0.1"),
    param("units", "int", min="1", max="7", step="3"),
    param("x", "double", min="-1", max="1"),
    param("opt", "categorical", values=["sgd", "adam"]),
    param("decay", "discrete", values=["0.5", "1"]),
])


def test_axis_sizes_are_inclusive_and_continuous_axes_have_none():
    assert [axis.size for axis in SPACE.axes] == [5, 3, None, 2, 2]
    assert SPACE.size is None
    assert parse_space([param("a", "double", min="0", max="1", step="0.3")]).size == 4


def test_values_render_like_python_str_without_float_noise():
    lr, units = SPACE.axes[:2]
    assert [lr.value_at(k) for k in range(5)] == ["0.1", "0.2", "0.3", "0.4", "0.5"]
    assert [units.value_at(k) for k in range(3)] == ["1", "4", "7"]
    assert SPACE.render((2, 0, 1.0, 1, 0)) == [("lr", "0.3"), ("units", "1"), ("x", "1.0"), ("opt", "adam"),
                                               ("decay", "0.5")]


@pytest.mark.parametrize("assignments,key", [
    ({"lr": "0.30000000000000004", "units": "4.0", "x": "-0.25", "opt": "sgd", "decay": "1.0"}, (2, 1, -0.25, 0, 1)),
    ({"lr": "0.3", "units": "5", "x": "0", "opt": "sgd", "decay": "1"}, None),  # 5 is not on the int grid
    ({"lr": "0.3", "units": "4", "x": "2", "opt": "sgd", "decay": "1"}, None),  # outside [-1, 1]
    ({"lr": "0.3", "units": "4", "x": "0", "opt": "SGD", "decay": "1"}, None),  # categorical is exact
    ({"lr": "0.3", "units": "4", "opt": "sgd", "decay": "1"}, None),  # missing parameter
    ({"lr": "0.35", "units": "4", "x": "0", "opt": "sgd", "decay": "1"}, None),  # between steps
])
def test_key_of_matches_trial_values(assignments, key):
    assert SPACE.key_of(assignments) == key


def test_unit_cube_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(50):
        u = rng.random(len(SPACE))
        assignments = SPACE.from_unit(u)
        back = SPACE.to_unit(dict(assignments))
        assert back is not None and np.all((back >= 0) & (back <= 1))
        assert SPACE.from_unit(back) == assignments


def test_unit_cube_cells_are_equal_width():
    (axis,) = parse_space([param("n", "int", min="0", max="3")]).axes
    assert [axis.coordinate_from_unit(u) for u in (0.0, 0.2499, 0.25, 0.7, 0.9999999, 1.0)] == [0, 0, 1, 2, 3, 3]
    assert [axis.unit_from_coordinate(k) for k in range(4)] == [0.125, 0.375, 0.625, 0.875]


def test_index_keys_are_mixed_radix_with_the_first_axis_fastest():
    space = parse_space([param("a", "int", min="0", max="2"), param("b", "categorical", values=["x", "y"])])
    keys = [space.key_at(i) for i in range(space.size)]
    assert keys == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert [space.index_of_key(k) for k in keys] == list(range(6))
