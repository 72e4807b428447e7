"""The quality benchmark: models x seeds, early stopping on validation,
mean ± std of the test figures per task (and scenario)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from kmtl.data.datasets.splits import DatasetSplits

DATASETS = (
    "census",
    "synthetic",
    "aliexpress",
    "movielens",
    "aliccp",
    "kuairand",
)
# The datasets whose loaders can read only the first rows of each file.
MAX_ROWS_DATASETS = ("aliexpress", "aliccp", "kuairand")
METRICS = ("auc", "logloss")


def load_benchmark_data(
    dataset: str,
    *,
    data_dir: str | os.PathLike | None = None,
    rows: int = 20_000,
    max_rows: int | None = None,
) -> DatasetSplits:
    """The splits and spec of a benchmark dataset.

    Args:
        dataset: str. `"census"` (`kmtl.data.datasets.load_census`, income
            and never-married), `"aliexpress"` (`load_aliexpress`, country
            NL: ctr and cvr), `"movielens"` (`load_movielens_1m`: like, age
            group scenarios), `"aliccp"` (`load_aliccp`: ctr and cvr),
            `"kuairand"` (`load_kuairand`, KuaiRand-Pure: is_click,
            long_view, is_like over the tabs), each with its default
            split, or `"synthetic"` (`kmtl.data.make_synthetic`: `rows`
            training rows, a quarter of that each for validation and test,
            drawn with seeds 0, 1 and 2).
        data_dir: str or path. Where the dataset files are. Defaults to
            `KMTL_DATA_DIR`.
        rows: int. Training rows of the synthetic data. Defaults to 20,000.
        max_rows: int. Read only the first rows of each file, for a quick
            run on the large logs (`"aliexpress"`, `"aliccp"`,
            `"kuairand"`). Defaults to all.

    Returns:
        `DatasetSplits`.

    Raises:
        ValueError: an unknown dataset, or `max_rows` for a dataset whose
            loader reads every row.

    Example:

    ```python
    data = load_benchmark_data("synthetic", rows=2000)
    ```
    """
    from kmtl.data.datasets.aliccp import load_aliccp
    from kmtl.data.datasets.aliexpress import load_aliexpress
    from kmtl.data.datasets.census import load_census
    from kmtl.data.datasets.kuairand import load_kuairand
    from kmtl.data.datasets.movielens import load_movielens_1m
    from kmtl.data.synthetic import SCENARIOS
    from kmtl.data.synthetic import make_synthetic
    from kmtl.features.spec import FeatureSpec

    loaders = {
        "census": load_census,
        "aliexpress": load_aliexpress,
        "movielens": load_movielens_1m,
        "aliccp": load_aliccp,
        "kuairand": load_kuairand,
    }
    if max_rows is not None:
        if dataset not in MAX_ROWS_DATASETS:
            raise ValueError(
                f"`max_rows` applies to the datasets {MAX_ROWS_DATASETS}, "
                f"not {dataset!r}. Received: max_rows={max_rows}"
            )
        if max_rows < 1:
            raise ValueError(
                f"`max_rows` must be positive. Received: max_rows={max_rows}"
            )
        return loaders[dataset](data_dir, max_rows=max_rows)
    if dataset in loaders:
        return loaders[dataset](data_dir)
    if dataset != "synthetic":
        raise ValueError(
            f"`dataset` must be one of {DATASETS}. Received: "
            f"dataset={dataset!r}"
        )
    train, val, test = (
        make_synthetic(n, seed=seed)[0]
        for n, seed in ((rows, 0), (rows // 4, 1), (rows // 4, 2))
    )
    spec = FeatureSpec.from_dataframe(
        train,
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        scenario_values=SCENARIOS,
        sample_spaces={"cvr": "ctr"},
    )
    return DatasetSplits(train=train, val=val, test=test, spec=spec)


def train_with_early_stopping(
    model_name: str,
    data: DatasetSplits,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    patience: int,
    learning_rate: float = 1e-3,
    hparams: Mapping[str, Any] | None = None,
) -> tuple[keras.Model, keras.callbacks.History]:
    """Trains one model on `data.train`, stopping on the validation loss
    and keeping the weights of its best epoch.

    Args:
        model_name: str. A registered model name.
        data: `DatasetSplits`.
        seed: int. Seeds the weights and the shuffling.
        epochs: int. Most epochs.
        batch_size: int. Training batch size.
        patience: int. Epochs without a lower `val_loss` before stopping.
        learning_rate: float. Adam's learning rate. Defaults to 1e-3.
        hparams: dict. The model's hyperparameters. Defaults to none.

    Returns:
        (model, history): the model holding its best epoch's weights, and
        the `fit` history.

    Example:

    ```python
    model, history = train_with_early_stopping(
        "mmoe", data, seed=0, epochs=20, batch_size=1024, patience=2
    )
    ```
    """
    from kmtl.data.pandas import to_dataset
    from kmtl.models.registry import build
    from kmtl.models.registry import model_tasks

    hparams = dict(hparams or {})
    keras.utils.set_random_seed(seed)
    model = build(
        model_name,
        data.spec,
        optimizer=keras.optimizers.Adam(learning_rate),
        **hparams,
    )
    tasks = model_tasks(model_name, data.spec, **hparams)
    history = model.fit(
        to_dataset(
            data.train,
            data.spec,
            tasks=tasks,
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
        ),
        validation_data=to_dataset(
            data.val, data.spec, tasks=tasks, batch_size=4096
        ),
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=patience,
                restore_best_weights=True,
            )
        ],
        verbose=0,
    )
    return model, history


def summarize(runs: Any) -> Any:
    """Mean and standard deviation over seeds of each model, task and
    scenario.

    Args:
        runs: pandas.DataFrame with one row per model, seed, task and
            scenario, and columns `auc`, `logloss`, `epochs`, `seconds`.

    Returns:
        pandas.DataFrame with columns model, task, scenario, seeds,
        auc_mean, auc_std, logloss_mean, logloss_std, epochs_mean,
        seconds_mean (std over seeds with ddof=1; NaN for one seed).

    Example:

    ```python
    summarize(pd.read_csv("quality/runs.csv"))
    ```
    """
    keys = ["model", "task", "scenario"]
    grouped = runs.groupby(keys, sort=False)
    table = grouped.size().rename("seeds").reset_index()
    for metric in METRICS:
        table[f"{metric}_mean"] = grouped[metric].mean().to_numpy()
        table[f"{metric}_std"] = grouped[metric].std().to_numpy()
    table["epochs_mean"] = grouped["epochs"].mean().to_numpy()
    table["seconds_mean"] = grouped["seconds"].mean().to_numpy()
    return table


def to_markdown(table: Any, config: Mapping[str, Any]) -> str:
    """The summary as a Markdown table headed by its configuration.

    Args:
        table: pandas.DataFrame from `summarize`.
        config: dict. The run's configuration (as in `config.json`).

    Returns:
        str. Markdown.

    Example:

    ```python
    Path("quality/summary.md").write_text(to_markdown(table, config))
    ```
    """
    head = (
        f"Quality on `{config['dataset']}`: test figures, mean ± std over "
        f"{len(config['seeds'])} seed(s) {config['seeds']}; early stopping "
        f"on the validation loss (patience {config['patience']}, at most "
        f"{config['epochs']} epochs, batch {config['batch_size']}, Adam "
        f"{config['learning_rate']}). Total wall time "
        f"{config['wall_seconds']:.0f} s.\n\n"
    )
    lines = [
        "| model | task | scenario | AUC | logloss | epochs | s / run |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.model} | {row.task} | {row.scenario} "
            f"| {row.auc_mean:.4f} ± {row.auc_std:.4f} "
            f"| {row.logloss_mean:.4f} ± {row.logloss_std:.4f} "
            f"| {row.epochs_mean:.1f} | {row.seconds_mean:.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def run_quality(
    dataset: str,
    models: Sequence[str],
    seeds: int | Sequence[int] = 5,
    epochs: int = 20,
    batch_size: int = 1024,
    patience: int = 2,
    out_dir: str | os.PathLike = "quality",
    *,
    learning_rate: float = 1e-3,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    data_dir: str | os.PathLike | None = None,
    rows: int = 20_000,
    max_rows: int | None = None,
    verbose: bool = True,
) -> Any:
    """Trains every model with every seed (early stopping on validation),
    evaluates each on test with `kmtl.evaluate`, and writes the figures.

    Files written in `out_dir`: `runs.csv` (one row per model, seed, task
    and scenario), `summary.csv` and `summary.md` (mean ± std over seeds),
    and `config.json` (every argument, the versions and the wall time), so
    a run can be repeated.

    Args:
        dataset: str. `"census"` or `"synthetic"`.
        models: list of registered model names.
        seeds: int (seeds `0..n-1`) or list of int. Defaults to 5.
        epochs: int. Most epochs per run. Defaults to 20.
        batch_size: int. Defaults to 1024.
        patience: int. Early-stopping patience. Defaults to 2.
        out_dir: str or path. Defaults to `"quality"`.
        learning_rate: float. Adam's learning rate. Defaults to 1e-3.
        hparams: dict model name -> its hyperparameters. Defaults to none.
        data_dir: str or path. Census files. Defaults to `KMTL_DATA_DIR`.
        rows: int. Synthetic training rows. Defaults to 20,000.
        max_rows: int. Rows read from each file of the large datasets (see
            `load_benchmark_data`). Defaults to all.
        verbose: bool. Print each run's test AUCs as it finishes (and
            rewrite `runs.csv`, so finished runs survive an interruption).
            Defaults to `True`.

    Returns:
        pandas.DataFrame: the summary (see `summarize`).

    Example:

    ```python
    run_quality("census", ["shared_bottom", "mmoe"], seeds=5, epochs=20,
                batch_size=1024, patience=2, out_dir="results/census")
    ```
    """
    import pandas as pd

    from kmtl.training.evaluate import evaluate
    from kmtl.version import __version__

    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    hparams = {name: dict(hparams.get(name, {})) for name in hparams or {}}
    start = time.perf_counter()
    data = load_benchmark_data(
        dataset, data_dir=data_dir, rows=rows, max_rows=max_rows
    )
    out = Path(out_dir)
    records = []
    for name in models:
        for seed in seeds:
            began = time.perf_counter()
            model, history = train_with_early_stopping(
                name,
                data,
                seed=seed,
                epochs=epochs,
                batch_size=batch_size,
                patience=patience,
                learning_rate=learning_rate,
                hparams=hparams.get(name),
            )
            seconds = time.perf_counter() - began
            table = evaluate(model, data.test)
            table.insert(0, "seed", seed)
            table.insert(0, "model", name)
            table["epochs"] = len(history.history["loss"])
            table["seconds"] = seconds
            records.append(table)
            # Finished runs survive an interrupted benchmark.
            out.mkdir(parents=True, exist_ok=True)
            pd.concat(records, ignore_index=True).to_csv(
                out / "runs.csv", index=False
            )
            if verbose:
                overall = table[table.scenario == "all"]
                aucs = ", ".join(
                    f"{task} {auc:.4f}"
                    for task, auc in zip(overall.task, overall.auc, strict=True)
                )
                print(
                    f"- {name} seed {seed}: test AUC {aucs} "
                    f"({table['epochs'].iloc[0]} epochs, {seconds:.0f} s)",
                    flush=True,
                )
    runs = pd.concat(records, ignore_index=True)
    summary = summarize(runs)
    config = {
        "dataset": dataset,
        "models": list(models),
        "seeds": seeds,
        "epochs": epochs,
        "batch_size": batch_size,
        "patience": patience,
        "learning_rate": learning_rate,
        "hparams": hparams,
        "data_dir": None if data_dir is None else str(data_dir),
        "synthetic_rows": rows,
        "max_rows": max_rows,
        "split_rows": {
            k: len(getattr(data, k)) for k in ("train", "val", "test")
        },
        "kmtl": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "wall_seconds": time.perf_counter() - start,
    }
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(to_markdown(summary, config))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return summary
