"""Shared-bottom: the model battery (learning: `test_learning.py`)."""


def test_model_battery(model_battery):
    tiny = dict(bottom_units=(16,), tower_units=(8,))
    bad = [(dict(bottom_units=()), r"bottom_units=\(\)")]
    model_battery("shared_bottom", tiny, bad_hparams=bad)
