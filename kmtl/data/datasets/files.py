"""Locating the local files of a public dataset (loaders never download)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "KMTL_DATA_DIR"


def find_data_file(
    filename: str, dataset: str, data_dir: str | os.PathLike | None = None
) -> Path:
    """Finds `filename` under `<data_dir>/<dataset>/` or directly in
    `<data_dir>`.

    Args:
        filename: str. The file's name, e.g. `"census-income.data.gz"`.
        dataset: str. The dataset's folder name, e.g. `"census-income"`.
        data_dir: str or path. Defaults to the `KMTL_DATA_DIR` environment
            variable.

    Returns:
        The file's `Path`.

    Raises:
        FileNotFoundError: no data directory is given, or the file is in
            neither place; the message names the file and both places.

    Example:

    >>> find_data_file("census-income.data.gz", "census-income", "/data")
    ... # doctest: +SKIP
    PosixPath('/data/census-income/census-income.data.gz')
    """
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not root:
        raise FileNotFoundError(
            f"{filename!r} of the {dataset} dataset: no data directory. "
            f"Pass `data_dir=` or set {DATA_DIR_ENV}; the file is expected "
            f"in <data_dir>/{dataset}/{filename} or <data_dir>/{filename} "
            "(kmtl never downloads it)."
        )
    candidates = [Path(root) / dataset / filename, Path(root) / filename]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{filename!r} of the {dataset} dataset is missing. Expected it at "
        f"{candidates[0]} or {candidates[1]} (kmtl never downloads it)."
    )
