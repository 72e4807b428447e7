"""The `kmtl` command line: list, train (and export)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence


def _list(_: argparse.Namespace) -> int:
    import kmtl

    models = kmtl.list_models()
    width = max(map(len, models))
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import kmtl
    from kmtl.data.synthetic import make_synthetic
    from kmtl.data.synthetic import true_probabilities
    from kmtl.training.metrics import evaluate_predictions

    hparams = json.loads(args.hparams)
    train_df, _ = make_synthetic(args.rows, seed=args.seed)
    test_df, truth = make_synthetic(args.rows // 4, seed=args.seed + 1)
    spec = kmtl.FeatureSpec.from_dataframe(
        train_df,
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        sample_spaces={"cvr": "ctr"},
    )
    tasks = kmtl.model_tasks(args.model, spec, **hparams)
    model = kmtl.build(args.model, spec, **hparams)
    print(
        f"Training {args.model!r} on {len(train_df):,} synthetic rows "
        f"({model.count_params():,} parameters)."
    )
    start = time.perf_counter()
    model.fit(
        kmtl.data.to_dataset(
            train_df,
            spec,
            tasks=tasks,
            batch_size=args.batch_size,
            shuffle=True,
            seed=args.seed,
        ),
        epochs=args.epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        verbose=2,
        callbacks=(
            kmtl.training.resumable_callbacks(args.backup_dir)
            if args.backup_dir
            else [kmtl.training.StopOnNonFiniteLoss()]
        ),
    )
    seconds = time.perf_counter() - start
    predictions = model.predict(
        kmtl.data.to_dataset(test_df, spec, with_labels=False), verbose=0
    )
    report = evaluate_predictions(test_df, predictions, tasks)
    oracle = evaluate_predictions(
        test_df,
        true_probabilities(truth, tasks),
        tasks,
    )
    report["oracle_auc"] = report["task"].map(
        dict(zip(oracle["task"], oracle["auc"], strict=True))
    )
    print(f"\nTest metrics ({len(test_df):,} rows; trained in {seconds:.1f}s):")
    print(report.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.export:
        path = kmtl.export(model, args.export)
        print(f"\nExported {args.model!r} to {path}")
    return 0


def _serve_config(args: argparse.Namespace) -> int:
    from kmtl.serving.config import Batching
    from kmtl.serving.config import describe
    from kmtl.serving.config import write_serving_config

    models = {}
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = os.path.basename(os.path.normpath(item)), item
        models[name] = path
    try:
        config = write_serving_config(
            args.out,
            models,
            version_policy=args.version_policy,
            batching=Batching(
                max_batch_size=args.max_batch_size,
                batch_timeout_micros=args.batch_timeout_micros,
                num_batch_threads=args.num_batch_threads or os.cpu_count() or 1,
                max_enqueued_batches=args.max_enqueued_batches,
            ),
            grpc_port=args.grpc_port,
            rest_port=args.rest_port,
        )
    except ValueError as err:
        print(f"kmtl serve-config: error: {err}", file=sys.stderr)
        return 2
    print(describe(config))
    return 0


def _quality(args: argparse.Namespace) -> int:
    from kmtl.training.quality import run_quality

    summary = run_quality(
        args.dataset,
        [m.strip() for m in args.models.split(",") if m.strip()],
        seeds=args.seeds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        out_dir=args.out,
        learning_rate=args.learning_rate,
        hparams=json.loads(args.hparams),
        data_dir=args.data_dir,
        rows=args.rows,
        max_rows=args.max_rows,
    )
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        f"\nWrote runs.csv, summary.csv, summary.md, config.json to {args.out}"
    )
    return 0


def _speed(args: argparse.Namespace) -> int:
    from kmtl.training.speed import format_speed_table
    from kmtl.training.speed import run_speed

    models = None
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        table = run_speed(
            models,
            rows=args.rows,
            eval_rows=args.eval_rows,
            epochs=args.epochs,
            batch_size=args.batch_size,
            out=args.out,
            optimizer=args.optimizer,
        )
    except ValueError as err:
        print(f"kmtl benchmark speed: error: {err}", file=sys.stderr)
        return 2
    print()
    print(format_speed_table(table))
    if args.out:
        print(f"\nWrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kmtl` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(
        prog="kmtl",
        description="Multi-task recommendation models for Keras 3.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the models").set_defaults(run=_list)
    train = commands.add_parser(
        "train",
        help="train a model on the bundled synthetic data, print per-task "
        "test metrics beside the oracle AUC, and optionally export it",
    )
    train.add_argument("--model", default="mmoe")
    train.add_argument("--rows", type=int, default=200_000)
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=1024)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--hparams", default="{}", help="JSON, e.g. '{\"num_experts\": 4}'"
    )
    train.add_argument(
        "--export", help="base directory of the versioned SavedModel"
    )
    train.add_argument(
        "--backup-dir",
        help="checkpoint every epoch there (atomically); a killed run "
        "started again with the same arguments resumes after the last "
        "complete epoch",
    )
    train.set_defaults(run=_train)
    serve = commands.add_parser(
        "serve-config",
        help="write TF Serving's models.config and batching parameters for "
        "exported models, and print the server and docker commands",
    )
    serve.add_argument(
        "models",
        nargs="+",
        help="base path of a model's versions, as NAME=PATH or PATH "
        "(named after its directory)",
    )
    serve.add_argument("--out", default="serving", help="config directory")
    serve.add_argument(
        "--version-policy",
        default="latest",
        help="latest, latest:N, all or specific:V1,V2 (default: latest)",
    )
    serve.add_argument("--max-batch-size", type=int, default=256)
    serve.add_argument("--batch-timeout-micros", type=int, default=1000)
    serve.add_argument(
        "--num-batch-threads", type=int, help="default: the CPU cores"
    )
    serve.add_argument("--max-enqueued-batches", type=int, default=100)
    serve.add_argument("--grpc-port", type=int, default=8500)
    serve.add_argument("--rest-port", type=int, default=8501)
    serve.set_defaults(run=_serve_config)
    benchmark = commands.add_parser(
        "benchmark", help="quality and speed benchmarks"
    ).add_subparsers(dest="benchmark", required=True)
    quality = benchmark.add_parser(
        "quality",
        help="train models x seeds with early stopping on validation and "
        "write mean ± std test AUC and logloss per task (CSV, Markdown)",
    )
    quality.add_argument("--dataset", default="census")
    quality.add_argument("--models", default="shared_bottom,mmoe,ple")
    quality.add_argument("--seeds", type=int, default=5)
    quality.add_argument("--epochs", type=int, default=20)
    quality.add_argument("--batch-size", type=int, default=1024)
    quality.add_argument("--patience", type=int, default=2)
    quality.add_argument("--learning-rate", type=float, default=1e-3)
    quality.add_argument(
        "--hparams",
        default="{}",
        help='JSON per model, e.g. \'{"mmoe": {"num_experts": 4}}\'',
    )
    quality.add_argument(
        "--data-dir", help="dataset files (default: $KMTL_DATA_DIR)"
    )
    quality.add_argument(
        "--rows", type=int, default=20_000, help="synthetic training rows"
    )
    quality.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="rows read from each file of aliexpress, aliccp, kuairand",
    )
    quality.add_argument("--out", default="quality", help="output directory")
    quality.set_defaults(run=_quality)
    speed = benchmark.add_parser(
        "speed",
        help="train and predict examples/s of every model on the shared "
        "ae-synth workload (median of epochs 2..N)",
    )
    speed.add_argument(
        "--models", help="comma-separated models (default: all registered)"
    )
    speed.add_argument("--rows", type=int, default=200_000)
    speed.add_argument("--eval-rows", type=int, default=50_000)
    speed.add_argument("--epochs", type=int, default=3)
    speed.add_argument("--batch-size", type=int, default=2048)
    speed.add_argument(
        "--optimizer",
        default="adam",
        choices=["adam", "fused_adam", "lazy_adam"],
        help="adam: keras.optimizers.Adam (kmtl.build's default); "
        "fused_adam: kmtl.training.FusedAdam; lazy_adam: "
        "kmtl.training.LazyAdam (default: %(default)s)",
    )
    speed.add_argument(
        "--out", help="also write the table to this .csv or .json file"
    )
    speed.set_defaults(run=_speed)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
