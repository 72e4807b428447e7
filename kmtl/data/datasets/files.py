"""Locating the local files of a public dataset (loaders never download)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

DATA_DIR_ENV = "KMTL_DATA_DIR"


def find_data_file(
    filename: str | Sequence[str],
    dataset: str,
    data_dir: str | os.PathLike | None = None,
) -> Path:
    """Finds `filename` under `<data_dir>/<dataset>/` or directly in
    `<data_dir>`.

    Args:
        filename: str, or several names (a file some releases lay out
            differently, e.g. `"data/x.csv"` and `"x.csv"`), tried in order.
        dataset: str. The dataset's folder name, e.g. `"census-income"`.
        data_dir: str or path. Defaults to the `KMTL_DATA_DIR` environment
            variable.

    Returns:
        The first file found, as a `Path`.

    Raises:
        FileNotFoundError: no data directory is given, or the file is in
            none of the places; the message names the file and every place.

    Example:

    >>> find_data_file("census-income.data.gz", "census-income", "/data")
    ... # doctest: +SKIP
    PosixPath('/data/census-income/census-income.data.gz')
    """
    names = [filename] if isinstance(filename, str) else list(filename)
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not root:
        raise FileNotFoundError(
            f"{names[0]!r} of the {dataset} dataset: no data directory. "
            f"Pass `data_dir=` or set {DATA_DIR_ENV}; the file is expected "
            f"in <data_dir>/{dataset}/{names[0]} or <data_dir>/{names[0]} "
            "(kmtl never downloads it)."
        )
    candidates = [
        Path(root) / folder / name for name in names for folder in (dataset, "")
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{names[0]!r} of the {dataset} dataset is missing. Expected it at "
        f"{' or '.join(str(p) for p in candidates)} (kmtl never downloads it)."
    )
