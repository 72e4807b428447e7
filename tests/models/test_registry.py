"""The registry across models: every model has its test file, names,
hparams, variants, and the data path every model trains on.

Each model's own checks (`kmtl.testing.run_model_test` and what is
particular to it) are in `test_<module>.py`, beside its module
`kmtl/models/<module>.py`.
"""

import ast
import pathlib

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data import to_dataset
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import _REGISTRY
from kmtl.models.registry import get_model_entry
from kmtl.models.task_model import TaskModel
from kmtl.testing import run_model_test
from kmtl.validation import PositiveInt

HERE = pathlib.Path(__file__).parent


def _strings(path):
    """The string constants of a Python file."""
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


@pytest.mark.parametrize("name", sorted(kmtl.list_models()))
def test_every_model_has_its_test_file(name):
    module = get_model_entry(name).builder.__module__.rsplit(".", 1)[-1]
    path = HERE / f"test_{module}.py"
    assert path.is_file(), f"{name!r} (kmtl/models/{module}.py) has no {path}"
    # The battery: the `model_battery` fixture of conftest.py, or
    # `run_model_test` on data of the model's own generator.
    text = path.read_text()
    assert "model_battery(" in text or "run_model_test(" in text, path
    assert name in _strings(path), f"{path} does not test {name!r}"


def test_list_models_describes_each_one():
    models = kmtl.list_models()
    assert {"mmoe", "omoe", "esmm", "pepnet"} <= set(models)
    for name, description in models.items():
        assert description and "\n" not in description, name


def test_unknown_model_lists_known_ones(synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match="Unknown model 'mmoee'.*'mmoe'"):
        kmtl.build("mmoee", spec)


def test_numpy_ints_are_hparams(synthetic_small):
    _, _, spec = synthetic_small
    model = kmtl.build(
        "mmoe",
        spec,
        num_experts=np.int64(2),
        expert_units=(np.int32(8),),
        tower_units=(),
    )
    num_experts = model.get_layer("mmoe").num_experts
    assert num_experts == 2 and type(num_experts) is int


@pytest.mark.parametrize(
    "name, hparam",
    [
        (name, hparam)
        for name in sorted(kmtl.list_models())
        for hparam in sorted(get_model_entry(name).fixed)
    ],
)
def test_a_variant_refuses_its_fixed_hparams(name, hparam, synthetic_small):
    _, _, spec = synthetic_small
    value = get_model_entry(name).fixed[hparam]
    with pytest.raises(
        ValueError, match=f"Model '{name}'.*{hparam} is fixed by this model"
    ):
        kmtl.build(name, spec, **{hparam: value})


@pytest.fixture
def toy_models():
    """Registers `toy` (a tower per task on the encoded inputs) and its
    variant `toy_wide`, and removes them afterwards."""

    @kmtl.register_model("toy_wide", fixed={"units": 16})
    @kmtl.register_model("toy")
    def build_toy(spec, *, units: PositiveInt = 4, depth: PositiveInt = 1):
        """Toy: one tower per task on the encoded inputs.

        Only for the registry test.
        """
        inputs, _, flat = encoded_inputs(spec)
        branches = [flat] * len(spec.tasks)
        return keras.Model(
            inputs, task_towers(branches, spec.tasks, (units,) * depth)
        )

    yield build_toy
    _REGISTRY.pop("toy")
    _REGISTRY.pop("toy_wide")


def test_a_registered_builder_is_built_by_name(toy_models, synthetic_small):
    _, _, spec = synthetic_small
    models = kmtl.list_models()
    assert models["toy"] == "Toy: one tower per task on the encoded inputs."
    assert "toy_wide" in models
    model = kmtl.build("toy", spec, units=np.int64(2), depth=2)
    assert isinstance(model, TaskModel)
    assert model.name == "toy" and model.tasks == spec.tasks
    with pytest.raises(
        ValueError,
        match="Model 'toy': hparam `units` must be a positive integer. "
        "Received: units=0",
    ):
        kmtl.build("toy", spec, units=0)
    assert get_model_entry("toy_wide").hparams == {"depth": 1}
    with pytest.raises(ValueError, match=r"\['units'\] \(units is fixed"):
        kmtl.build("toy_wide", spec, units=2)
    with pytest.raises(ValueError, match="'toy' is already registered"):
        kmtl.register_model("toy")(toy_models)


def test_compile_args_from_spec(synthetic_small):
    _, _, spec = synthetic_small
    args = kmtl.compile_args(spec)
    assert args["loss"] == {
        "ctr": "binary_crossentropy",
        "cvr": "binary_crossentropy",
    }
    assert args["loss_weights"] == {"ctr": 1.0, "cvr": 1.0}
    assert [m.name for m in args["weighted_metrics"]["cvr"]] == ["auc"]


def test_derived_labels_come_from_the_spec_labels(synthetic_small):
    """ESMM trains on `to_dataset(df, spec)`: its `ctcvr` label is derived
    (click x purchase), as the data of its output tasks gives it."""
    df, _, spec = synthetic_small
    df = df[:512]
    keras.utils.set_random_seed(0)
    model = kmtl.build("esmm", spec, tower_units=(4,))
    plain = to_dataset(df, spec, batch_size=256)
    history = model.fit(plain, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    explicit = to_dataset(df, spec, tasks=model.tasks, batch_size=256)
    np.testing.assert_allclose(
        model.evaluate(plain, verbose=0),
        model.evaluate(explicit, verbose=0),
        rtol=1e-6,
    )


def test_a_missing_label_names_the_output(synthetic_small):
    df, _, spec = synthetic_small
    model = kmtl.build("esmm", spec, tower_units=(4,))
    clicks_only = to_dataset(df[:64], spec.replace(tasks=spec.tasks[:1]))
    with pytest.raises(
        ValueError, match="Model 'esmm': no label for output 'cvr'"
    ):
        model.fit(clicks_only, epochs=1, verbose=0)


def test_out_of_range_scenario_is_named_at_training_time(synthetic_small):
    df, _, spec = synthetic_small
    bad = df.copy()
    bad.loc[5, "scenario"] = 4
    with pytest.raises(ValueError, match="Scenario column 'scenario'.*\\[4\\]"):
        to_dataset(bad, spec)


def test_a_missing_hierarchy_level_is_named(synthetic_small):
    df, _, spec = synthetic_small
    scenario = kmtl.ScenarioSpec(
        "scenario", spec.scenario.values, {"country": ["us", "fr"]}
    )
    with pytest.raises(ValueError, match=r"\['country'\] are not columns"):
        to_dataset(df, spec.replace(scenario=scenario))
    with_level = df.assign(country=np.arange(len(df)) % 3)
    with pytest.raises(
        ValueError, match=r"'country' must hold ids in \[0, 2\)"
    ):
        to_dataset(with_level, spec.replace(scenario=scenario))


def test_the_battery_reports_what_fails(synthetic_small):
    df, _, spec = synthetic_small
    tiny = dict(bottom_units=(4,), tower_units=())
    with pytest.raises(AssertionError, match="does not match 'ignored'"):
        run_model_test(
            "shared_bottom",
            df,
            spec,
            tiny,
            bad_hparams=[(dict(bottom_units=()), "ignored")],
        )
    with pytest.raises(AssertionError, match="no ValueError was raised"):
        run_model_test("shared_bottom", df, spec, tiny, bad_specs=[({}, "")])
