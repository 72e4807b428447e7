"""`GateStatistics`: each gate's entropy and largest share per epoch, in
the History, in a TensorBoard callback after it, and in its own log_dir."""

import glob
import math

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data import make_synthetic
from kmtl.data import to_dataset
from kmtl.inspection import gate_statistics
from kmtl.inspection import gate_summary
from kmtl.testing import synthetic_spec
from kmtl.training import GateStatistics


@pytest.fixture(scope="module")
def data():
    train, _ = make_synthetic(1500, seed=3)
    valid, _ = make_synthetic(400, seed=4)
    return train, valid, synthetic_spec(train, embedding_dim=4)


def _fit(data, callbacks):
    train, _, spec = data
    keras.utils.set_random_seed(0)
    model = kmtl.build(
        "ple",
        spec,
        num_levels=2,
        num_shared_experts=1,
        num_task_experts=1,
        expert_units=(8,),
        tower_units=(4,),
    )
    history = model.fit(
        to_dataset(train, spec, batch_size=256),
        epochs=2,
        verbose=0,
        callbacks=callbacks,
    )
    return model, history


def _logged(history):
    return {
        key[len("gates/") :]: values
        for key, values in history.history.items()
        if key.startswith("gates/")
    }


def _scalars(tf, folder):
    """tag -> list of values of the scalar summaries under `folder`."""
    values = {}
    for path in sorted(
        glob.glob(f"{folder}/**/events.out.tfevents.*", recursive=True)
    ):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, []).append(number)
    return values


def test_logs_gate_statistics_each_epoch(data):
    _, valid, _ = data
    model, history = _fit(data, [GateStatistics(valid)])
    # After the last epoch, the logged values are those of the model.
    expected = gate_summary(gate_statistics(model, valid))
    logged = _logged(history)
    assert sorted(logged) == sorted(expected)
    # PLE with 2 levels: level 0 has ctr, cvr and shared gates; level 1
    # ctr and cvr; each logs its entropy and largest share.
    assert len(logged) == 2 * (3 + 2)
    for key, values in logged.items():
        assert len(values) == 2
        assert values[-1] == pytest.approx(expected[key], abs=1e-6)
    # Task gates of a level mix 2 experts, the shared gate 3.
    for key, values in logged.items():
        experts = 3 if "/shared/" in key else 2
        if key.endswith("/entropy"):
            assert 0.0 <= min(values) and max(values) <= math.log(experts)
        else:
            assert 1.0 / experts <= min(values) and max(values) <= 1.0
    # The gates trained: their statistics moved between the epochs.
    assert any(values[0] != values[1] for values in logged.values())


def test_writes_tensorboard_scalars(data, tmp_path):
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tensorboard", reason="the kmtl[tensorboard] extra")
    _, valid, _ = data
    callback = GateStatistics(valid, log_dir=str(tmp_path / "gates"))
    board = keras.callbacks.TensorBoard(str(tmp_path / "board"))
    _, history = _fit(data, [callback, board])
    logged = _logged(history)
    own = _scalars(tf, tmp_path / "gates")
    assert sorted(own) == sorted(f"gates/{key}" for key in logged)
    for key, values in logged.items():
        np.testing.assert_allclose(own[f"gates/{key}"], values, rtol=1e-6)
    # A TensorBoard callback listed after it records them too.
    board_tags = _scalars(tf, tmp_path / "board")
    assert "epoch_gates/cgc_1/ctr/entropy" in board_tags


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="`prefix` must be a non-empty str"):
        GateStatistics({}, prefix="")
