import numpy as np
import pytest

from kmtl.data import batched_dataset


def _rows(ds):
    return np.concatenate([b["x"].numpy() for b in ds])


def test_batches_in_order_with_a_short_last_one():
    data = {"x": np.arange(7), "s": np.array(list("abcdefg"), object)}
    batches = list(batched_dataset(data, batch_size=3))
    assert [len(b["x"]) for b in batches] == [3, 3, 1]
    np.testing.assert_array_equal(_rows(batches), np.arange(7))
    assert batches[2]["s"].numpy().tolist() == [b"g"]


def test_shuffle_keeps_rows_together_and_reshuffles_each_epoch():
    x = np.arange(100)
    ds = batched_dataset((x, x * 10), batch_size=32, shuffle=True, seed=1)
    epochs = []
    for _ in range(2):
        batches = [(a.numpy(), b.numpy()) for a, b in ds]
        assert [len(a) for a, _ in batches] == [32, 32, 32, 4]
        for a, b in batches:
            np.testing.assert_array_equal(b, a * 10)
        epochs.append(np.concatenate([a for a, _ in batches]))
    assert sorted(epochs[0]) == list(range(100))
    assert not np.array_equal(epochs[0], x)
    assert not np.array_equal(epochs[0], epochs[1])


def test_empty_data_is_an_error():
    with pytest.raises(ValueError, match="the data is empty"):
        batched_dataset({"x": np.zeros(0)})
