"""The speed benchmark behind `kmtl benchmark speed`: training and
prediction examples/s of every registered model on the ae-synth workload
(`kmtl.data.ae_synth`).

It times with `time.perf_counter` only. What belongs to one machine (a
lock that keeps timed runs from overlapping, the CPU share other processes
take meanwhile) stays outside the package: `time_model` takes a `watch`
that is entered around each timed part, and the benchmark scripts of
kmtl's source repository pass theirs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kmtl.data.ae_synth import EVAL_SEED
from kmtl.data.ae_synth import TRAIN_SEED
from kmtl.data.ae_synth import AESynthData
from kmtl.data.ae_synth import ae_synth_features
from kmtl.data.ae_synth import ae_synth_labels
from kmtl.data.ae_synth import ae_synth_spec
from kmtl.data.ae_synth import make_ae_synth
from kmtl.features.spec import FeatureSpec

BATCH_SIZE = 2048
LEARNING_RATE = 1e-3
OPTIMIZERS = ("adam", "fused_adam", "lazy_adam")

# The workload's dimensions of the models it names; every other model runs
# with its builder's defaults (on the spec's embedding dim of 16).
SPEC_HPARAMS: dict[str, dict[str, Any]] = {
    "shared_bottom": {"bottom_units": (256, 128), "tower_units": (64,)},
    "mmoe": {
        "num_experts": 8,
        "expert_units": (256, 128),
        "tower_units": (64,),
    },
    "ple": {
        "num_levels": 2,
        "num_shared_experts": 2,
        "num_task_experts": 2,
        "expert_units": (256, 128),
        "tower_units": (64,),
    },
    "esmm": {"tower_units": (256, 128, 64)},
}

COLUMNS = (
    "model",
    "train_examples_per_s",
    "predict_examples_per_s",
    "params",
    "train_rows",
    "eval_rows",
    "batch_size",
    "epochs",
    "note",
)


# === Timing ===


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch, and how long each epoch waited
    before its first batch started (creating the dataset iterator).

    Example:

    ```python
    timer = EpochTimer()
    model.fit(ds, epochs=3, callbacks=[timer])
    timer.seconds  # [s1, s2, s3]
    ```
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.start_waits: list[float] = []
        self._start = 0.0
        self._first = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._first = True
        self._start = time.perf_counter()

    def on_train_batch_begin(
        self, batch: int, logs: dict | None = None
    ) -> None:
        if self._first:
            self.start_waits.append(time.perf_counter() - self._start)
            self._first = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


@dataclasses.dataclass
class SpeedResult:
    """The figures of one model (or why it was skipped).

    Args:
        model: str. The model name.
        hparams: dict. What it was built with (beyond its defaults).
        train_rows, eval_rows, batch_size, epochs: int. The run's sizes.
        params: int. Parameter count (0 when skipped).
        epoch_seconds: list of float. Wall time of each training epoch.
        predict_seconds: float. One timed `predict` pass (NaN if skipped).
        skipped: str or None. Why the model did not run.
    """

    model: str
    hparams: dict[str, Any]
    train_rows: int
    eval_rows: int
    batch_size: int
    epochs: int
    params: int = 0
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    predict_seconds: float = math.nan
    skipped: str | None = None

    @property
    def train_rate(self) -> float:
        """Training examples/s: the median over epochs 2..N (epoch 1 when
        only one ran); NaN when skipped."""
        if not self.epoch_seconds:
            return math.nan
        timed = self.epoch_seconds[1:] or self.epoch_seconds
        return self.train_rows / statistics.median(timed)

    @property
    def predict_rate(self) -> float:
        """Prediction examples/s; NaN when skipped."""
        return self.eval_rows / self.predict_seconds

    def row(self) -> dict[str, Any]:
        """The result as one row of the `COLUMNS` table."""
        return {
            "model": self.model,
            "train_examples_per_s": self.train_rate,
            "predict_examples_per_s": self.predict_rate,
            "params": self.params,
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "note": f"skipped: {self.skipped}" if self.skipped else "",
        }


def _optimizer(name: str) -> keras.optimizers.Optimizer:
    from kmtl.training.fused_adam import FusedAdam
    from kmtl.training.lazy_adam import LazyAdam

    if name not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {OPTIMIZERS}. "
            f"Received: optimizer={name!r}"
        )
    if name == "lazy_adam":
        return LazyAdam(LEARNING_RATE)
    if name == "fused_adam":
        return FusedAdam(LEARNING_RATE)
    return keras.optimizers.Adam(LEARNING_RATE)


def time_model(
    name: str,
    spec: FeatureSpec,
    train: AESynthData,
    evaluation: AESynthData,
    *,
    epochs: int = 3,
    batch_size: int = BATCH_SIZE,
    hparams: dict[str, Any] | None = None,
    train_features: dict[str, np.ndarray] | None = None,
    eval_features: dict[str, np.ndarray] | None = None,
    optimizer: str = "adam",
    watch: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> SpeedResult:
    """Builds one model, times `epochs` epochs of `fit` and one `predict`
    pass (after an untimed warm-up pass).

    The model is built with `kmtl.build(name, spec, optimizer=...,
    **hparams)` (the `optimizer` below, learning rate 1e-3), compiled
    with its tasks' losses and metrics; batches are cut by
    `kmtl.data.batched_dataset` (no shuffling). A `ValueError` from
    `kmtl.build` (a spec the model cannot use, e.g. one without the
    hierarchy levels or features it needs) skips the model: the result
    says why.

    Args:
        name: str. A registered model name.
        spec: `FeatureSpec` from `ae_synth_spec`.
        train: `AESynthData` to train on.
        evaluation: `AESynthData` to predict on.
        epochs: int. Training epochs; examples/s is the median of epochs
            2..N. Defaults to 3.
        batch_size: int. Defaults to 2048.
        hparams: dict. The model's hyperparameters. Defaults to
            `SPEC_HPARAMS.get(name, {})`.
        train_features, eval_features: dicts. The inputs of `train` and
            `evaluation`, when already converted. Defaults to converting.
        optimizer: str. `"adam"` (Keras's, what `kmtl.build` compiles
            with), `"fused_adam"` (`kmtl.training.FusedAdam`) or
            `"lazy_adam"`
            (`kmtl.training.LazyAdam`, row-wise embedding updates), at
            learning rate 1e-3. Defaults to `"adam"`.
        watch: callable. Called before each timed part (the `fit` epochs,
            then the timed `predict` pass); the context manager it returns
            is entered around that part, e.g. to measure the machine's
            load meanwhile. Defaults to none.

    Returns:
        `SpeedResult`.

    Example:

    ```python
    spec = ae_synth_spec()
    result = time_model("mmoe", spec, make_ae_synth(4096, 0),
                        make_ae_synth(2048, 1), epochs=2)
    result.train_rate, result.predict_rate
    ```
    """
    from kmtl.data.batching import batched_dataset
    from kmtl.models.registry import build
    from kmtl.models.registry import model_tasks

    hparams = dict(SPEC_HPARAMS.get(name, {}) if hparams is None else hparams)
    result = SpeedResult(
        model=name,
        hparams=hparams,
        train_rows=len(train),
        eval_rows=len(evaluation),
        batch_size=batch_size,
        epochs=epochs,
    )
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    try:
        model = build(
            name,
            spec,
            optimizer=_optimizer(optimizer),
            **hparams,
        )
    except ValueError as err:
        result.skipped = str(err)
        return result
    if train_features is None:
        train_features = ae_synth_features(train, spec)
    if eval_features is None:
        eval_features = ae_synth_features(evaluation, spec)
    labels, weights = ae_synth_labels(train, model_tasks(name, spec, **hparams))
    train_ds = batched_dataset((train_features, labels, weights), batch_size)
    eval_ds = batched_dataset(eval_features, batch_size)
    result.params = model.count_params()
    watch = watch or contextlib.nullcontext
    timer = EpochTimer()
    with watch():
        model.fit(
            train_ds,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[timer],
        )
    model.predict(eval_ds, verbose=0)
    with watch():
        start = time.perf_counter()
        model.predict(eval_ds, verbose=0)
        result.predict_seconds = time.perf_counter() - start
    result.epoch_seconds = timer.seconds
    return result


# === The benchmark ===


def format_speed_table(table: Any) -> str:
    """The speed table as Markdown.

    Args:
        table: pandas.DataFrame from `run_speed`.

    Returns:
        str.

    Example:

    ```python
    print(format_speed_table(run_speed(["mmoe"], rows=4096)))
    ```
    """

    def rate(value: float) -> str:
        return "" if not math.isfinite(value) else f"{value:,.0f}"

    lines = [
        "| model | train ex/s | predict ex/s | params | rows | eval rows "
        "| batch | epochs | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.model} | {rate(row.train_examples_per_s)} "
            f"| {rate(row.predict_examples_per_s)} | {row.params:,} "
            f"| {row.train_rows:,} | {row.eval_rows:,} | {row.batch_size} "
            f"| {row.epochs} | {row.note} |"
        )
    return "\n".join(lines)


def run_speed(
    models: Sequence[str] | None = None,
    *,
    rows: int = 200_000,
    eval_rows: int = 50_000,
    epochs: int = 3,
    batch_size: int = BATCH_SIZE,
    out: str | os.PathLike | None = None,
    verbose: bool = True,
    optimizer: str = "adam",
) -> Any:
    """Times training and prediction of each model on ae-synth.

    The training set has `rows` rows (seed 0), the prediction set
    `eval_rows` (seed 1). Models named in `SPEC_HPARAMS` get the
    workload's dimensions; the others run with their defaults. A model
    whose builder rejects the workload's spec is skipped with the reason,
    printed and kept in the table's `note`.

    Args:
        models: list of registered model names. Defaults to all of
            `kmtl.list_models()`.
        rows: int. Training rows. Defaults to 200,000.
        eval_rows: int. Prediction rows. Defaults to 50,000.
        epochs: int. At least 2 (epoch 1 is the warm-up). Defaults to 3.
        batch_size: int. Defaults to 2048.
        out: str or path. Also write the table: `.csv` as CSV, `.json` as
            JSON with the configuration, per-epoch times and versions.
            Defaults to writing nothing.
        verbose: bool. Print each model's figures as it finishes.
            Defaults to `True`.
        optimizer: str. `"adam"`, `"fused_adam"` or `"lazy_adam"` (see
            `time_model`).
            Defaults to `"adam"`.

    Returns:
        pandas.DataFrame with `COLUMNS`, one row per model in order:
        examples/s are NaN for a skipped model.

    Raises:
        ValueError: an unknown model name (named in the message), bad
            sizes, or an `out` that is not `.csv` or `.json`.

    Example:

    ```python
    table = run_speed(["shared_bottom", "star"], rows=4096,
                      eval_rows=2048, epochs=2)
    print(format_speed_table(table))
    ```
    """
    import pandas as pd

    from kmtl.models.registry import list_models
    from kmtl.version import __version__

    known = list_models()
    models = list(known) if models is None else list(models)
    if not models:
        raise ValueError("`models` is empty: name at least one model.")
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(
            f"Unknown model(s) {unknown} for the speed benchmark. Known "
            f"models: {sorted(known)}."
        )
    for arg, value, least in (
        ("rows", rows, 1),
        ("eval_rows", eval_rows, 1),
        ("batch_size", batch_size, 1),
        ("epochs", epochs, 2),
    ):
        if value < least:
            raise ValueError(
                f"`{arg}` must be at least {least}"
                + (" (epoch 1 is the warm-up)" if arg == "epochs" else "")
                + f". Received: {arg}={value}"
            )
    _optimizer(optimizer)  # checks the name before any work
    suffix = None if out is None else Path(out).suffix.lower()
    if suffix not in (None, ".csv", ".json"):
        raise ValueError(
            f"`out` must end in .csv or .json. Received: out={os.fspath(out)!r}"
        )

    start = time.perf_counter()
    spec = ae_synth_spec()
    train = make_ae_synth(rows, TRAIN_SEED)
    evaluation = make_ae_synth(eval_rows, EVAL_SEED)
    train_features = ae_synth_features(train, spec)
    eval_features = ae_synth_features(evaluation, spec)
    if verbose:
        print(
            f"ae-synth: {rows:,} train / {eval_rows:,} predict rows, batch "
            f"{batch_size}, {epochs} epochs, {optimizer}, "
            f"{len(models)} model(s); "
            f"{os.cpu_count()} CPU cores, Keras {keras.__version__} "
            f"({keras.backend.backend()})",
            flush=True,
        )
    results = []
    for name in models:
        began = time.perf_counter()
        result = time_model(
            name,
            spec,
            train,
            evaluation,
            epochs=epochs,
            batch_size=batch_size,
            train_features=train_features,
            eval_features=eval_features,
            optimizer=optimizer,
        )
        results.append(result)
        if not verbose:
            continue
        if result.skipped:
            print(f"- {name}: SKIPPED: {result.skipped}", flush=True)
        else:
            print(
                f"- {name}: train {result.train_rate:,.0f} ex/s, predict "
                f"{result.predict_rate:,.0f} ex/s ({result.params:,} "
                f"parameters; epochs "
                + ", ".join(f"{s:.1f}" for s in result.epoch_seconds)
                + f" s; {time.perf_counter() - began:.0f} s in all)",
                flush=True,
            )
    table = pd.DataFrame([r.row() for r in results], columns=list(COLUMNS))
    if suffix == ".csv":
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    elif suffix == ".json":
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        config = {
            "workload": "ae-synth",
            "rows": rows,
            "eval_rows": eval_rows,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": LEARNING_RATE,
            "optimizer": optimizer,
            "cpu_count": os.cpu_count(),
            "kmtl": __version__,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "python": platform.python_version(),
            "wall_seconds": time.perf_counter() - start,
        }
        records = []
        for result, row in zip(results, table.to_dict("records"), strict=True):
            row = {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in row.items()
            }
            row["hparams"] = result.hparams
            row["epoch_seconds"] = result.epoch_seconds
            row["predict_seconds"] = (
                None
                if math.isnan(result.predict_seconds)
                else result.predict_seconds
            )
            records.append(row)
        Path(out).write_text(
            json.dumps({"config": config, "results": records}, indent=2) + "\n"
        )
    return table
