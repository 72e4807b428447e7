"""Latency of kmtl's exported MMoE `serving_default` on the "ae-synth"
workload of `/work/shared/bench/SPEC.md`, beside DeepCTR's anchors.

Usage:

    python benchmarks/serving_latency.py
        [--layouts per_field,vector] [--batches 1,32,256]
        [--lock /tmp/kmtl-bench.lock] [--json out.json]

The model is `kmtl.build("mmoe", ...)` with SPEC.md's dimensions (8
experts of (256, 128), towers (64,), 16 id fields embedded in 16
dimensions), exported with `kmtl.export` and called on raw features: the
preprocessing (id range checks, OOV mapping, the single embedding gather,
the scenario check) runs inside the graph. Data and spec come from
`benchmarks/throughput.py` (rows of the seed-1 evaluation set). The model
is not trained: latency does not depend on the weights' values.

- `--layouts`: `per_field` declares the 63 floats as 63 scalar inputs
  `d0..d62`, as DeepCTR does; `vector` as one
  `NumericalFeature("dense", dim=63)`.
- Two ways of running the SavedModel: `session` is TF Serving's way, the
  TF1 session loader (`tf.compat.v1.saved_model.loader.load`) fed and
  fetched by the SignatureDef's tensor names, called through
  `Session.make_callable`; `tf2` is `tf.saved_model.load(...)
  .signatures["serving_default"]` called from Python, as SPEC.md's anchors
  were measured.
- p50 / p99 of one call, over 300 calls after 20 warm-up calls, under an
  exclusive `flock` on the benchmark lock. "other load" is the share of
  the machine's CPU used by other processes meanwhile (above 5 % the
  figure is flagged as noisy).
- Target: p99 <= 0.7 x DeepCTR's anchor (2.46 ms at batch 1, 6.60 ms at
  batch 256; SPEC.md has none at batch 32).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kmtl  # noqa: E402
from kmtl.export import SIGNATURE_KEY  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEFAULT_LOCK  # noqa: E402
from harness import NOISY_LOAD  # noqa: E402
from harness import OtherLoad  # noqa: E402
from harness import bench_lock  # noqa: E402
from throughput import SERVING_ANCHORS  # noqa: E402
from throughput import SERVING_TIMED_CALLS  # noqa: E402
from throughput import SERVING_WARMUP_CALLS  # noqa: E402
from throughput import build_kmtl  # noqa: E402
from throughput import environment  # noqa: E402

from kmtl.data.ae_synth import EVAL_SEED  # noqa: E402
from kmtl.data.ae_synth import ae_synth_features  # noqa: E402
from kmtl.data.ae_synth import ae_synth_spec  # noqa: E402
from kmtl.data.ae_synth import make_ae_synth  # noqa: E402

TARGET_RATIO = 0.7
RUNNERS = ("session", "tf2")


def session_runner(
    export_dir: str, features: dict[str, np.ndarray]
) -> Callable[[], object]:
    """A call of `serving_default` as TF Serving makes it: TF1 session
    loader, feeds and fetches named by the SignatureDef."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], export_dir
        )
    signature = meta_graph.signature_def[SIGNATURE_KEY]
    names = sorted(signature.inputs)
    fetches = [signature.outputs[k].name for k in sorted(signature.outputs)]
    call = session.make_callable(
        fetches,
        [graph.get_tensor_by_name(signature.inputs[n].name) for n in names],
    )
    values = [features[n] for n in names]
    return lambda: call(*values)


def tf2_runner(
    export_dir: str, features: dict[str, np.ndarray]
) -> Callable[[], object]:
    """A call of `tf.saved_model.load(...).signatures["serving_default"]`."""
    serve = tf.saved_model.load(export_dir).signatures[SIGNATURE_KEY]
    tensors = {n: tf.constant(v) for n, v in features.items()}
    return lambda: serve(**tensors)


def time_calls(call: Callable[[], object], lock: str) -> tuple[float, ...]:
    """(p50 ms, p99 ms, other load) over the timed calls, after warm-up."""
    with bench_lock(lock):
        for _ in range(SERVING_WARMUP_CALLS):
            call()
        times = np.empty(SERVING_TIMED_CALLS)
        with OtherLoad() as load:
            for i in range(SERVING_TIMED_CALLS):
                start = time.perf_counter()
                call()
                times[i] = time.perf_counter() - start
    p50, p99 = np.percentile(times * 1e3, [50, 99])
    return float(p50), float(p99), load.share


def measure(layout: str, batches: Sequence[int], lock: str) -> list[dict]:
    """Exports MMoE in one layout and times both runners at each batch."""
    spec = ae_synth_spec(layout, "none")
    features = ae_synth_features(make_ae_synth(max(batches), EVAL_SEED), spec)
    keras_model = build_kmtl("mmoe", spec)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kmtl-latency-") as base:
        sample = {name: value[:8] for name, value in features.items()}
        path = str(kmtl.export(keras_model, base, sample=sample))
        for runner in RUNNERS:
            make = session_runner if runner == "session" else tf2_runner
            for batch in batches:
                head = {n: v[:batch] for n, v in features.items()}
                p50, p99, load = time_calls(make(path, head), lock)
                rows.append(
                    dict(
                        layout=layout,
                        runner=runner,
                        batch=batch,
                        p50_ms=p50,
                        p99_ms=p99,
                        other_load=load,
                    )
                )
                print(
                    f"  {layout:<9} {runner:<7} batch {batch:>3}: "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                    flush=True,
                )
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """The Markdown table: kmtl beside DeepCTR's anchors and the target."""
    lines = [
        "| layout | runner | batch | p50 ms | p99 ms | DeepCTR p50 / p99 "
        "| target p99 | p99 / DeepCTR | other load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        anchor = SERVING_ANCHORS.get(r["batch"], {}).get("DeepCTR")
        cells = ["", "", ""]
        if anchor:
            ratio = r["p99_ms"] / anchor[1]
            mark = "" if ratio <= TARGET_RATIO else " (missed)"
            cells = [
                f"{anchor[0]:.2f} / {anchor[1]:.2f}",
                f"{TARGET_RATIO * anchor[1]:.2f}",
                f"{ratio:.2f}{mark}",
            ]
        load = r["other_load"]
        load_cell = "" if load is None else f"{load:.0%}"
        if load is not None and load > NOISY_LOAD:
            load_cell += " noisy"
        lines.append(
            f"| {r['layout']} | {r['runner']} | {r['batch']} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {cells[0]} "
            f"| {cells[1]} | {cells[2]} | {load_cell} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--layouts", default="per_field,vector")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--lock", default=DEFAULT_LOCK)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    args.layouts = [x for x in args.layouts.split(",") if x]
    unknown = sorted(set(args.layouts) - {"per_field", "vector"})
    if unknown:
        parser.error(f"unknown layout(s) {unknown}: per_field, vector")
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b]
    except ValueError:
        parser.error(f"--batches takes integers. Received: {args.batches}")
    if not args.batches or min(args.batches) < 1:
        parser.error("--batches must be positive integers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    env = environment()
    print(
        f"cores: {env['cpu_count']} ({env['usable_cores']} usable), "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, kmtl "
        f"{env['kmtl']}; MMoE serving_default on raw features, "
        f"{SERVING_WARMUP_CALLS} warm-up + {SERVING_TIMED_CALLS} timed calls"
    )
    rows = []
    for layout in args.layouts:
        rows += measure(layout, args.batches, args.lock)
    print()
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"environment": env, "results": rows}, handle, indent=2)
        print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
