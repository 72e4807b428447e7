"""Ali-CCP (Alibaba Click and Conversion Prediction), preprocessed CSVs."""

from __future__ import annotations

import os
from typing import Any

from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.splits import DatasetSplits
from kmtl.features.spec import FeatureSpec

DATASET = "ali-ccp"
FILES = {
    "train": "ali_ccp_train.csv",
    "val": "ali_ccp_val.csv",
    "test": "ali_ccp_test.csv",
}
# The columns of torch-rechub's `preprocess_ali_ccp.py` output: the sparse
# fields (ids, 0 = rare or missing) and the min-max scaled dense values of
# eight of them (`D<field>`).
SPARSE_FIELDS = (
    "101",
    "121",
    "122",
    "124",
    "125",
    "126",
    "127",
    "128",
    "129",
    "205",
    "206",
    "207",
    "210",
    "216",
    "508",
    "509",
    "702",
    "853",
    "301",
    "109_14",
    "110_14",
    "127_14",
    "150_14",
)
DENSE = (
    "D109_14",
    "D110_14",
    "D127_14",
    "D150_14",
    "D508",
    "D509",
    "D702",
    "D853",
)
LABELS = ("click", "purchase")
TASKS = {"ctr": "click", "cvr": "purchase"}


def sparse_name(field: str) -> str:
    """The input name of a sparse field: `"101"` -> `"f101"` (feature names
    must be identifiers)."""
    return f"f{field}"


def read_aliccp_file(
    path: str | os.PathLike, max_rows: int | None = None
) -> Any:
    """Reads one preprocessed Ali-CCP CSV (header row, 33 columns).

    Args:
        path: str or path. `ali_ccp_train.csv`, `_val.csv` or `_test.csv`.
        max_rows: int. Read only the first rows. Defaults to all.

    Returns:
        pandas.DataFrame: the 23 sparse fields as int64 named `f<field>`,
        the 8 `D*` dense columns as float32, `click` and `purchase` as
        int64.

    Example:

    ```python
    df = read_aliccp_file("data/ali-ccp/ali_ccp_val.csv")
    ```
    """
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    columns = (*LABELS, *SPARSE_FIELDS, *DENSE)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(
            f"{path} is not a preprocessed Ali-CCP file: it lacks the "
            f"columns {missing}. Expected click, purchase, the sparse "
            f"fields {list(SPARSE_FIELDS)} and {list(DENSE)}."
        )
    dtypes = {c: "int64" for c in (*LABELS, *SPARSE_FIELDS)}
    dtypes.update({c: "float32" for c in DENSE})
    df = pd.read_csv(path, usecols=list(columns), dtype=dtypes, nrows=max_rows)
    df = df[[*SPARSE_FIELDS, *DENSE, *LABELS]]
    return df.rename(columns={f: sparse_name(f) for f in SPARSE_FIELDS})


def load_aliccp(
    data_dir: str | os.PathLike | None = None,
    *,
    max_rows: int | None = None,
) -> DatasetSplits:
    """Loads Ali-CCP from the CSVs of torch-rechub's preprocessing.

    torch-rechub's `examples/ranking/data/ali-ccp/preprocess_ali_ccp.py`
    turns the Tianchi skeleton and common-feature files into
    `ali_ccp_train.csv`, `ali_ccp_val.csv` and `ali_ccp_test.csv` (its
    validation and test files are the official test set split 1:1; its
    vocabularies keep values seen at least 10 times in training). Each has
    `click`, `purchase`, 23 sparse id fields (`101`, `121`, ..., `150_14`)
    and 8 min-max scaled dense fields (`D109_14`, ..., `D853`). kmtl keeps
    those three splits as they are.

    Inputs (31): the sparse fields as integer ids renamed `f101`, ...,
    `f150_14` (names must be identifiers), the dense fields as normalised
    numericals. Tasks: `ctr` (label `click`) and `cvr` (label `purchase`,
    sample space `ctr`). `kmtl.build("esmm", spec)` adds its `ctcvr`
    output (click x purchase) from these two tasks.

    Args:
        data_dir: str or path. Folder holding the three files, directly or
            in an `ali-ccp/` subfolder. Defaults to the `KMTL_DATA_DIR`
            environment variable.
        max_rows: int. Read only the first rows of each file (quick runs).
            Defaults to all.

    Returns:
        `DatasetSplits` with `train`, `val`, `test` and `spec`.

    Raises:
        FileNotFoundError: a file is missing; the message names it and
            where it was expected.

    Example:

    ```python
    data = kmtl.data.datasets.load_aliccp("/data")
    model = kmtl.build("esmm", data.spec)
    ```
    """
    paths = {
        name: find_data_file(filename, DATASET, data_dir)
        for name, filename in FILES.items()
    }
    train, val, test = (
        read_aliccp_file(paths[name], max_rows)
        for name in ("train", "val", "test")
    )
    spec = FeatureSpec.from_dataframe(
        train, labels=TASKS, sample_spaces={"cvr": "ctr"}
    )
    return DatasetSplits(train=train, val=val, test=test, spec=spec)
