"""The quality benchmark runner: `kmtl benchmark quality`."""

import json

import numpy as np
import pandas as pd

from kmtl.data.pandas import to_dataset
from kmtl.training.quality import load_benchmark_data
from kmtl.training.quality import train_with_early_stopping

TINY = {"bottom_units": [8], "tower_units": [4]}


def test_two_seeds_write_the_table(tmp_path, kmtl_cli):
    out = tmp_path / "quality"
    code, printed, _ = kmtl_cli(
        "benchmark",
        "quality",
        dataset="synthetic",
        rows=1200,
        models="shared_bottom",
        seeds=2,
        epochs=1,
        batch_size=256,
        hparams={"shared_bottom": TINY},
        out=out,
    )
    assert code == 0
    assert "auc_mean" in printed
    # One progress line per finished run.
    assert "- shared_bottom seed 0: test AUC ctr 0." in printed
    assert "- shared_bottom seed 1: test AUC ctr 0." in printed
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == [
        "model",
        "task",
        "scenario",
        "seeds",
        "auc_mean",
        "auc_std",
        "logloss_mean",
        "logloss_std",
        "epochs_mean",
        "seconds_mean",
    ]
    # Both tasks, overall and in each of the 4 scenarios.
    assert len(summary) == 2 * 5
    assert set(summary.task) == {"ctr", "cvr"}
    assert (summary.seeds == 2).all()
    numbers = summary.drop(columns=["model", "task", "scenario"])
    assert np.isfinite(numbers.to_numpy(float)).all()
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs.seed.unique()) == [0, 1]
    config = json.loads((out / "config.json").read_text())
    assert config["seeds"] == [0, 1]
    assert config["hparams"] == {"shared_bottom": TINY}
    assert config["split_rows"] == {"train": 1200, "val": 300, "test": 300}
    markdown = (out / "summary.md").read_text()
    assert "| shared_bottom | ctr | all |" in markdown
    assert " ± " in markdown


def test_early_stopping_restores_the_best_epoch():
    data = load_benchmark_data("synthetic", rows=600)
    # A large learning rate on little data: the validation loss rises
    # again, so the best epoch is not the last one.
    model, history = train_with_early_stopping(
        "shared_bottom",
        data,
        seed=0,
        epochs=6,
        batch_size=64,
        patience=10,
        learning_rate=0.05,
        hparams={"bottom_units": [64], "tower_units": [32]},
    )
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    assert best < len(val_losses) - 1
    restored = model.evaluate(
        to_dataset(data.val, data.spec, batch_size=4096),
        return_dict=True,
        verbose=0,
    )["loss"]
    np.testing.assert_allclose(restored, val_losses[best], rtol=1e-5)
    assert restored < val_losses[-1]
