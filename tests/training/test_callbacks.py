"""Resumable training (EpochCheckpoint) and the non-finite loss stop."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import kmtl
from kmtl.data import make_synthetic
from kmtl.data import to_dataset
from kmtl.training import EpochCheckpoint
from kmtl.training import NonFiniteLossError
from kmtl.training import StopOnNonFiniteLoss
from kmtl.training.callbacks import read_checkpoint_epoch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _worker(backup, out, epochs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.resume_worker", backup, out,
         str(epochs)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _weights(path):
    with np.load(path) as data:
        return [data[k] for k in sorted(data, key=lambda k: int(k[4:]))]


@pytest.mark.slow
def test_kill_9_at_any_moment_resumes_to_the_same_weights(tmp_path):
    epochs = 5
    reference = tmp_path / "reference.npz"
    assert _worker(str(tmp_path / "ref"), str(reference), epochs).wait() == 0
    backup, out = str(tmp_path / "backup"), str(tmp_path / "out.npz")
    rng = np.random.default_rng(0)
    kills = 0
    while not os.path.exists(out) and kills < 12:
        process = _worker(backup, out, epochs)
        # Kill at a random moment: during start-up, mid-epoch or while a
        # checkpoint is being written.
        time.sleep(float(rng.uniform(3.0, 9.0)))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        else:
            assert process.returncode == 0
    if not os.path.exists(out):
        assert _worker(backup, out, epochs).wait() == 0
    assert kills >= 1
    print(f"killed {kills} times before the run finished")
    for got, want in zip(_weights(out), _weights(reference), strict=True):
        np.testing.assert_array_equal(got, want)  # bitwise: no shuffling


def _small(tmp_path):
    df, _ = make_synthetic(1000, seed=0)
    spec = kmtl.FeatureSpec.from_dataframe(
        df, labels={"ctr": "click"}, embedding_dim=4
    )
    model = kmtl.build("shared_bottom", spec, bottom_units=(8,))
    return df, spec, model


def test_checkpoint_is_written_atomically_and_resumed(tmp_path):
    df, spec, model = _small(tmp_path)
    backup = str(tmp_path / "backup")
    ds = to_dataset(df, spec, batch_size=250)
    keep = EpochCheckpoint(backup, delete_on_end=False)
    model.fit(ds, epochs=2, verbose=0, callbacks=[keep])
    assert sorted(os.listdir(backup)) == ["epoch-000002.weights.h5"]
    assert read_checkpoint_epoch(backup) == 2
    # A partial file left by a kill is ignored and removed.
    open(os.path.join(backup, "epoch-000003.partial.weights.h5"), "wb").close()
    _, _, fresh = _small(tmp_path)
    history = fresh.fit(ds, epochs=3, verbose=0,
                        callbacks=[EpochCheckpoint(backup)])  # fmt: skip
    assert len(history.history["loss"]) == 1  # epochs 3 only
    assert not os.listdir(backup)  # removed after a normal end


def test_nan_loss_stops_with_the_step_and_the_task(tmp_path):
    df, spec, model = _small(tmp_path)
    features = kmtl.data.features_from_dataframe(df, spec)
    labels = {"ctr": np.where(np.arange(len(df)) < 600, 0.0, np.nan)}
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 4.*'ctr'"):
        model.fit(
            features,
            {"ctr": labels["ctr"].astype("float32")},
            batch_size=200,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[StopOnNonFiniteLoss()],
        )
