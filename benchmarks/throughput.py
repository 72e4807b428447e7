"""Training, prediction and serving throughput of kmtl on the "ae-synth"
workload of `/work/shared/bench/SPEC.md`, beside the anchors of DeepCTR and
torch-rechub measured on the same kind of machine.

Usage:

    python benchmarks/throughput.py
        [--models shared_bottom,mmoe,ple,esmm] [--rows 200000]
        [--eval-rows 50000] [--epochs 3] [--layout vector|per_field]
        [--metrics auc|none] [--pipeline kmtl|prebatched]
        [--serving] [--keras-baseline]
        [--lock /tmp/kmtl-bench.lock] [--json out.json]

The workload: 200,000 training rows (seed 0) and 50,000 evaluation rows
(seed 1) of 16 categorical ids (skewed vocabularies from 100,000 down to
3), 63 raw N(0, 1) floats, a scenario id in 0..3 and two labels, click and
conversion (a conversion needs a click). Every model embeds the 16 fields
in 16 dimensions and reads the 63 floats raw: an input of 16 * 16 + 63 =
319 floats. The scenario is fed to the model as its `ScenarioSpec` column
but not embedded.

- `--layout vector` (default) declares the floats as one
  `NumericalFeature("dense", dim=63)`; `per_field` as 63 scalar features
  `d0..d62`, one input each, as DeepCTR declares them.
- `--metrics auc` (default) compiles with kmtl's default metrics (an AUC
  per output, as `kmtl.build` does); `none` compiles the losses only.
- `--pipeline kmtl` (default) feeds `tf.data.Dataset.from_tensor_slices`
  of the arrays, batched, as `kmtl.data.to_dataset` does (without the
  DataFrame); `prebatched` slices whole batches out of arrays reshaped to
  `[num_batches, 2048, ...]`: the same batches without per-row work, to
  show what the input pipeline costs.
- `--keras-baseline` also trains a hand-written Keras 3 MMoE (16
  `Embedding` layers, 8 expert `Dense` stacks in a Python list, a softmax
  gate and a tower per task) on the same data with the same compile
  arguments, so that kmtl is compared with plain Keras within one run.
- `--serving` exports each trained model with `kmtl.export`, reloads it
  with `tf.saved_model.load` and times its `serving_default` signature
  called from Python.

Figures:

- train ex/s: training rows / wall time of one epoch of `model.fit`
  (batch 2048, Adam 1e-3, input pipeline included), the median of epochs
  2..N, i.e. after tracing and warm-up.
- steady train ex/s: the same less the time each epoch waits before its
  first batch starts (creating the dataset iterator; TensorFlow 2.21 on
  this kind of machine sometimes idles there for seconds).
- predict ex/s: evaluation rows / wall time of `model.predict` over them
  at batch 2048, after one untimed warm-up pass.
- serving p50 / p99 ms: latency of one `serving_default` call at batch 1
  and batch 256, over 300 calls after 20 warm-up calls.
- x DeepCTR: the kmtl figure divided by DeepCTR's anchor.
- other load: the largest share of the machine's CPU time that other
  processes used during a timed part (from `/proc/stat`); figures taken
  above 5 % are flagged as noisy.

Every timed part runs under an exclusive `flock` on one lock file, so two
benchmark runs on the machine never overlap their timings. TensorFlow uses
all of the machine's cores (its default thread pools are left alone).
Compare ratios from one run: other load on the machine moves the absolute
figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import DEFAULT_LOCK  # noqa: E402
from harness import NOISY_LOAD  # noqa: E402
from harness import OtherLoad  # noqa: E402
from harness import bench_lock  # noqa: E402
from harness import largest  # noqa: E402

import kmtl  # noqa: E402
from kmtl.data.ae_synth import EMBEDDING_DIM  # noqa: E402
from kmtl.data.ae_synth import EVAL_SEED  # noqa: E402
from kmtl.data.ae_synth import NUM_DENSE  # noqa: E402
from kmtl.data.ae_synth import TRAIN_SEED  # noqa: E402
from kmtl.data.ae_synth import VOCABULARY_SIZES  # noqa: E402
from kmtl.data.ae_synth import AESynthData  # noqa: E402
from kmtl.data.ae_synth import ae_synth_features  # noqa: E402
from kmtl.data.ae_synth import ae_synth_labels  # noqa: E402
from kmtl.data.ae_synth import ae_synth_spec  # noqa: E402
from kmtl.data.ae_synth import make_ae_synth  # noqa: E402
from kmtl.training.speed import BATCH_SIZE  # noqa: E402
from kmtl.training.speed import LEARNING_RATE  # noqa: E402
from kmtl.training.speed import SPEC_HPARAMS  # noqa: E402
from kmtl.training.speed import EpochTimer  # noqa: E402

SERVING_BATCHES = (1, 256)
SERVING_WARMUP_CALLS = 20
SERVING_TIMED_CALLS = 300
KERAS_BASELINE = "keras_mmoe"
# The SPEC.md dimensions of the models this script compares with the
# anchors (kmtl.training.speed's, which `kmtl benchmark speed` uses).
MODEL_HPARAMS = SPEC_HPARAMS

# SPEC.md anchors: (train ex/s, predict ex/s) per peer.
ANCHORS: dict[str, dict[str, tuple[float, float]]] = {
    "shared_bottom": {
        "DeepCTR": (63847, 121255),
        "torch-rechub": (59015, 452990),
    },
    "mmoe": {
        "DeepCTR": (23077, 59903),
        "torch-rechub": (20184, 87803),
        "plain Keras": (21853, 56214),
    },
    "ple": {"DeepCTR": (18789, 48453), "torch-rechub": (15861, 59949)},
    "esmm": {"DeepCTR": (53966, 108534), "torch-rechub": (51603, 323685)},
}
# SPEC.md MMoE serving anchors: batch -> peer -> (p50 ms, p99 ms).
SERVING_ANCHORS: dict[int, dict[str, tuple[float, float]]] = {
    1: {"DeepCTR": (1.63, 2.46), "plain Keras": (2.06, 2.96)},
    256: {"DeepCTR": (4.52, 6.60), "plain Keras": (4.20, 6.41)},
}
# The anchors a model's figures are set beside (the plain Keras MMoE of this
# run is an MMoE too).
ANCHOR_MODEL = {KERAS_BASELINE: "mmoe"}


# === Data ===


# The workload's generator, spec, inputs and labels are kmtl.data.ae_synth's
# (`make_ae_synth`, `ae_synth_spec`, `ae_synth_features`, `ae_synth_labels`).


def make_dataset(
    features: dict[str, np.ndarray],
    data: AESynthData | None = None,
    tasks: Sequence[kmtl.TaskSpec] = (),
    pipeline: str = "kmtl",
) -> tf.data.Dataset:
    """In-memory arrays -> batched, prefetched `tf.data.Dataset`: of
    `(features, labels, sample_weights)` with `data`, of features without.

    `pipeline="kmtl"` cuts whole batches with `kmtl.data.batched_dataset`
    (what `kmtl.data.to_dataset` does); `"rows"` slices rows and re-batches
    them (`from_tensor_slices(...).batch(...)`, the common idiom);
    `"prebatched"` slices arrays reshaped to `[num_batches, 2048, ...]`.
    """
    element: Any = features
    if data is not None:
        labels, weights = ae_synth_labels(data, tasks)
        element = (features, labels, weights)
    if pipeline == "kmtl":
        return kmtl.data.batched_dataset(element, BATCH_SIZE)
    if pipeline == "rows":
        ds = tf.data.Dataset.from_tensor_slices(element).batch(BATCH_SIZE)
    else:
        ds = _prebatched(element)
    return ds.prefetch(tf.data.AUTOTUNE)


def _prebatched(element: Any) -> tf.data.Dataset:
    """Batches of 2048 rows (the last one shorter) sliced from arrays
    reshaped to `[num_batches, 2048, ...]`."""
    rows = len(tf.nest.flatten(element)[0])
    full = rows // BATCH_SIZE * BATCH_SIZE
    ds = tf.data.Dataset.from_tensor_slices(
        tf.nest.map_structure(
            lambda a: a[:full].reshape((-1, BATCH_SIZE, *a.shape[1:])),
            element,
        )
    )
    if full < rows:
        tail = tf.nest.map_structure(lambda a: a[full:], element)
        ds = ds.concatenate(tf.data.Dataset.from_tensors(tail))
    return ds


# === Models ===


def build_kmtl(name: str, spec: kmtl.FeatureSpec) -> keras.Model:
    """`kmtl.build` with SPEC.md's dimensions and Adam(1e-3)."""
    return kmtl.build(
        name,
        spec,
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        **MODEL_HPARAMS[name],
    )


def build_keras_mmoe(spec: kmtl.FeatureSpec) -> keras.Model:
    """A plain Keras 3 MMoE on the vector layout: 16 `Embedding` layers,
    8 experts Dense(256)-Dense(128) in a Python list, a linear softmax gate
    and a Dense(64) tower per task. Compiled with kmtl's compile arguments
    (the same losses and metrics as the kmtl models)."""
    inputs: dict[str, keras.KerasTensor] = {}
    parts = []
    for i, size in enumerate(VOCABULARY_SIZES):
        name = f"c{i}"
        inputs[name] = keras.Input(shape=(), dtype="int64", name=name)
        parts.append(
            keras.layers.Embedding(size, EMBEDDING_DIM, name=f"emb_{name}")(
                inputs[name]
            )
        )
    inputs["dense"] = keras.Input(shape=(NUM_DENSE,), name="dense")
    parts.append(inputs["dense"])
    x = keras.layers.Concatenate(name="flat_inputs")(parts)
    experts = []
    for e in range(8):
        h = keras.layers.Dense(256, "relu", name=f"expert_{e}_0")(x)
        experts.append(keras.layers.Dense(128, "relu", name=f"expert_{e}_1")(h))
    stacked = keras.ops.stack(experts, axis=1)  # [B, 8, 128]
    outputs = {}
    for task in spec.task_names:
        gate = keras.layers.Dense(8, "softmax", name=f"{task}_gate")(x)
        mixed = keras.ops.einsum("be,beh->bh", gate, stacked)
        tower = keras.layers.Dense(64, "relu", name=f"{task}_tower")(mixed)
        outputs[task] = keras.layers.Dense(1, "sigmoid", name=task)(tower)
    model = keras.Model(inputs, outputs, name=KERAS_BASELINE)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        **kmtl.compile_args(spec),
    )
    return model


# === Measurements ===


def time_training(
    model: keras.Model, ds: tf.data.Dataset, epochs: int, lock: str
) -> tuple[EpochTimer, float | None]:
    """Fits `epochs` epochs; returns their timer and the other load."""
    timer = EpochTimer()
    with bench_lock(lock), OtherLoad() as load:
        model.fit(
            ds, epochs=epochs, shuffle=False, verbose=0, callbacks=[timer]
        )
    return timer, load.share


def time_prediction(
    model: keras.Model, ds: tf.data.Dataset, lock: str
) -> tuple[float, float | None]:
    """Seconds of one `predict` pass over `ds`, after a warm-up pass, and
    the other load meanwhile."""
    with bench_lock(lock):
        model.predict(ds, verbose=0)
        with OtherLoad() as load:
            start = time.perf_counter()
            model.predict(ds, verbose=0)
            seconds = time.perf_counter() - start
    return seconds, load.share


def time_serving(
    model: keras.Model, features: dict[str, np.ndarray], lock: str
) -> tuple[dict[int, tuple[float, float]], float | None]:
    """Exports `model` with `kmtl.export`, reloads it and times
    `serving_default`; returns batch -> (p50 ms, p99 ms), and the largest
    other load meanwhile."""
    sample = {name: value[:2] for name, value in features.items()}
    latencies: dict[int, tuple[float, float]] = {}
    loads: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="kmtl-bench-") as base:
        path = kmtl.export(model, base, sample=sample)
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        for batch in SERVING_BATCHES:
            request = {
                name: tf.constant(value[:batch])
                for name, value in features.items()
            }
            with bench_lock(lock):
                for _ in range(SERVING_WARMUP_CALLS):
                    serve(**request)
                times = np.empty(SERVING_TIMED_CALLS)
                with OtherLoad() as load:
                    for i in range(SERVING_TIMED_CALLS):
                        start = time.perf_counter()
                        serve(**request)
                        times[i] = time.perf_counter() - start
            loads.append(load.share)
            p50, p99 = np.percentile(times * 1e3, [50, 99])
            latencies[batch] = (float(p50), float(p99))
    return latencies, largest(loads)


@dataclasses.dataclass
class Result:
    """The figures of one model."""

    model: str
    params: int
    epoch_seconds: list[float]
    epoch_start_waits: list[float]
    train_rows: int
    predict_seconds: float
    eval_rows: int
    serving: dict[int, tuple[float, float]] = dataclasses.field(
        default_factory=dict
    )
    other_load: float | None = None

    @property
    def train_rate(self) -> float:
        """Examples/s: the median over epochs 2..N (epoch 1 if only one)."""
        timed = self.epoch_seconds[1:] or self.epoch_seconds
        return self.train_rows / statistics.median(timed)

    @property
    def steady_train_rate(self) -> float:
        """As `train_rate`, less each epoch's wait before its first batch."""
        steady = [
            s - w
            for s, w in zip(
                self.epoch_seconds, self.epoch_start_waits, strict=True
            )
        ]
        return self.train_rows / statistics.median(steady[1:] or steady)

    @property
    def predict_rate(self) -> float:
        return self.eval_rows / self.predict_seconds

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train_examples_per_s"] = self.train_rate
        out["steady_train_examples_per_s"] = self.steady_train_rate
        out["predict_examples_per_s"] = self.predict_rate
        out["serving"] = {
            str(b): {"p50_ms": p50, "p99_ms": p99}
            for b, (p50, p99) in self.serving.items()
        }
        return out


def measure(
    name: str,
    model: keras.Model,
    train: tuple[tf.data.Dataset, int],
    evaluation: tuple[tf.data.Dataset, int],
    serving_features: dict[str, np.ndarray] | None,
    args: argparse.Namespace,
) -> Result:
    """Trains, predicts and (optionally) serves one model."""
    print(f"- {name}: {model.count_params():,} parameters", flush=True)
    timer, train_load = time_training(model, train[0], args.epochs, args.lock)
    predict_seconds, predict_load = time_prediction(
        model, evaluation[0], args.lock
    )
    result = Result(
        model=name,
        params=model.count_params(),
        epoch_seconds=timer.seconds,
        epoch_start_waits=timer.start_waits,
        train_rows=train[1],
        predict_seconds=predict_seconds,
        eval_rows=evaluation[1],
    )
    loads = [train_load, predict_load]
    print(
        "  epochs "
        + ", ".join(
            f"{s:.2f} s (first batch after {w:.2f} s)"
            for s, w in zip(timer.seconds, timer.start_waits, strict=True)
        ),
        flush=True,
    )
    print(
        f"  train {result.train_rate:,.0f} ex/s (steady "
        f"{result.steady_train_rate:,.0f}), predict "
        f"{result.predict_rate:,.0f} ex/s",
        flush=True,
    )
    if serving_features is not None:
        result.serving, serving_load = time_serving(
            model, serving_features, args.lock
        )
        loads.append(serving_load)
        for batch, (p50, p99) in result.serving.items():
            print(
                f"  serving batch {batch}: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            )
    result.other_load = largest(loads)
    if result.other_load is not None:
        note = "  <- noisy" if result.other_load > NOISY_LOAD else ""
        print(
            f"  CPU used by other processes while timing: up to "
            f"{result.other_load:.0%}{note}",
            flush=True,
        )
    return result


# === Report ===


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _pair(values: tuple[float, float] | None) -> str:
    return "" if values is None else f"{values[0]:,.0f} / {values[1]:,.0f}"


def format_table(results: Sequence[Result]) -> str:
    """The throughput table in Markdown: kmtl, the anchors, the ratios."""
    lines = [
        "| model | train ex/s | steady train ex/s | predict ex/s "
        "| DeepCTR train / predict "
        "| torch-rechub train / predict | plain Keras (SPEC) "
        "| x DeepCTR train | x DeepCTR predict | other load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        anchors = ANCHORS.get(ANCHOR_MODEL.get(r.model, r.model), {})
        deepctr = anchors.get("DeepCTR")
        ratios = ("", "")
        if deepctr:
            ratios = (
                f"{r.train_rate / deepctr[0]:.2f}",
                f"{r.predict_rate / deepctr[1]:.2f}",
            )
        load = "" if r.other_load is None else f"{r.other_load:.0%}"
        lines.append(
            f"| {r.model} | {_rate(r.train_rate)} "
            f"| {_rate(r.steady_train_rate)} | {_rate(r.predict_rate)} "
            f"| {_pair(deepctr)} | {_pair(anchors.get('torch-rechub'))} "
            f"| {_pair(anchors.get('plain Keras'))} "
            f"| {ratios[0]} | {ratios[1]} | {load} |"
        )
    by_name = {r.model: r for r in results}
    if "mmoe" in by_name and KERAS_BASELINE in by_name:
        kmtl_mmoe, plain = by_name["mmoe"], by_name[KERAS_BASELINE]
        lines.append("")
        lines.append(
            "kmtl mmoe / plain Keras MMoE (this run): train "
            f"{kmtl_mmoe.train_rate / plain.train_rate:.2f}x (steady "
            f"{kmtl_mmoe.steady_train_rate / plain.steady_train_rate:.2f}x), "
            f"predict {kmtl_mmoe.predict_rate / plain.predict_rate:.2f}x"
        )
    return "\n".join(lines)


def format_serving(results: Sequence[Result]) -> str:
    """The serving-latency table in Markdown (MMoE anchors only)."""
    lines = [
        "| model | batch | p50 ms | p99 ms | DeepCTR p50 / p99 "
        "| plain Keras p50 / p99 (SPEC) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        is_mmoe = ANCHOR_MODEL.get(r.model, r.model) == "mmoe"
        for batch, (p50, p99) in r.serving.items():
            anchors = SERVING_ANCHORS[batch] if is_mmoe else {}
            cells = [
                ""
                if peer not in anchors
                else f"{anchors[peer][0]:.2f} / {anchors[peer][1]:.2f}"
                for peer in ("DeepCTR", "plain Keras")
            ]
            lines.append(
                f"| {r.model} | {batch} | {p50:.2f} | {p99:.2f} "
                f"| {cells[0]} | {cells[1]} |"
            )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """The machine and library versions the figures were taken on."""
    threads = tf.config.threading
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "kmtl": kmtl.__version__,
        "tf_intra_op_threads": threads.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": threads.get_inter_op_parallelism_threads(),
    }


# === Main ===


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        default=",".join(MODEL_HPARAMS),
        help="comma-separated kmtl models (default: %(default)s)",
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--eval-rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--layout", choices=("vector", "per_field"), default="vector"
    )
    parser.add_argument("--metrics", choices=("auc", "none"), default="auc")
    parser.add_argument(
        "--pipeline",
        choices=("kmtl", "rows", "prebatched"),
        default="kmtl",
        help="kmtl: whole batches cut by kmtl.data.batched_dataset; rows: "
        "rows sliced then batched; prebatched: arrays reshaped into "
        "batches (default: %(default)s)",
    )
    parser.add_argument("--serving", action="store_true")
    parser.add_argument("--keras-baseline", action="store_true")
    parser.add_argument("--lock", default=DEFAULT_LOCK)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(MODEL_HPARAMS))
    if unknown:
        parser.error(
            f"unknown model(s) {unknown}; expected some of "
            f"{list(MODEL_HPARAMS)}"
        )
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (epoch 1 is the warm-up)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # retracing notes of `predict`
    env = environment()
    print(
        f"cores: {env['cpu_count']} ({env['usable_cores']} usable), "
        f"TF intra/inter-op threads: {env['tf_intra_op_threads']}/"
        f"{env['tf_inter_op_threads']} (0 = all cores), "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']} "
        f"({env['keras_backend']}), kmtl {env['kmtl']}, "
        f"Python {env['python']}"
    )
    start = time.perf_counter()
    train_data = make_ae_synth(args.rows, TRAIN_SEED)
    eval_data = make_ae_synth(args.eval_rows, EVAL_SEED)
    print(
        f"ae-synth: {len(train_data):,} train / {len(eval_data):,} eval "
        f"rows, click rate {train_data.click.mean():.3f}, conversion rate "
        f"{train_data.conversion.mean():.4f}, generated in "
        f"{time.perf_counter() - start:.1f} s; layout {args.layout}, "
        f"metrics {args.metrics}, pipeline {args.pipeline}, batch "
        f"{BATCH_SIZE}, {args.epochs} epochs"
    )
    spec = ae_synth_spec(args.layout, args.metrics)
    train_features = ae_synth_features(train_data, spec)
    eval_features = ae_synth_features(eval_data, spec)
    eval_ds = make_dataset(eval_features, pipeline=args.pipeline)

    results: list[Result] = []
    for name in args.models:
        tasks = kmtl.model_tasks(name, spec, **MODEL_HPARAMS[name])
        train_ds = make_dataset(
            train_features, train_data, tasks, args.pipeline
        )
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        model = build_kmtl(name, spec)
        results.append(
            measure(
                name,
                model,
                (train_ds, len(train_data)),
                (eval_ds, len(eval_data)),
                eval_features if args.serving else None,
                args,
            )
        )
    if args.keras_baseline:
        vector_spec = ae_synth_spec("vector", args.metrics)
        names = [n for n in vector_spec.input_names if n != "scenario"]
        base_train = {
            n: v
            for n, v in ae_synth_features(train_data, vector_spec).items()
            if n in names
        }
        base_eval = {
            n: v
            for n, v in ae_synth_features(eval_data, vector_spec).items()
            if n in names
        }
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        model = build_keras_mmoe(vector_spec)
        results.append(
            measure(
                KERAS_BASELINE,
                model,
                (
                    make_dataset(
                        base_train, train_data, vector_spec.tasks, args.pipeline
                    ),
                    len(train_data),
                ),
                (
                    make_dataset(base_eval, pipeline=args.pipeline),
                    len(eval_data),
                ),
                base_eval if args.serving else None,
                args,
            )
        )

    print()
    print(format_table(results))
    if args.serving:
        print()
        print(format_serving(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "environment": env,
                    "arguments": {
                        k: v for k, v in vars(args).items() if k != "json"
                    },
                    "results": [r.to_dict() for r in results],
                },
                handle,
                indent=2,
            )
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
