"""Every registered model trained by Keras on another backend (JAX by
default), without TensorFlow: the layers use `keras.ops` only, so the same
models train wherever Keras runs (on a GPU machine, say).

    KERAS_BACKEND=jax python benchmarks/other_backend.py
        [--models mmoe,ple] [--rows 200000] [--eval-rows 50000]
        [--epochs 3] [--batch-sizes 2048,16384]

The "ae-synth" workload of SPEC.md (16 id fields, 63 floats in one vector,
the scenario, click and conversion), fed as NumPy arrays (no `tf.data`):
ids and floats only, so no string lookup is needed outside TensorFlow.
Per model and batch size: train examples/s (median of epochs 2..N), predict
examples/s (after a warm-up pass), and the CTR AUC on the evaluation rows
beside the oracle's (the true click probabilities), so a model that does
not learn on this backend shows. Models whose builder rejects the spec
(e.g. one that needs hierarchy levels) are listed as skipped, with why.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Sequence

os.environ.setdefault("KERAS_BACKEND", "jax")
# JAX keeps int32 unless x64 is enabled; ids here are far below 2**31.
warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import kmtl  # noqa: E402
from kmtl.data.ae_synth import EVAL_SEED  # noqa: E402
from kmtl.data.ae_synth import TRAIN_SEED  # noqa: E402
from kmtl.data.ae_synth import ae_synth_features  # noqa: E402
from kmtl.data.ae_synth import ae_synth_labels  # noqa: E402
from kmtl.data.ae_synth import ae_synth_spec  # noqa: E402
from kmtl.data.ae_synth import make_ae_synth  # noqa: E402
from kmtl.training.speed import LEARNING_RATE  # noqa: E402
from kmtl.training.speed import SPEC_HPARAMS  # noqa: E402
from kmtl.training.speed import EpochTimer  # noqa: E402


def run_one(
    name,
    spec,
    train,
    evaluation,
    features,
    eval_features,
    *,
    batch_size: int,
    epochs: int,
) -> dict:
    """Trains and times one model; returns its row of the table."""
    hparams = SPEC_HPARAMS.get(name, {})
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    try:
        model = kmtl.build(
            name,
            spec,
            optimizer=keras.optimizers.Adam(LEARNING_RATE),
            **hparams,
        )
    except ValueError as err:
        return {"model": name, "batch": batch_size, "note": f"skipped: {err}"}
    labels, weights = ae_synth_labels(train, kmtl.model_tasks(name, spec))
    timer = EpochTimer()
    model.fit(
        features,
        labels,
        sample_weight=weights,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    model.predict(eval_features, batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    predictions = model.predict(eval_features, batch_size=batch_size, verbose=0)
    predict_seconds = time.perf_counter() - start
    ctr = np.asarray(predictions["click"]).reshape(-1)
    return {
        "model": name,
        "batch": batch_size,
        "train_ex_s": len(train) / statistics.median(timer.seconds[1:]),
        "predict_ex_s": len(evaluation) / predict_seconds,
        "ctr_auc": roc_auc_score(evaluation.click, ctr),
        "oracle_auc": roc_auc_score(evaluation.click, evaluation.ctr),
        "note": "" if np.isfinite(ctr).all() else "non-finite predictions",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="default: every registered model")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--eval-rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-sizes", default="2048")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else list(kmtl.list_models())
    spec = ae_synth_spec("vector", "auc")
    train = make_ae_synth(args.rows, TRAIN_SEED)
    evaluation = make_ae_synth(args.eval_rows, EVAL_SEED)
    features = ae_synth_features(train, spec)
    eval_features = ae_synth_features(evaluation, spec)
    print(
        f"Keras {keras.__version__} on {keras.backend.backend()}; "
        f"{args.rows:,} training rows, {args.epochs} epochs"
    )
    print(
        f"{'model':<14}{'batch':>7}{'train ex/s':>12}{'predict ex/s':>14}"
        f"{'CTR AUC':>9}{'oracle':>8}  note"
    )
    for name in models:
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            row = run_one(
                name,
                spec,
                train,
                evaluation,
                features,
                eval_features,
                batch_size=batch_size,
                epochs=args.epochs,
            )
            if "train_ex_s" not in row:
                print(f"{name:<14}{batch_size:>7}  {row['note']}")
                continue
            print(
                f"{name:<14}{batch_size:>7}{row['train_ex_s']:>12,.0f}"
                f"{row['predict_ex_s']:>14,.0f}{row['ctr_auc']:>9.4f}"
                f"{row['oracle_auc']:>8.4f}  {row['note']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
