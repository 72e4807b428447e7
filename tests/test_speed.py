"""The speed benchmark: `kmtl benchmark speed` and kmtl.training.speed."""

import contextlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from kmtl.data.ae_synth import ae_synth_spec
from kmtl.data.ae_synth import make_ae_synth
from kmtl.models import registry
from kmtl.training.speed import COLUMNS
from kmtl.training.speed import run_speed
from kmtl.training.speed import time_model

ROWS, EVAL_ROWS, EPOCHS = 4096, 2048, 2
# A multi-task model, the ESMM chain (its own `ctcvr` output and labels)
# and a multi-scenario model reading the scenario column.
MODELS = ["shared_bottom", "esmm", "star"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed") / "speed.csv"
    result = run_speed(
        MODELS,
        rows=ROWS,
        eval_rows=EVAL_ROWS,
        epochs=EPOCHS,
        out=out,
        verbose=False,
    )
    return result, out


def test_one_row_per_model_with_positive_rates(table):
    result, _ = table
    assert list(result.columns) == list(COLUMNS)
    assert list(result.model) == MODELS
    for column in ("train_examples_per_s", "predict_examples_per_s"):
        values = result[column].to_numpy(float)
        assert np.isfinite(values).all(), column
        assert (values > 0).all(), column
    assert (result.train_rows == ROWS).all()
    assert (result.eval_rows == EVAL_ROWS).all()
    assert (result.batch_size == 2048).all()
    assert (result.epochs == EPOCHS).all()
    assert (result.params > 0).all()
    assert not result.note.str.startswith("skipped").any()


def test_csv_holds_the_table(table):
    result, out = table
    written = pd.read_csv(out, keep_default_na=False)
    assert list(written.model) == MODELS
    np.testing.assert_allclose(
        written.train_examples_per_s.to_numpy(float),
        result.train_examples_per_s.to_numpy(float),
    )


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="no_such_model"):
        run_speed(["mmoe", "no_such_model"], rows=16, eval_rows=16)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 1}, "epochs"),
        ({"rows": 0}, "rows"),
        ({"out": "speed.txt"}, "csv or .json"),
        ({"models": []}, "empty"),
        ({"optimizer": "sgd"}, "optimizer='sgd'"),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs = {"models": ["mmoe"], **kwargs}
    with pytest.raises(ValueError, match=message):
        run_speed(**kwargs)


def test_model_rejecting_the_spec_is_skipped_with_its_reason(
    monkeypatch, capsys
):
    def build_needs_levels(spec, *, units=4):
        """Needs hierarchy levels."""
        raise ValueError("needs_levels: the spec has no hierarchy levels")

    registry.list_models()  # load the built-in models first
    monkeypatch.setitem(
        registry._REGISTRY,
        "needs_levels",
        registry.ModelEntry("needs_levels", build_needs_levels, "test"),
    )
    result = run_speed(["needs_levels"], rows=64, eval_rows=64)
    assert (
        "SKIPPED: Model 'needs_levels': needs_levels: the spec has no "
        "hierarchy levels" in capsys.readouterr().out
    )
    row = result.iloc[0]
    assert row.note.startswith("skipped: Model 'needs_levels': needs_levels")
    assert math.isnan(row.train_examples_per_s)
    assert math.isnan(row.predict_examples_per_s)


def test_cli_prints_the_table(tmp_path, kmtl_cli):
    out = tmp_path / "speed.json"
    code, printed, _ = kmtl_cli(
        "benchmark",
        "speed",
        models="shared_bottom",
        rows=ROWS,
        eval_rows=EVAL_ROWS,
        epochs=EPOCHS,
        out=out,
    )
    assert code == 0
    assert "| model | train ex/s | predict ex/s |" in printed
    assert "| shared_bottom |" in printed
    written = json.loads(out.read_text())
    assert written["config"]["rows"] == ROWS
    (row,) = written["results"]
    assert row["model"] == "shared_bottom"
    assert row["train_examples_per_s"] > 0
    assert len(row["epoch_seconds"]) == EPOCHS


def test_cli_unknown_model_is_an_error(kmtl_cli):
    code, _, err = kmtl_cli("benchmark", "speed", models="no_such_model")
    assert code == 2
    assert "no_such_model" in err


def test_lazy_adam_option_trains_and_watch_wraps_each_timed_part():
    entered = []

    @contextlib.contextmanager
    def watch():
        entered.append(len(entered))
        yield

    result = time_model(
        "shared_bottom",
        ae_synth_spec(),
        make_ae_synth(4096, 0),
        make_ae_synth(1024, 1),
        epochs=2,
        optimizer="lazy_adam",
        watch=watch,
    )
    assert result.skipped is None
    assert result.train_rate > 0 and result.predict_rate > 0
    assert entered == [0, 1]  # the fit epochs, then the timed predict
