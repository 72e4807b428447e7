"""DeepCTR's side of `benchmarks/deepctr_side_by_side.py`: trains one
DeepCTR 0.9.4 model on ae-synth arrays and prints its speed as JSON.

It runs in its own environment (DeepCTR needs `tf_keras`, the Keras 2
line; kmtl needs Keras 3): `make .venv-deepctr/bin/python` creates one.
It imports nothing from kmtl, so the two never share a process.

Usage (the driver calls it; by hand only to debug):

    .venv-deepctr/bin/python benchmarks/peers/deepctr_ae_synth.py
        --data ae_synth.npz --model mmoe [--epochs 3] [--metrics auc|none]
        [--lock /tmp/kmtl-bench.lock] [--export DIR]

`--data` is the `.npz` the driver writes (`vocabulary_sizes`,
`train_ids`, `train_dense`, `train_click`, `train_conversion`, `eval_ids`,
`eval_dense`). The models
take SPEC.md's dimensions with DeepCTR's own defaults elsewhere (one input
per field: 16 `SparseFeat` ids embedded in 16 dimensions, 63 scalar
`DenseFeat`s). Training is `model.fit` on NumPy dicts at batch 2048,
Adam 1e-3, binary cross-entropy per output, no shuffling; prediction is
`model.predict` on the evaluation arrays after one warm-up pass. Timed
parts hold an exclusive `flock` on `--lock`. `--export` also saves the
trained model as a SavedModel there (`tf.saved_model.save`).

Output: one JSON line with `epoch_seconds` (per epoch), `predict_seconds`,
`train_rows`, `eval_rows` and `params`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from deepctr.feature_column import DenseFeat  # noqa: E402
from deepctr.feature_column import SparseFeat  # noqa: E402
from deepctr.models import ESMM  # noqa: E402
from deepctr.models import MMOE  # noqa: E402
from deepctr.models import PLE  # noqa: E402
from deepctr.models import SharedBottom  # noqa: E402

EMBEDDING_DIM = 16
BATCH_SIZE = 2048
MODELS = ("shared_bottom", "mmoe", "ple", "esmm")


def feature_columns(vocabulary_sizes: np.ndarray, num_dense: int) -> list:
    """SPEC.md's inputs as DeepCTR declares them: one per field."""
    return [
        SparseFeat(
            f"c{i}", vocabulary_size=int(size), embedding_dim=EMBEDDING_DIM
        )
        for i, size in enumerate(vocabulary_sizes)
    ] + [DenseFeat(f"d{i}", 1) for i in range(num_dense)]


def build(name: str, columns: list) -> tf.keras.Model:
    """DeepCTR's model `name` with SPEC.md's dimensions."""
    if name == "shared_bottom":
        return SharedBottom(
            columns,
            bottom_dnn_hidden_units=(256, 128),
            tower_dnn_hidden_units=(64,),
            task_names=("click", "conversion"),
        )
    if name == "mmoe":
        return MMOE(
            columns,
            num_experts=8,
            expert_dnn_hidden_units=(256, 128),
            tower_dnn_hidden_units=(64,),
            task_names=("click", "conversion"),
        )
    if name == "ple":
        return PLE(
            columns,
            shared_expert_num=2,
            specific_expert_num=2,
            num_levels=2,
            expert_dnn_hidden_units=(256, 128),
            tower_dnn_hidden_units=(64,),
            task_names=("click", "conversion"),
        )
    return ESMM(
        columns,
        tower_dnn_hidden_units=(256, 128, 64),
        task_names=("ctr", "ctcvr"),
    )


def inputs(ids: np.ndarray, dense: np.ndarray) -> dict[str, np.ndarray]:
    """The per-field input dict DeepCTR models take."""
    columns = {f"c{i}": ids[:, i].astype("int32") for i in range(ids.shape[1])}
    columns.update(
        {f"d{i}": dense[:, i].astype("float32") for i in range(dense.shape[1])}
    )
    return columns


def labels(name: str, click: np.ndarray, conversion: np.ndarray) -> list:
    """The label list in the model's output order."""
    click = click.astype("float32")
    conversion = conversion.astype("float32")
    if name == "esmm":
        return [click, click * conversion]
    return [click, conversion]


@contextlib.contextmanager
def held_lock(path: str | None):
    """An exclusive `flock` on `path` for the block (none when `None`)."""
    if not path:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EpochSeconds(tf.keras.callbacks.Callback):
    """Wall time of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def run(args: argparse.Namespace) -> dict:
    """Builds, trains, predicts (and exports); returns the figures."""
    arrays = np.load(args.data)
    train_x = inputs(arrays["train_ids"], arrays["train_dense"])
    train_y = labels(
        args.model, arrays["train_click"], arrays["train_conversion"]
    )
    eval_x = inputs(arrays["eval_ids"], arrays["eval_dense"])
    tf.keras.utils.set_random_seed(0)
    columns = feature_columns(
        arrays["vocabulary_sizes"], arrays["train_dense"].shape[1]
    )
    model = build(args.model, columns)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC()] if args.metrics == "auc" else None,
    )
    timer = EpochSeconds()
    with held_lock(args.lock):
        model.fit(
            train_x,
            train_y,
            batch_size=BATCH_SIZE,
            epochs=args.epochs,
            shuffle=False,
            verbose=0,
            callbacks=[timer],
        )
        model.predict(eval_x, batch_size=BATCH_SIZE, verbose=0)
        start = time.perf_counter()
        model.predict(eval_x, batch_size=BATCH_SIZE, verbose=0)
        predict_seconds = time.perf_counter() - start
    if args.export:
        tf.saved_model.save(model, args.export)
    return {
        "model": args.model,
        "epoch_seconds": timer.seconds,
        "predict_seconds": predict_seconds,
        "train_rows": len(arrays["train_click"]),
        "eval_rows": len(arrays["eval_ids"]),
        "params": int(model.count_params()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--metrics", choices=("auc", "none"), default="auc")
    parser.add_argument("--lock", default="/tmp/kmtl-bench.lock")
    parser.add_argument("--export", default=None)
    args = parser.parse_args(argv)
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
