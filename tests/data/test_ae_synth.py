"""The ae-synth workload generator (kmtl.data.ae_synth)."""

import numpy as np
import pytest

from kmtl.data.ae_synth import VOCABULARY_SIZES
from kmtl.data.ae_synth import ae_synth_features
from kmtl.data.ae_synth import ae_synth_spec
from kmtl.data.ae_synth import make_ae_synth


def test_workload_follows_the_spec():
    data = make_ae_synth(20_000, seed=0)
    again = make_ae_synth(20_000, seed=0)
    np.testing.assert_array_equal(data.ids, again.ids)
    assert data.ids.shape == (20_000, 16)
    assert data.dense.shape == (20_000, 63)
    assert data.dense.dtype == np.float32
    assert (data.ids >= 0).all()
    assert (data.ids < np.asarray(VOCABULARY_SIZES)).all()
    # u**3 skews ids small: a quarter of the vocabulary holds u < 0.63.
    assert (data.ids[:, 0] < 25_000).mean() == pytest.approx(0.63, abs=0.02)
    shares = np.bincount(data.scenario, minlength=4) / len(data)
    np.testing.assert_allclose(shares, [0.4, 0.3, 0.2, 0.1], atol=0.015)
    assert (data.conversion <= data.click).all()
    assert 0.03 < data.click.mean() < 0.15
    features = ae_synth_features(data, ae_synth_spec())
    assert features["dense"].shape == (20_000, 63)
    assert set(features) == {*(f"c{i}" for i in range(16)), "dense", "scenario"}
