"""PNG plots of gate statistics (heatmaps) and per-scenario metrics (bars).

matplotlib is an optional dependency (`pip install "kmtl[plots]"`); it is
imported when a plot is drawn, and its absence is an `ImportError` saying
so. The figures are drawn without pyplot (no display, no global state).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from kmtl.inspection import ALL_SCENARIOS

VALUES = ("share", "weight", "selection_rate")
"""The columns of `gate_statistics` a heatmap can show."""


def plot_gate_heatmaps(
    table: Any,
    path: str | os.PathLike,
    *,
    scenario: str = ALL_SCENARIOS,
    value: str = "share",
) -> str:
    """Gate x expert heatmaps, one panel per gated layer.

    Args:
        table: pandas.DataFrame from `kmtl.inspection.gate_statistics`.
        path: str. The PNG file to write (its folder is created).
        scenario: str. The rows of this scenario (`"all"`: every row).
            Defaults to `"all"`.
        value: str. The column shown, one of `VALUES`. Defaults to
            `"share"`.

    Returns:
        The path written, as a str.

    Example:

    ```python
    table = kmtl.inspection.gate_statistics(model, test_df)
    kmtl.plots.plot_gate_heatmaps(table, "plots/gates.png")
    ```
    """
    _check_value(value)
    rows = table[table["scenario"] == scenario]
    if rows.empty:
        raise ValueError(
            f"plot_gate_heatmaps: the table has no rows of scenario "
            f"{scenario!r}. Expected one of "
            f"{sorted(set(table['scenario']))}."
        )
    panels = [
        (str(layer), group.pivot(index="gate", columns="expert", values=value))
        for layer, group in rows.groupby("layer", sort=False)
    ]
    for _, grid in panels:
        grid.index = grid.index.astype(str)
    return _save_heatmaps(panels, path, value, "expert", "gate")


def plot_scenario_heatmaps(
    table: Any, path: str | os.PathLike, *, value: str = "share"
) -> str:
    """Scenario x expert heatmaps, one panel per layer and gate.

    Args:
        table: pandas.DataFrame from `kmtl.inspection.gate_statistics` on a
            model whose spec has a scenario.
        path: str. The PNG file to write (its folder is created).
        value: str. The column shown, one of `VALUES`. Defaults to
            `"share"`.

    Returns:
        The path written, as a str.

    Example:

    ```python
    table = kmtl.inspection.gate_statistics(model, test_df)
    kmtl.plots.plot_scenario_heatmaps(table, "plots/scenario_gates.png")
    ```
    """
    _check_value(value)
    rows = table[table["scenario"] != ALL_SCENARIOS]
    if rows.empty:
        raise ValueError(
            "plot_scenario_heatmaps: the table has no per-scenario rows; "
            "compute it with a spec that has a scenario and "
            "`by_scenario=True`."
        )
    order = list(dict.fromkeys(rows["scenario"]))
    panels = []
    for (layer, gate), group in rows.groupby(["layer", "gate"], sort=False):
        grid = group.pivot(index="scenario", columns="expert", values=value)
        panels.append((f"{layer} / {gate}", grid.reindex(order)))
    return _save_heatmaps(panels, path, value, "expert", "scenario")


def plot_metric_bars(
    metrics: Any, path: str | os.PathLike, *, metric: str = "auc"
) -> str:
    """Bars of one metric per task, a bar per scenario (and `"all"`).

    Args:
        metrics: pandas.DataFrame from `kmtl.evaluate` (columns `task`,
            `scenario` and the metric).
        path: str. The PNG file to write (its folder is created).
        metric: str. The column shown. Defaults to `"auc"`.

    Returns:
        The path written, as a str.

    Example:

    ```python
    kmtl.plots.plot_metric_bars(kmtl.evaluate(model, test_df), "auc.png")
    ```
    """
    if metric not in metrics.columns or metric in ("task", "scenario"):
        raise ValueError(
            f"plot_metric_bars: `metric` must be a metric column of the "
            f"table. Received: metric={metric!r}, columns "
            f"{list(metrics.columns)}"
        )
    grid = metrics.pivot(index="task", columns="scenario", values=metric)
    grid = grid.reindex(index=list(dict.fromkeys(metrics["task"])))
    grid = grid.reindex(columns=list(dict.fromkeys(metrics["scenario"])))
    figure = _figure((1.6 + 0.9 * grid.size**0.8, 3.6))
    axes = figure.subplots()
    width = 0.8 / grid.shape[1]
    positions = np.arange(grid.shape[0])
    for i, scenario in enumerate(grid.columns):
        axes.bar(
            positions + (i - (grid.shape[1] - 1) / 2) * width,
            grid[scenario].to_numpy(dtype=float),
            width,
            label=str(scenario),
        )
    axes.set_xticks(positions, [str(t) for t in grid.index])
    axes.set_ylabel(metric)
    low = np.nanmin(grid.to_numpy(dtype=float))
    if metric == "auc" and np.isfinite(low):
        axes.set_ylim(max(0.0, min(0.5, low - 0.02)), 1.0)
    axes.legend(title="scenario", fontsize="small")
    axes.set_title(f"{metric} per task and scenario")
    return _save(figure, path)


def _check_value(value: str) -> None:
    if value not in VALUES:
        raise ValueError(
            f"`value` must be one of {VALUES}. Received: value={value!r}"
        )


def _figure(size: tuple[float, float]) -> Any:
    """A matplotlib `Figure` (no pyplot), or an `ImportError` that says
    how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "kmtl.plots needs matplotlib, which is not installed: "
            'pip install "kmtl[plots]" (or matplotlib>=3.8).'
        ) from err
    return Figure(figsize=size, layout="constrained")


def _save_heatmaps(
    panels: list[tuple[str, Any]],
    path: str | os.PathLike,
    value: str,
    x_label: str,
    y_label: str,
) -> str:
    """One heatmap panel per `(title, grid)`, stacked vertically."""
    heights = [1.0 + 0.35 * len(grid.index) for _, grid in panels]
    widest = max(len(grid.columns) for _, grid in panels)
    figure = _figure((2.5 + 0.55 * widest, 0.6 + sum(heights)))
    axes = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)
    top = max(
        float(np.nanmax(grid.to_numpy(dtype=float))) for _, grid in panels
    )
    for ax, (title, grid) in zip(axes[:, 0], panels, strict=True):
        cells = grid.to_numpy(dtype=float)
        image = ax.imshow(
            np.ma.masked_invalid(cells),
            aspect="auto",
            cmap="viridis",
            vmin=0.0,
            vmax=top,
        )
        ax.set_xticks(range(cells.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(cells.shape[0]), [str(r) for r in grid.index])
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, fontsize="medium")
        if cells.size <= 200:
            for (i, j), cell in np.ndenumerate(cells):
                if np.isfinite(cell):
                    ax.text(
                        j,
                        i,
                        f"{cell:.2f}",
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color="white" if cell < 0.6 * top else "black",
                    )
        figure.colorbar(image, ax=ax, label=value)
    return _save(figure, path)


def _save(figure: Any, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


__all__ = [
    "VALUES",
    "plot_gate_heatmaps",
    "plot_metric_bars",
    "plot_scenario_heatmaps",
]
