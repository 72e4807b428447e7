"""The `kmtl` command line."""

import pytest


def test_list_prints_every_model(kmtl_cli):
    code, out, _ = kmtl_cli("list")
    assert code == 0
    for name in ("shared_bottom", "mmoe", "ple", "esmm", "dcn"):
        assert name in out


def test_train_prints_metrics_and_exports(kmtl_cli, tmp_path):
    code, out, _ = kmtl_cli(
        "train",
        model="shared_bottom",
        rows=2000,
        epochs=1,
        hparams={"bottom_units": [8], "tower_units": []},
        export=tmp_path / "sb",
    )
    assert code == 0
    assert "oracle_auc" in out
    assert "ctr" in out and "cvr" in out
    assert (tmp_path / "sb" / "1" / "saved_model.pb").exists()


def test_train_rejects_an_unknown_hparam(kmtl_cli):
    with pytest.raises(ValueError, match="does not take hparam"):
        kmtl_cli("train", rows=100, hparams={"depth": 2})
