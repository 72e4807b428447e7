"""Training from files against training from memory, and peak memory as
the files grow: the figures of issue 14 for `kmtl.data.files_to_dataset`
and `kmtl.features.spec_from_files` (printed; not a test).

Usage:

    python benchmarks/files_throughput.py
        [--rows 200000] [--epochs 3] [--rounds 2]
        [--pipelines memory,parquet,tfrecord,memory_shuffled,...]
        [--rss-rows 1000000,4000000,10000000] [--rss-formats parquet]
        [--rss-kinds train,infer]
        [--dir /tmp/kmtl-files-bench] [--lock /tmp/kmtl-bench.lock]
        [--json out.json]

Throughput: shared_bottom with SPEC.md's dimensions (bottom (256, 128),
towers (64,), Adam 1e-3, batch 2048) trains `--epochs` epochs on the
ae-synth workload of `/work/shared/bench/SPEC.md` (`--rows` rows, seed 0),
fed by `kmtl.data.to_dataset` on the DataFrame (`memory`) or by
`files_to_dataset` on the same rows written with `write_parquet` (row
groups of 65,536) and `write_tfrecord`; `*_shuffled` shuffle (the files
through a 65,536-row buffer). Examples/s is the median of epochs 2..N; a
fresh model per run; the pipelines alternate within each of `--rounds`
rounds (their order rotates), each run under the benchmark `flock`, with
the other processes' CPU share measured. Ratios to `memory` (to
`memory_shuffled` for the shuffled ones) are what count; beside
examples/s, examples per CPU-second of the process (all its threads),
which other processes' load on a shared machine moves less.

Peak RSS: for each of `--rss-rows`, the workload is written to Parquet
(or TFRecord) files of 1M rows (seeds 0, 1, ...), then two child
processes each report their peak RSS (`peak_rss_kib`): one trains
shared_bottom one epoch from the files (shuffled), one infers the spec
from them (`spec_from_files`). Flat means the largest size within 1.2x the
smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness import DEFAULT_LOCK  # noqa: E402
from harness import NOISY_LOAD  # noqa: E402
from harness import OtherLoad  # noqa: E402
from harness import bench_lock  # noqa: E402

MODEL = "shared_bottom"
BATCH_SIZE = 2048
SHUFFLE_BUFFER = 65_536
ROW_GROUP_ROWS = 65_536
FILE_ROWS = 1_000_000
PIPELINES = (
    "memory",
    "parquet",
    "tfrecord",
    "memory_shuffled",
    "parquet_shuffled",
    "tfrecord_shuffled",
)
FORMAT_ENDINGS = {"parquet": ".parquet", "tfrecord": ".tfrecord"}


# === Data ===


def workload_frame(rows: int, seed: int) -> Any:
    """ae-synth rows as a DataFrame: c0..c15, dense (a 63-float array per
    row), scenario, click, conversion."""
    import pandas as pd

    from kmtl.data.ae_synth import make_ae_synth

    data = make_ae_synth(rows, seed)
    frame = pd.DataFrame({f"c{i}": data.ids[:, i] for i in range(16)})
    frame["dense"] = list(data.dense)
    frame["scenario"] = data.scenario
    frame["click"] = data.click
    frame["conversion"] = data.conversion
    return frame


def write_workload(
    directory: str, fmt: str, rows: int, file_rows: int
) -> list[str]:
    """Writes `rows` ae-synth rows as files of `file_rows` rows (file k
    drawn with seed k), unless already there; returns their paths."""
    from kmtl.data.ae_synth import ae_synth_spec
    from kmtl.data.writers import write_parquet
    from kmtl.data.writers import write_tfrecord

    os.makedirs(directory, exist_ok=True)
    paths = []
    for index, start in enumerate(range(0, rows, file_rows)):
        path = os.path.join(directory, f"part-{index:04d}{FORMAT_ENDINGS[fmt]}")
        if not os.path.exists(path):
            frame = workload_frame(min(file_rows, rows - start), index)
            if fmt == "parquet":
                columns = {n: frame[n].to_numpy() for n in frame.columns}
                columns["dense"] = np.stack(frame["dense"])
                write_parquet(columns, path, row_group_rows=ROW_GROUP_ROWS)
            else:
                write_tfrecord(frame, path, ae_synth_spec())
        paths.append(path)
    return paths


# === Throughput ===


def dataset(pipeline: str, frame: Any, files: dict[str, list[str]]) -> Any:
    """The training dataset of one pipeline."""
    import kmtl
    from kmtl.data.ae_synth import ae_synth_spec

    spec = ae_synth_spec()
    source, _, shuffled = pipeline.partition("_")
    shuffle = dict(shuffle=bool(shuffled), seed=0)
    if source == "memory":
        return kmtl.data.to_dataset(
            frame, spec, batch_size=BATCH_SIZE, **shuffle
        )
    return kmtl.data.files_to_dataset(
        files[source],
        spec,
        batch_size=BATCH_SIZE,
        shuffle_buffer=SHUFFLE_BUFFER,
        **shuffle,
    )


class EpochCpu:
    """Process CPU seconds (user + system, every thread) of each epoch: a
    cost that other processes' load moves less than wall time."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def callback(self) -> Any:
        import keras

        meter = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                meter._start = _cpu_seconds()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                meter.seconds.append(_cpu_seconds() - meter._start)

        return Callback()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def time_pipeline(
    pipeline: str,
    frame: Any,
    files: dict[str, list[str]],
    epochs: int,
    lock: str,
) -> dict[str, Any]:
    """One fresh model trained `epochs` epochs from one pipeline."""
    import keras

    import kmtl
    from kmtl.data.ae_synth import ae_synth_spec
    from kmtl.training.speed import SPEC_HPARAMS
    from kmtl.training.speed import EpochTimer

    spec = ae_synth_spec()
    train = dataset(pipeline, frame, files)
    with bench_lock(lock):
        model = kmtl.build(
            MODEL,
            spec,
            optimizer=keras.optimizers.Adam(1e-3),
            **SPEC_HPARAMS[MODEL],
        )
        timer, cpu = EpochTimer(), EpochCpu()
        with OtherLoad() as load:
            model.fit(
                train,
                epochs=epochs,
                verbose=0,
                callbacks=[timer, cpu.callback()],
            )
    rates = [len(frame) / s for s in timer.seconds[1:] or timer.seconds]
    per_cpu = [len(frame) / s for s in cpu.seconds[1:] or cpu.seconds]
    return {
        "pipeline": pipeline,
        "examples_per_s": statistics.median(rates),
        "examples_per_cpu_s": statistics.median(per_cpu),
        "epoch_seconds": timer.seconds,
        "epoch_cpu_seconds": cpu.seconds,
        "other_load": load.share,
    }


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    frame = workload_frame(args.rows, 0)
    base = os.path.join(args.dir, f"throughput-{args.rows}")
    files = {
        fmt: write_workload(os.path.join(base, fmt), fmt, args.rows, args.rows)
        for fmt in ("parquet", "tfrecord")
        if any(p.startswith(fmt) for p in args.pipelines)
    }
    runs = []
    for round_index in range(args.rounds):
        shift = round_index % len(args.pipelines)
        order = args.pipelines[shift:] + args.pipelines[:shift]
        for pipeline in order:
            run = time_pipeline(pipeline, frame, files, args.epochs, args.lock)
            run["round"] = round_index
            runs.append(run)
            print(
                f"  round {round_index} {pipeline:18s} "
                f"{run['examples_per_s']:9,.0f} ex/s "
                f"{run['examples_per_cpu_s']:9,.0f} ex/CPU-s  other load "
                f"{_share(run['other_load'])}",
                flush=True,
            )
    return runs


def throughput_table(runs: Sequence[dict[str, Any]]) -> str:
    by_pipeline: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_pipeline.setdefault(run["pipeline"], []).append(run)

    def median(pipeline: str, figure: str) -> float:
        return statistics.median(r[figure] for r in by_pipeline[pipeline])

    lines = [
        "| pipeline | train ex/s (median of rounds) | runs | x memory | "
        "ex per CPU-s | x memory | largest other load |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for pipeline in by_pipeline:
        shuffled = pipeline.endswith("_shuffled")
        baseline = "memory_shuffled" if shuffled else "memory"
        rate = median(pipeline, "examples_per_s")
        per_cpu = median(pipeline, "examples_per_cpu_s")
        ratio = cpu_ratio = ""
        if baseline in by_pipeline:
            ratio = f"{rate / median(baseline, 'examples_per_s'):.2f}"
            cpu_ratio = (
                f"{per_cpu / median(baseline, 'examples_per_cpu_s'):.2f}"
            )
        loads = [r["other_load"] for r in by_pipeline[pipeline]]
        known = [x for x in loads if x is not None]
        noisy = " (noisy)" if known and max(known) > NOISY_LOAD else ""
        each = " / ".join(
            f"{r['examples_per_s']:,.0f}" for r in by_pipeline[pipeline]
        )
        lines.append(
            f"| {pipeline} | {rate:,.0f} | {each} | {ratio} | "
            f"{per_cpu:,.0f} | {cpu_ratio} | "
            f"{_share(max(known) if known else None)}{noisy} |"
        )
    return "\n".join(lines)


# === Peak memory ===


def child(kind: str, pattern: str) -> None:
    """One RSS measurement (run in its own process): prints JSON."""
    from kmtl.data.ae_synth import ae_synth_spec

    start = time.perf_counter()
    if kind == "train":
        import keras

        import kmtl
        from kmtl.training.speed import SPEC_HPARAMS

        spec = ae_synth_spec()
        model = kmtl.build(
            MODEL,
            spec,
            optimizer=keras.optimizers.Adam(1e-3),
            **SPEC_HPARAMS[MODEL],
        )
        train = kmtl.data.files_to_dataset(
            pattern, spec, shuffle=True, seed=0, shuffle_buffer=SHUFFLE_BUFFER
        )
        model.fit(train, epochs=1, verbose=0)
    else:
        from kmtl.features.file_inference import spec_from_files

        spec_from_files(
            pattern, labels=["click", "conversion"], scenario="scenario"
        )
    print(
        json.dumps(
            {
                "peak_rss_mb": peak_rss_kib() / 1024,
                "seconds": time.perf_counter() - start,
            }
        )
    )


def peak_rss_kib() -> int:
    """This process's peak resident memory, KiB: `VmHWM` of
    `/proc/self/status`. (`ru_maxrss` would do on its own process, but
    Linux carries a forked child's `ru_maxrss` over from its parent at
    `exec`: the child would report the benchmark parent's peak, holding
    the in-memory data. `VmHWM` belongs to the process's own memory.)"""
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for fmt in args.rss_formats:
        for rows in args.rss_rows:
            directory = os.path.join(args.dir, f"rss-{fmt}")
            paths = write_workload(directory, fmt, rows, FILE_ROWS)
            pattern = paths if len(paths) > 1 else paths[0]
            kinds = [
                k for k in args.rss_kinds if fmt == "parquet" or k == "train"
            ]
            for kind in kinds:
                with bench_lock(args.lock):
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            kind,
                            "--files",
                            json.dumps(pattern),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                figure = json.loads(out.strip().splitlines()[-1])
                figure.update(format=fmt, rows=rows, kind=kind)
                results.append(figure)
                print(
                    f"  {fmt} {kind:5s} {rows:>11,} rows: peak RSS "
                    f"{figure['peak_rss_mb']:7.0f} MB in "
                    f"{figure['seconds']:6.1f} s",
                    flush=True,
                )
    return results


def memory_table(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| format | what | rows | peak RSS MB | seconds | x smallest |",
        "|---|---|---:|---:|---:|---:|",
    ]
    smallest: dict[tuple[str, str], float] = {}
    for r in sorted(results, key=lambda r: (r["format"], r["kind"], r["rows"])):
        key = (r["format"], r["kind"])
        smallest.setdefault(key, r["peak_rss_mb"])
        lines.append(
            f"| {r['format']} | {r['kind']} | {r['rows']:,} | "
            f"{r['peak_rss_mb']:.0f} | {r['seconds']:.1f} | "
            f"{r['peak_rss_mb'] / smallest[key]:.2f} |"
        )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def _rows(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--pipelines",
        type=lambda t: [p for p in t.split(",") if p],
        default=list(PIPELINES),
    )
    parser.add_argument("--rss-rows", type=_rows, default=[])
    parser.add_argument(
        "--rss-formats", type=lambda t: t.split(","), default=["parquet"]
    )
    parser.add_argument(
        "--rss-kinds", type=lambda t: t.split(","), default=["train", "infer"]
    )
    parser.add_argument("--dir", default="/tmp/kmtl-files-bench")
    parser.add_argument("--lock", default=DEFAULT_LOCK)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", choices=("train", "infer"), default=None)
    parser.add_argument("--files", default=None)
    args = parser.parse_args(argv)
    unknown = set(args.pipelines) - set(PIPELINES)
    if unknown:
        parser.error(f"unknown pipelines {sorted(unknown)}; known {PIPELINES}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, json.loads(args.files))
        return 0
    report: dict[str, Any] = {}
    if args.pipelines and args.rounds:
        print(f"Throughput, {MODEL}, {args.rows:,} rows:", flush=True)
        report["throughput"] = throughput(args)
        print(throughput_table(report["throughput"]))
    if args.rss_rows:
        print("Peak RSS (one process per figure):", flush=True)
        report["peak_memory"] = peak_memory(args)
        print(memory_table(report["peak_memory"]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
