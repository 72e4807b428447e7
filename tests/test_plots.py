"""PNG plots of gate statistics and per-scenario metrics."""

import sys

import pytest

import kmtl
from kmtl import plots
from kmtl.data import make_synthetic
from kmtl.inspection import gate_statistics
from kmtl.testing import synthetic_spec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = dict(expert_units=(8,), tower_units=(4,))


@pytest.fixture(scope="module")
def tables():
    """Gate tables of PLE (2 layers) and MMoE (1 layer), and PLE's
    `kmtl.evaluate` table, on a small log with 4 scenarios."""
    df, _ = make_synthetic(600, seed=2)
    spec = synthetic_spec(df, embedding_dim=4)
    ple = kmtl.build(
        "ple",
        spec,
        num_levels=2,
        num_shared_experts=1,
        num_task_experts=1,
        **TINY,
    )
    mmoe = kmtl.build("mmoe", spec, num_experts=3, **TINY)
    return (
        gate_statistics(ple, df),
        gate_statistics(mmoe, df),
        kmtl.evaluate(ple, df),
    )


def _png_size(path):
    """(height, width) of a PNG, read back with matplotlib."""
    from matplotlib.image import imread

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return imread(path).shape[:2]


def test_heatmaps_and_bars_are_written(tables, tmp_path):
    pytest.importorskip("matplotlib")
    ple, mmoe, metrics = tables
    paths = [
        plots.plot_gate_heatmaps(ple, tmp_path / "ple" / "gates.png"),
        plots.plot_gate_heatmaps(mmoe, tmp_path / "mmoe.png"),
        plots.plot_gate_heatmaps(ple, tmp_path / "s1.png", scenario="s1"),
        plots.plot_scenario_heatmaps(ple, tmp_path / "scenarios.png"),
        plots.plot_metric_bars(metrics, tmp_path / "auc.png"),
        plots.plot_metric_bars(metrics, tmp_path / "ll.png", metric="logloss"),
    ]
    sizes = [_png_size(path) for path in paths]
    assert all(h > 100 and w > 100 for h, w in sizes)
    # One panel per layer (PLE: 2, MMoE: 1); one per layer and gate
    # (PLE: 3 + 2) for the scenarios.
    assert sizes[0][0] > 1.5 * sizes[1][0]
    assert sizes[3][0] > 2 * sizes[0][0]


def test_bad_arguments_name_what_is_expected(tables, tmp_path):
    pytest.importorskip("matplotlib")
    ple, _, metrics = tables
    with pytest.raises(ValueError, match="no rows of scenario 'nowhere'"):
        plots.plot_gate_heatmaps(ple, tmp_path / "x.png", scenario="nowhere")
    with pytest.raises(ValueError, match="`value` must be one of"):
        plots.plot_gate_heatmaps(ple, tmp_path / "x.png", value="entropy")
    overall = ple[ple.scenario == "all"]
    with pytest.raises(ValueError, match="no per-scenario rows"):
        plots.plot_scenario_heatmaps(overall, tmp_path / "x.png")
    with pytest.raises(ValueError, match="Received: metric='recall'"):
        plots.plot_metric_bars(metrics, tmp_path / "x.png", metric="recall")
    assert not (tmp_path / "x.png").exists()


def test_without_matplotlib_the_error_says_how_to_install(
    tables, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install \"kmtl\[plots\]\""):
        plots.plot_gate_heatmaps(tables[0], tmp_path / "gates.png")
