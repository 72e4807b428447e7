"""The speed benchmark: training and prediction examples/s of every
registered model on the shared "ae-synth" workload
(`/work/shared/bench/SPEC.md`).

The workload (AliExpress-like): 16 categorical ids with skewed vocabularies
from 100,000 down to 3, 63 raw N(0, 1) floats in one vector feature, a
scenario id in 0..3 (a `ScenarioSpec` column, which the multi-scenario
models read) and two labels, click and conversion (a conversion needs a
click). Every field is embedded in 16 dimensions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kmtl.data.synthetic import sigmoid

VOCABULARY_SIZES = (
    100000, 50000, 20000, 10000, 5000, 2000, 1000, 500,
    200, 100, 50, 20, 10, 10, 5, 3,
)  # fmt: skip
NUM_DENSE = 63
EMBEDDING_DIM = 16
SCENARIO_SHARES = (0.4, 0.3, 0.2, 0.1)
BATCH_SIZE = 2048
LEARNING_RATE = 1e-3
OPTIMIZERS = ("adam", "fused_adam", "lazy_adam")
TRAIN_SEED = 0
EVAL_SEED = 1
DEFAULT_LOCK = "/tmp/kmtl-bench.lock"
# Above this share of the machine's CPU used by other processes during a
# timed part, a figure is flagged as noisy.
NOISY_LOAD = 0.05

# The SPEC.md dimensions of the models it names; every other model runs
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
    "other_load",
    "note",
)


# === Workload ===


@dataclasses.dataclass(frozen=True)
class AESynthData:
    """One ae-synth set: the raw columns and the labels.

    Args:
        ids: int64 `[N, 16]`. The categorical ids c0..c15.
        dense: float32 `[N, 63]`. The floats d0..d62.
        scenario: int64 `[N]`. Scenario ids in 0..3.
        click: int64 `[N]`. 0/1.
        conversion: int64 `[N]`. 0/1, and 0 wherever `click` is 0.
        ctr: float64 `[N]`. The true click probability (the oracle).
    """

    ids: np.ndarray
    dense: np.ndarray
    scenario: np.ndarray
    click: np.ndarray
    conversion: np.ndarray
    ctr: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scenario)


def make_ae_synth(rows: int, seed: int) -> AESynthData:
    """Draws `rows` rows of the ae-synth workload.

    ids `= min(vocab - 1, floor(vocab * u**3))` with `u ~ U(0, 1)`; the
    floats `~ N(0, 1)`; scenarios with probabilities 0.4, 0.3, 0.2, 0.1;
    `click ~ Bernoulli(sigmoid(-3 + 0.8 d0 + 0.5 d1 + 0.3 [c15 == 1]
    + 0.2 (scenario - 1.5)))`; `conversion = click * Bernoulli(sigmoid(-2
    + 0.6 d2 + 0.4 d0))`. Draw order (NumPy PCG64 seeded `seed`): the id
    uniforms `[rows, 16]`, the floats `[rows, 63]`, the scenarios, then
    the click and the conversion uniforms.

    Args:
        rows: int. Number of rows (SPEC.md: 200,000 for training with seed
            0, 50,000 for prediction with seed 1).
        seed: int. The generator's seed.

    Returns:
        `AESynthData`.

    Example:

    ```python
    data = make_ae_synth(4096, seed=0)
    data.ids.shape  # (4096, 16)
    ```
    """
    if rows < 1:
        raise ValueError(f"`rows` must be at least 1. Received: rows={rows}")
    rng = np.random.default_rng(seed)
    vocab = np.asarray(VOCABULARY_SIZES, dtype=np.int64)
    u = rng.random((rows, len(vocab)))
    ids = np.minimum(vocab - 1, np.floor(vocab * u**3).astype(np.int64))
    dense = rng.standard_normal((rows, NUM_DENSE), dtype=np.float32)
    scenario = rng.choice(len(SCENARIO_SHARES), size=rows, p=SCENARIO_SHARES)
    d0, d1, d2 = (dense[:, i].astype(np.float64) for i in range(3))
    click_logit = (
        -3.0
        + 0.8 * d0
        + 0.5 * d1
        + 0.3 * (ids[:, 15] == 1)
        + 0.2 * (scenario - 1.5)
    )
    ctr = sigmoid(click_logit)
    click = rng.random(rows) < ctr
    converted = rng.random(rows) < sigmoid(-2.0 + 0.6 * d2 + 0.4 * d0)
    return AESynthData(
        ids=ids,
        dense=dense,
        scenario=scenario.astype(np.int64),
        click=click.astype(np.int64),
        conversion=(click & converted).astype(np.int64),
        ctr=ctr,
    )


def ae_synth_spec(layout: str = "vector", metrics: str = "auc") -> Any:
    """The `FeatureSpec` of ae-synth.

    16 categorical features `c0..c15` (the SPEC vocabularies), the floats,
    the scenario column `scenario` (`ScenarioSpec` with values s0..s3, no
    hierarchy levels), tasks `click` and `conversion`, embedding dim 16.

    Args:
        layout: str. `"vector"`: the floats are one
            `NumericalFeature("dense", dim=63)`; `"per_field"`: 63 scalar
            features `d0..d62`. Defaults to `"vector"`.
        metrics: str. `"auc"`: the tasks' default metrics (what
            `kmtl.build` compiles); `"none"`: losses only. Defaults to
            `"auc"`.

    Returns:
        `kmtl.FeatureSpec`.

    Example:

    ```python
    spec = ae_synth_spec()
    model = kmtl.build("mmoe", spec)
    ```
    """
    from kmtl.features.spec import CategoricalFeature
    from kmtl.features.spec import FeatureSpec
    from kmtl.features.spec import NumericalFeature
    from kmtl.features.spec import ScenarioSpec
    from kmtl.features.spec import TaskSpec

    if layout not in ("vector", "per_field"):
        raise ValueError(
            "`layout` must be 'vector' or 'per_field'. Received: "
            f"layout={layout!r}"
        )
    if metrics not in ("auc", "none"):
        raise ValueError(
            f"`metrics` must be 'auc' or 'none'. Received: metrics={metrics!r}"
        )
    if layout == "vector":
        numericals = [NumericalFeature("dense", dim=NUM_DENSE)]
    else:
        numericals = [NumericalFeature(f"d{i}") for i in range(NUM_DENSE)]
    task_metrics = None if metrics == "auc" else ()
    return FeatureSpec(
        features=[
            CategoricalFeature(f"c{i}", vocabulary_size=size)
            for i, size in enumerate(VOCABULARY_SIZES)
        ]
        + numericals,
        tasks=[
            TaskSpec("click", metrics=task_metrics),
            TaskSpec("conversion", metrics=task_metrics),
        ],
        scenario=ScenarioSpec(
            "scenario", values=[f"s{i}" for i in range(len(SCENARIO_SHARES))]
        ),
        embedding_dim=EMBEDDING_DIM,
    )


def ae_synth_features(data: AESynthData, spec: Any) -> dict[str, np.ndarray]:
    """The model inputs of `spec` (from `ae_synth_spec`), checked and
    converted by `kmtl.data.check_features`.

    Args:
        data: `AESynthData`.
        spec: `FeatureSpec` from `ae_synth_spec` (either layout).

    Returns:
        dict input name -> array.

    Example:

    ```python
    features = ae_synth_features(make_ae_synth(100, 0), ae_synth_spec())
    ```
    """
    from kmtl.data.pandas import check_features

    columns: dict[str, np.ndarray] = {
        f"c{i}": data.ids[:, i] for i in range(len(VOCABULARY_SIZES))
    }
    if "dense" in spec.input_names:
        columns["dense"] = data.dense
    else:
        columns.update({f"d{i}": data.dense[:, i] for i in range(NUM_DENSE)})
    columns["scenario"] = data.scenario
    return check_features(columns, spec)


def ae_synth_labels(
    data: AESynthData, tasks: Sequence[Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels and sample weights of a model's output tasks.

    Args:
        data: `AESynthData`.
        tasks: the model's tasks (`kmtl.model_tasks(name, spec)`; ESMM's
            include `ctcvr`).

    Returns:
        (labels, sample_weights), dicts task name -> float32 `[N]`.

    Example:

    ```python
    labels, weights = ae_synth_labels(data, kmtl.model_tasks("esmm", spec))
    ```
    """
    import pandas as pd

    from kmtl.data.pandas import labels_from_dataframe

    frame = pd.DataFrame({"click": data.click, "conversion": data.conversion})
    return labels_from_dataframe(frame, tasks)


# === Timing ===


@contextlib.contextmanager
def bench_lock(path: str | None) -> Iterator[None]:
    """Holds an exclusive `flock` on `path` (waiting for it if needed), so
    that two timed benchmark runs on the machine never overlap.

    Args:
        path: str. The lock file; `None` takes no lock.

    Example:

    ```python
    with bench_lock("/tmp/kmtl-bench.lock"):
        model.fit(ds, epochs=3)
    ```
    """
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"  (waiting for the benchmark lock {path})", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class OtherLoad:
    """Share of the machine's CPU time used by other processes while the
    block runs: `share` is 0 to 1, or `None` where `/proc/stat` is missing.

    Example:

    ```python
    with OtherLoad() as load:
        model.predict(ds)
    print(load.share)
    ```
    """

    def __enter__(self) -> OtherLoad:
        self.share: float | None = None
        self._start = (_cpu_ticks(), os.times())
        return self

    def __exit__(self, *exc: object) -> None:
        ticks, own = _cpu_ticks(), os.times()
        if ticks is None or self._start[0] is None:
            return
        total = ticks[0] - self._start[0][0]
        busy = total - (ticks[1] - self._start[0][1])
        before = self._start[1]
        mine = (own.user - before.user + own.system - before.system) * (
            os.sysconf("SC_CLK_TCK")
        )
        self.share = max(0.0, (busy - mine) / total) if total > 0 else 0.0


def _cpu_ticks() -> tuple[int, int] | None:
    """(all, idle + iowait) clock ticks of the machine since boot."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values), values[3] + values[4]


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
        other_load: float or None. Largest share of the CPU other
            processes used while timing.
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
    other_load: float | None = None
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
        note = self.skipped and f"skipped: {self.skipped}"
        if note is None and self.other_load is not None:
            if self.other_load > NOISY_LOAD:
                note = f"noisy: others used {self.other_load:.0%} of the CPU"
        return {
            "model": self.model,
            "train_examples_per_s": self.train_rate,
            "predict_examples_per_s": self.predict_rate,
            "params": self.params,
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "other_load": self.other_load,
            "note": note or "",
        }


def _largest(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


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
    spec: Any,
    train: AESynthData,
    evaluation: AESynthData,
    *,
    epochs: int = 3,
    batch_size: int = BATCH_SIZE,
    hparams: dict[str, Any] | None = None,
    lock: str | None = DEFAULT_LOCK,
    train_features: dict[str, np.ndarray] | None = None,
    eval_features: dict[str, np.ndarray] | None = None,
    optimizer: str = "adam",
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
        lock: str. `flock` file held while timing; `None` for none.
            Defaults to `/tmp/kmtl-bench.lock`.
        train_features, eval_features: dicts. The inputs of `train` and
            `evaluation`, when already converted. Defaults to converting.
        optimizer: str. `"adam"` (Keras's, what `kmtl.build` compiles
            with), `"fused_adam"` (`kmtl.training.FusedAdam`) or
            `"lazy_adam"`
            (`kmtl.training.LazyAdam`, row-wise embedding updates), at
            learning rate 1e-3. Defaults to `"adam"`.

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
    timer = EpochTimer()
    with bench_lock(lock):
        with OtherLoad() as train_load:
            model.fit(
                train_ds,
                epochs=epochs,
                shuffle=False,
                verbose=0,
                callbacks=[timer],
            )
        model.predict(eval_ds, verbose=0)
        with OtherLoad() as predict_load:
            start = time.perf_counter()
            model.predict(eval_ds, verbose=0)
            result.predict_seconds = time.perf_counter() - start
    result.epoch_seconds = timer.seconds
    result.other_load = _largest([train_load.share, predict_load.share])
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
        "| batch | epochs | other load | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in table.itertuples(index=False):
        load = (
            ""
            if row.other_load is None or not math.isfinite(row.other_load)
            else f"{row.other_load:.0%}"
        )
        lines.append(
            f"| {row.model} | {rate(row.train_examples_per_s)} "
            f"| {rate(row.predict_examples_per_s)} | {row.params:,} "
            f"| {row.train_rows:,} | {row.eval_rows:,} | {row.batch_size} "
            f"| {row.epochs} | {load} | {row.note} |"
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
    lock: str | None = DEFAULT_LOCK,
    verbose: bool = True,
    optimizer: str = "adam",
) -> Any:
    """Times training and prediction of each model on ae-synth.

    The training set has `rows` rows (seed 0), the prediction set
    `eval_rows` (seed 1). Models named in `SPEC_HPARAMS` get SPEC.md's
    dimensions; the others run with their defaults. A model whose builder
    rejects the workload's spec is skipped with the reason, printed and
    kept in the table's `note`.

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
        lock: str. `flock` file held while timing; `None` for none.
            Defaults to `/tmp/kmtl-bench.lock`.
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
            lock=lock,
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
            "workload": "ae-synth (/work/shared/bench/SPEC.md)",
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
