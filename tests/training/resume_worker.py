"""Trains a small model with `kmtl.training.resumable_callbacks`, then saves
its final weights; `test_callbacks.py` kills it and runs it again.

Usage: python -m tests.training.resume_worker BACKUP_DIR OUT.npz EPOCHS
"""

import sys

import keras
import numpy as np

import kmtl
from kmtl.data import make_synthetic
from kmtl.data import to_dataset
from kmtl.testing import synthetic_spec
from kmtl.training import resumable_callbacks


def main(backup: str, out: str, epochs: int) -> None:
    keras.utils.set_random_seed(0)
    df, _ = make_synthetic(12_000, seed=3)
    spec = synthetic_spec(df, embedding_dim=4)
    model = kmtl.build(
        "mmoe", spec, num_experts=2, expert_units=(16,), tower_units=(8,)
    )
    model.fit(
        to_dataset(df, spec, batch_size=256),
        epochs=epochs,
        verbose=0,
        callbacks=resumable_callbacks(backup),
    )
    np.savez(out, *[np.asarray(w) for w in model.get_weights()])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
