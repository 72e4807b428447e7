"""kmtl and DeepCTR 0.9.4 on the "ae-synth" workload of
`/work/shared/bench/SPEC.md`, measured on this machine in one run.

SPEC.md's DeepCTR anchors were measured on another machine of the same
kind; this script measures DeepCTR here, alternating with kmtl, so that
the ratio kmtl / DeepCTR comes from one run on one machine.

Usage:

    make .venv-deepctr/bin/python          # once: DeepCTR's environment
    python benchmarks/deepctr_side_by_side.py
        [--models shared_bottom,mmoe,ple,esmm] [--rounds 2]
        [--rows 200000] [--eval-rows 50000] [--epochs 3]
        [--metrics auc|none] [--optimizer adam|fused_adam|lazy_adam]
        [--serving] [--no-training] [--batches 1,32,256]
        [--deepctr-python .venv-deepctr/bin/python]
        [--lock /tmp/kmtl-bench.lock] [--json out.json]

- Training and prediction: for each round and model, kmtl's
  `kmtl.training.speed.time_model` under the benchmark lock
  (`harness.time_model_locked`; SPEC dimensions, packed numericals)
  then DeepCTR's model in a subprocess (`benchmarks/peers/
  deepctr_ae_synth.py`, one input per field, DeepCTR's defaults) on the
  same arrays. Both: `fit` at batch 2048 with Adam 1e-3, no shuffling,
  examples/s of the median of epochs 2..N; `predict` over the evaluation
  rows after one warm-up pass. `--metrics` applies to both (an AUC per
  output, or losses only). `--optimizer` picks kmtl's: `adam` is Keras's
  (`kmtl.build`'s default), `fused_adam` `kmtl.training.FusedAdam`,
  `lazy_adam` `kmtl.training.LazyAdam` (DeepCTR keeps tf_keras's Adam).
- `--serving`: DeepCTR's MMoE (trained here) and kmtl's MMoE in both
  numerical layouts, exported as SavedModels, each called through the TF1
  session loader as TF Serving runs it (`serving_latency.session_runner`),
  the three alternating `--rounds` times at each batch size; p50 / p99
  over 300 calls after 20 warm-up calls.
- Every timed part holds an exclusive `flock` on `--lock`. The largest
  share of the CPU that other processes used while kmtl's parts ran is
  printed at the end (the DeepCTR worker's own share is not separable from
  the driver's view, and the lock keeps the two sides from overlapping).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEFAULT_LOCK  # noqa: E402
from harness import time_model_locked  # noqa: E402
from serving_latency import session_runner  # noqa: E402
from serving_latency import time_calls  # noqa: E402
from throughput import build_kmtl  # noqa: E402
from throughput import environment  # noqa: E402

import kmtl  # noqa: E402
from kmtl.data.ae_synth import EVAL_SEED  # noqa: E402
from kmtl.data.ae_synth import TRAIN_SEED  # noqa: E402
from kmtl.data.ae_synth import VOCABULARY_SIZES  # noqa: E402
from kmtl.data.ae_synth import ae_synth_features  # noqa: E402
from kmtl.data.ae_synth import ae_synth_spec  # noqa: E402
from kmtl.data.ae_synth import make_ae_synth  # noqa: E402
from kmtl.export import SIGNATURE_KEY  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WORKER = REPO / "benchmarks" / "peers" / "deepctr_ae_synth.py"
DEFAULT_PYTHON = REPO / ".venv-deepctr" / "bin" / "python"
MODELS = ("shared_bottom", "mmoe", "ple", "esmm")


def write_arrays(train, evaluation, path: Path) -> None:
    """The ae-synth arrays the DeepCTR worker reads."""
    np.savez(
        path,
        vocabulary_sizes=np.asarray(VOCABULARY_SIZES),
        train_ids=train.ids,
        train_dense=train.dense,
        train_click=train.click,
        train_conversion=train.conversion,
        eval_ids=evaluation.ids,
        eval_dense=evaluation.dense,
    )


def deepctr_run(
    python: Path,
    data: Path,
    model: str,
    args: argparse.Namespace,
    export: Path | None = None,
) -> dict:
    """Runs the DeepCTR worker on one model; returns its JSON figures and
    the other load while it ran."""
    command = [
        str(python),
        str(WORKER),
        "--data",
        str(data),
        "--model",
        model,
        "--epochs",
        str(args.epochs),
        "--metrics",
        args.metrics,
        "--lock",
        args.lock,
    ]
    if export is not None:
        command += ["--export", str(export)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(
            f"DeepCTR worker failed on {model!r} (exit "
            f"{completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def median_rate(rows: int, epoch_seconds: Sequence[float]) -> float:
    """Examples/s of the median of epochs 2..N."""
    return rows / statistics.median(epoch_seconds[1:] or epoch_seconds)


def compare_training(args: argparse.Namespace, work: Path) -> list[dict]:
    """Alternates kmtl and DeepCTR per model and round."""
    spec = ae_synth_spec("vector", args.metrics)
    train = make_ae_synth(args.rows, TRAIN_SEED)
    evaluation = make_ae_synth(args.eval_rows, EVAL_SEED)
    train_features = ae_synth_features(train, spec)
    eval_features = ae_synth_features(evaluation, spec)
    data = work / "ae_synth.npz"
    write_arrays(train, evaluation, data)
    rows = []
    for round_ in range(1, args.rounds + 1):
        for model in args.models:
            ours, ours_load = time_model_locked(
                model,
                spec,
                train,
                evaluation,
                epochs=args.epochs,
                lock=args.lock,
                train_features=train_features,
                eval_features=eval_features,
                optimizer=args.optimizer,
            )
            export = work / "deepctr_mmoe" if model == "mmoe" else None
            theirs = deepctr_run(args.deepctr_python, data, model, args, export)
            row = dict(
                round=round_,
                model=model,
                kmtl_train=ours.train_rate,
                deepctr_train=median_rate(
                    theirs["train_rows"], theirs["epoch_seconds"]
                ),
                kmtl_predict=ours.predict_rate,
                deepctr_predict=theirs["eval_rows"] / theirs["predict_seconds"],
                kmtl_epoch_seconds=ours.epoch_seconds,
                deepctr_epoch_seconds=theirs["epoch_seconds"],
                kmtl_other_load=ours_load,
            )
            rows.append(row)
            print(
                f"  round {round_} {model:<13} train kmtl "
                f"{row['kmtl_train']:>9,.0f} DeepCTR "
                f"{row['deepctr_train']:>9,.0f} "
                f"({row['kmtl_train'] / row['deepctr_train']:.2f}x); predict "
                f"kmtl {row['kmtl_predict']:>9,.0f} DeepCTR "
                f"{row['deepctr_predict']:>9,.0f}",
                flush=True,
            )
    return rows


def deepctr_feeds(export_dir: Path, data) -> dict[str, np.ndarray]:
    """DeepCTR's serving inputs (one `[B, 1]` tensor per field, in the
    SignatureDef's dtype) from ae-synth rows."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], str(export_dir)
        )
    signature = meta_graph.signature_def[SIGNATURE_KEY]
    columns = {f"c{i}": data.ids[:, i] for i in range(data.ids.shape[1])}
    columns.update(
        {f"d{i}": data.dense[:, i] for i in range(data.dense.shape[1])}
    )
    feeds = {}
    for name, info in signature.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
        feeds[name] = columns[name].astype(dtype).reshape(-1, 1)
    return feeds


def compare_serving(args: argparse.Namespace, work: Path) -> list[dict]:
    """p50 / p99 of DeepCTR's and kmtl's MMoE through the session loader."""
    deepctr_dir = work / "deepctr_mmoe"
    if not deepctr_dir.exists():
        small = work / "serving_rows.npz"
        write_arrays(
            make_ae_synth(4096, TRAIN_SEED),
            make_ae_synth(2048, EVAL_SEED),
            small,
        )
        quick = argparse.Namespace(**{**vars(args), "epochs": 1})
        deepctr_run(args.deepctr_python, small, "mmoe", quick, deepctr_dir)
    rows_data = make_ae_synth(max(args.batches), EVAL_SEED)
    systems = {
        "DeepCTR (per field)": (
            deepctr_dir,
            deepctr_feeds(deepctr_dir, rows_data),
        )
    }
    for layout in ("per_field", "vector"):
        spec = ae_synth_spec(layout, "none")
        features = ae_synth_features(rows_data, spec)
        sample = {n: v[:8] for n, v in features.items()}
        path = kmtl.export(
            build_kmtl("mmoe", spec),
            str(work / f"kmtl_{layout}"),
            sample=sample,
        )
        systems[f"kmtl ({layout})"] = (Path(path), features)
    results = []
    for batch in args.batches:
        for round_ in range(1, args.rounds + 1):
            for system, (path, feeds) in systems.items():
                head = {n: v[:batch] for n, v in feeds.items()}
                p50, p99, load = time_calls(
                    session_runner(str(path), head), args.lock
                )
                results.append(
                    dict(
                        system=system,
                        batch=batch,
                        round=round_,
                        p50_ms=p50,
                        p99_ms=p99,
                        other_load=load,
                    )
                )
                print(
                    f"  batch {batch:>3} round {round_} {system:<20} "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                    flush=True,
                )
    return results


def format_training(rows: Sequence[dict]) -> str:
    """Markdown: per model, each round's figures and ratios."""
    lines = [
        "| model | round | kmtl train | DeepCTR train | kmtl / DeepCTR "
        "| kmtl predict | DeepCTR predict | kmtl / DeepCTR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (MODELS.index(r["model"]), r["round"])):
        lines.append(
            f"| {r['model']} | {r['round']} | {r['kmtl_train']:,.0f} "
            f"| {r['deepctr_train']:,.0f} "
            f"| {r['kmtl_train'] / r['deepctr_train']:.2f} "
            f"| {r['kmtl_predict']:,.0f} | {r['deepctr_predict']:,.0f} "
            f"| {r['kmtl_predict'] / r['deepctr_predict']:.2f} |"
        )
    return "\n".join(lines)


def format_serving(rows: Sequence[dict]) -> str:
    """Markdown: p50 / p99 per system and batch, median over rounds, and
    the p99 ratio to DeepCTR."""
    lines = [
        "| batch | system | p50 ms | p99 ms | p99 / DeepCTR's |",
        "|---:|---|---:|---:|---:|",
    ]
    batches = sorted({r["batch"] for r in rows})
    for batch in batches:
        at = [r for r in rows if r["batch"] == batch]
        systems = list(dict.fromkeys(r["system"] for r in at))
        medians = {
            s: (
                statistics.median(r["p50_ms"] for r in at if r["system"] == s),
                statistics.median(r["p99_ms"] for r in at if r["system"] == s),
            )
            for s in systems
        }
        reference = medians[systems[0]][1]
        for system in systems:
            p50, p99 = medians[system]
            lines.append(
                f"| {batch} | {system} | {p50:.2f} | {p99:.2f} "
                f"| {p99 / reference:.2f} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--eval-rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--metrics", choices=("auc", "none"), default="auc")
    parser.add_argument(
        "--optimizer",
        choices=("adam", "fused_adam", "lazy_adam"),
        default="adam",
    )
    parser.add_argument("--serving", action="store_true")
    parser.add_argument(
        "--training", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--deepctr-python", type=Path, default=DEFAULT_PYTHON)
    parser.add_argument("--lock", default=DEFAULT_LOCK)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; DeepCTR has {list(MODELS)}")
    args.batches = [int(b) for b in args.batches.split(",") if b]
    if args.epochs < 2 or args.rounds < 1:
        parser.error("--epochs must be at least 2 and --rounds at least 1")
    if not args.deepctr_python.exists():
        parser.error(
            f"no DeepCTR environment at {args.deepctr_python}: run "
            "`make .venv-deepctr/bin/python` or pass --deepctr-python"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    env = environment()
    print(
        f"cores: {env['cpu_count']}, TensorFlow {env['tensorflow']}, Keras "
        f"{env['keras']}, kmtl {env['kmtl']}; DeepCTR from "
        f"{args.deepctr_python}"
    )
    report = {"environment": env}
    with tempfile.TemporaryDirectory(prefix="kmtl-vs-deepctr-") as tmp:
        work = Path(tmp)
        if args.training:
            report["training"] = compare_training(args, work)
        if args.serving:
            report["serving"] = compare_serving(args, work)
    print()
    if "training" in report:
        print(format_training(report["training"]))
        print()
    if "serving" in report:
        print(format_serving(report["serving"]))
    loads = [
        r[key]
        for part in ("training", "serving")
        for r in report.get(part, [])
        for key in ("kmtl_other_load", "other_load")
        if r.get(key) is not None
    ]
    if loads:
        print(f"\nOther processes used up to {max(loads):.0%} of the CPU.")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
