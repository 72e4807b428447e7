"""The `kmtl` command line."""

import pytest

from kmtl.cli import main


def test_list_prints_every_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("shared_bottom", "mmoe", "ple", "esmm", "dcn"):
        assert name in out


def test_train_prints_metrics_and_exports(capsys, tmp_path):
    code = main(
        [
            "train",
            "--model",
            "shared_bottom",
            "--rows",
            "2000",
            "--epochs",
            "1",
            "--hparams",
            '{"bottom_units": [8], "tower_units": []}',
            "--export",
            str(tmp_path / "sb"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "oracle_auc" in out
    assert "ctr" in out and "cvr" in out
    assert (tmp_path / "sb" / "1" / "saved_model.pb").exists()


def test_train_rejects_an_unknown_hparam():
    with pytest.raises(ValueError, match="does not take hparam"):
        main(["train", "--rows", "100", "--hparams", '{"depth": 2}'])
