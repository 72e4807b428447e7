"""Training throughput and peak memory of kmtl's scenario-indexed layers as
the number of scenarios grows.

Usage:

    python benchmarks/scenario_layers.py
        [--layers pn,star_full,star_rank2,lhuc] [--scenarios 4,100,1000]
        [--steps 300] [--batch 2048] [--optimizer adam|sgd] [--baseline]
        [--lock /tmp/kmtl-bench.lock] [--json out.json]

Each configuration trains a tiny model, `[B, 319]` floats and a scenario
id drawn uniformly from `[0, S)` -> the layer -> `Dense(1)`, with Adam
(1e-3; `--optimizer sgd`: plain SGD 1e-3) on an MSE loss, batch 2048:

- `pn`: `PartitionedNormalization` (output width 319);
- `star_full`: `STARDense(256)`, full per-scenario kernels;
- `star_rank2`: `STARDense(256, scenario_rank=2)`;
- `lhuc`: `LHUC` (output width 319);
- `--baseline` adds `dense`: a plain `Dense(256)` that ignores the scenario.

Every configuration runs in its own Python process, so that its peak RSS
(`resource.getrusage`, the whole process: TensorFlow, the 50 batches of
data, the model and the optimizer) is its own. The data are 50 distinct
batches (seed 0); the first epoch (50 steps: tracing and warm-up) is not
timed, then `--steps` steps are (whole epochs of 50).

Figures: train ex/s (rows of an epoch / the median over the timed epochs
of the wall time from the epoch's first batch to its end) and the same
with the fastest epoch ("best"), the median relative to the same layer at
the smallest `S`,
peak RSS in MiB, and the largest share of the machine's CPU time used by
other processes during the timed part ("other load", as in
`throughput.py`; above 5 % the figure is noisy). Timed parts hold the same
`flock` as `throughput.py`, so two benchmark runs never overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from harness import DEFAULT_LOCK
from harness import OtherLoad
from harness import bench_lock

LAYERS = ("pn", "star_full", "star_rank2", "lhuc")
INPUT_DIM = 319
UNITS = 256
DISTINCT_BATCHES = 50


def build_model(layer: str, num_scenarios: int, optimizer: str) -> Any:
    """`[x, scenario]` -> the layer -> `Dense(1)`, compiled."""
    import keras

    import kmtl

    x = keras.Input(shape=(INPUT_DIM,), name="x")
    scenario = keras.Input(shape=(), dtype="int32", name="scenario")
    if layer == "pn":
        h = kmtl.layers.PartitionedNormalization(num_scenarios)([x, scenario])
    elif layer == "lhuc":
        h = kmtl.layers.LHUC(num_scenarios)([x, scenario])
    elif layer == "dense":
        h = keras.layers.Dense(UNITS)(x)
    else:
        rank = 2 if layer == "star_rank2" else 0
        h = kmtl.layers.STARDense(
            UNITS, num_scenarios, scenario_rank=rank, activation="relu"
        )([x, scenario])
    model = keras.Model([x, scenario], keras.layers.Dense(1)(h))
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    model.compile(optimizer=optimizers[optimizer](1e-3), loss="mse")
    return model


def run_one(
    layer: str, num_scenarios: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Trains one configuration in this process; returns its figures."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    batch = args.batch
    rows = DISTINCT_BATCHES * batch
    x = rng.normal(size=(rows, INPUT_DIM)).astype("float32")
    scenario = rng.integers(0, num_scenarios, size=rows).astype("int32")
    y = rng.normal(size=(rows, 1)).astype("float32")
    model = build_model(layer, num_scenarios, args.optimizer)

    class Timer(keras.callbacks.Callback):
        """Times each epoch from its first batch on (creating the dataset
        iterator, which sometimes idles for seconds, is left out)."""

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == 0:
                self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds.append(time.perf_counter() - self.start)

    seconds: list[float] = []
    epochs = 1 + max(1, round(args.steps / DISTINCT_BATCHES))
    with bench_lock(args.lock), OtherLoad() as load:
        model.fit(
            [x, scenario],
            y,
            batch_size=batch,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[Timer()],
        )
    timed = seconds[1:]
    return {
        "layer": layer,
        "scenarios": num_scenarios,
        "timed_steps": len(timed) * DISTINCT_BATCHES,
        "train_ex_per_s": rows / statistics.median(timed),
        "best_ex_per_s": rows / min(timed),
        "warmup_s": seconds[0],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024,
        "params": model.count_params(),
        "other_load": load.share,
    }


def run_in_subprocess(
    layer: str, num_scenarios: int, args: argparse.Namespace
) -> dict[str, Any]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        f"{layer}:{num_scenarios}",
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
        "--optimizer",
        args.optimizer,
        "--lock",
        args.lock,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{layer} at S={num_scenarios} failed:\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(results: Sequence[dict[str, Any]]) -> str:
    first = {}
    for r in results:
        first.setdefault(r["layer"], r["train_ex_per_s"])
    lines = [
        f"{'layer':<11} {'S':>5} {'params':>11} {'train ex/s':>11} "
        f"{'vs first S':>10} {'best ex/s':>10} {'peak RSS MiB':>12} "
        f"{'other load':>10}",
    ]
    for r in results:
        load = r["other_load"]
        lines.append(
            f"{r['layer']:<11} {r['scenarios']:>5} {r['params']:>11,} "
            f"{r['train_ex_per_s']:>11,.0f} "
            f"{r['train_ex_per_s'] / first[r['layer']]:>9.2f}x "
            f"{r['best_ex_per_s']:>10,.0f} "
            f"{r['peak_rss_mib']:>12,.0f} "
            f"{'n/a' if load is None else f'{100 * load:.0f} %':>10}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--scenarios", default="4,100,1000")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--lock", default=DEFAULT_LOCK)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.layers.split(",")) - set(LAYERS)
    if unknown:
        parser.error(f"unknown layers {sorted(unknown)}; known: {LAYERS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        layer, num = args.child.split(":")
        result = run_one(layer, int(num), args)
        print(json.dumps(result))
        return 0
    configs = [
        (layer, int(num))
        for layer in args.layers.split(",")
        for num in args.scenarios.split(",")
    ]
    if args.baseline:
        configs.insert(0, ("dense", int(args.scenarios.split(",")[0])))
    results = []
    for layer, num in configs:
        print(f"  {layer} S={num} ...", flush=True)
        results.append(run_in_subprocess(layer, num, args))
    print(
        f"\nbatch {args.batch}, input {INPUT_DIM}, "
        f"{results[0]['timed_steps']} timed steps, {args.optimizer}, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
