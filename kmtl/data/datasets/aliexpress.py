"""AliExpress (Tianchi 74690): click and conversion, one scenario per
country."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.splits import DatasetSplits
from kmtl.features.spec import FeatureSpec

DATASET = "aliexpress"
COUNTRIES = ("NL", "ES", "FR", "US")
# The columns written by the Multitask-Recommendation-Library's
# `data/preprocess.py` (and read by torch-rechub), in file order.
SEARCH_ID = "search_id"
CATEGORICAL = tuple(f"categorical_{i}" for i in range(1, 17))
NUMERICAL = tuple(f"numerical_{i}" for i in range(1, 64))
LABELS = ("click", "conversion")
COLUMNS = (SEARCH_ID, *CATEGORICAL, *NUMERICAL, *LABELS)
TASKS = {"ctr": "click", "cvr": "conversion"}
SCENARIO = "country"


def file_names(country: str, part: str) -> tuple[str, str]:
    """The accepted names of one country's `part` (`"train"`/`"test"`) file,
    relative to the dataset folder: the Multitask-Recommendation-Library
    layout first, then a flat one."""
    return (
        f"AliExpress_{country}/{part}.csv",
        f"aliexpress_{country}_{part}.csv",
    )


def read_aliexpress_file(
    path: str | os.PathLike, max_rows: int | None = None
) -> Any:
    """Reads one preprocessed AliExpress CSV (header row, 82 columns).

    Args:
        path: str or path. A country's `train.csv` or `test.csv`.
        max_rows: int. Read only the first rows. Defaults to all.

    Returns:
        pandas.DataFrame with `search_id`, the 16 `categorical_*` columns,
        `click` and `conversion` as int64 and the 63 `numerical_*` columns
        as float32.

    Example:

    ```python
    df = read_aliexpress_file("data/aliexpress/AliExpress_NL/test.csv")
    ```
    """
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path} is not a preprocessed AliExpress file: it lacks the "
            f"columns {missing[:5]}{'...' if len(missing) > 5 else ''} "
            f"(expected {len(COLUMNS)} columns: search_id, categorical_1-16, "
            "numerical_1-63, click, conversion)."
        )
    dtypes = {c: "int64" for c in (SEARCH_ID, *CATEGORICAL, *LABELS)}
    dtypes.update({c: "float32" for c in NUMERICAL})
    return pd.read_csv(
        path, usecols=list(COLUMNS), dtype=dtypes, nrows=max_rows
    )[list(COLUMNS)]


def _carve(train: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """Moves a seeded `fraction` of the searches (all their rows) of
    `train` into a validation frame."""
    searches = np.unique(train[SEARCH_ID].to_numpy())
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(searches)))
    held = rng.choice(searches, size=count, replace=False)
    in_val = train[SEARCH_ID].isin(held).to_numpy()
    return train[~in_val], train[in_val]


def load_aliexpress(
    data_dir: str | os.PathLike | None = None,
    *,
    countries: Sequence[str] = ("NL",),
    seed: int = 0,
    val_fraction: float = 0.1,
    max_rows: int | None = None,
) -> DatasetSplits:
    """Loads the AliExpress dataset, preprocessed as the
    Multitask-Recommendation-Library does it.

    Each country has an official train and test file, written by that
    library's `data/preprocess.py` from the Tianchi archive (dataset 74690):
    `search_id`, 16 categorical id columns, 63 numerical columns, `click`
    and `conversion`. Accepted file names, each in `<data_dir>/aliexpress/`
    or directly in `<data_dir>`: `AliExpress_NL/train.csv` and
    `AliExpress_NL/test.csv` (the library's layout), or
    `aliexpress_NL_train.csv` and `aliexpress_NL_test.csv`.

    Split: the official test file is `test`; a seeded `val_fraction` of the
    training searches (every row of a search together, so no search is on
    both sides) is carved out of the official train file as `val`.
    `search_id` is dropped after the split. Tasks: `ctr` (label `click`)
    and `cvr` (label `conversion`, sample space `ctr`: trained and
    measured on clicked rows only). With several countries, the `country`
    column (ids in the order of `countries`) is the scenario, its values
    named by the country codes; with one country there is no scenario.

    Args:
        data_dir: str or path. Folder of the files. Defaults to the
            `KMTL_DATA_DIR` environment variable.
        countries: list of str. Codes among `"NL"`, `"ES"`, `"FR"`, `"US"`.
            Defaults to `("NL",)`.
        seed: int. Seed of the validation split. Defaults to 0.
        val_fraction: float. Share of the training searches held out for
            validation, in (0, 1). Defaults to 0.1.
        max_rows: int. Read only the first rows of each file (quick runs).
            Defaults to all.

    Returns:
        `DatasetSplits` with `train`, `val`, `test` and `spec`.

    Raises:
        FileNotFoundError: a file is missing; the message names it and
            where it was expected.

    Example:

    ```python
    data = kmtl.data.datasets.load_aliexpress("/data", countries=["NL", "ES"])
    model = kmtl.build("star", data.spec)
    ```
    """
    countries = tuple(countries)
    if (
        not countries
        or len(set(countries)) != len(countries)
        or not set(countries) <= set(COUNTRIES)
    ):
        raise ValueError(
            f"`countries` must be distinct codes among {COUNTRIES}. "
            f"Received: countries={countries!r}"
        )
    if not 0 < val_fraction < 1:
        raise ValueError(
            "`val_fraction` must be in (0, 1). "
            f"Received: val_fraction={val_fraction!r}"
        )
    import pandas as pd

    paths = {
        (c, part): find_data_file(file_names(c, part), DATASET, data_dir)
        for c in countries
        for part in ("train", "test")
    }
    parts: dict[str, list[Any]] = {"train": [], "val": [], "test": []}
    for index, country in enumerate(countries):
        train = read_aliexpress_file(paths[country, "train"], max_rows)
        test = read_aliexpress_file(paths[country, "test"], max_rows)
        train, val = _carve(train, val_fraction, seed + index)
        for name, frame in (("train", train), ("val", val), ("test", test)):
            frame = frame.drop(columns=[SEARCH_ID])
            if len(countries) > 1:
                frame.insert(len(CATEGORICAL), SCENARIO, np.int64(index))
            parts[name].append(frame)
    train, val, test = (
        pd.concat(parts[name], ignore_index=True)
        for name in ("train", "val", "test")
    )
    several = len(countries) > 1
    spec = FeatureSpec.from_dataframe(
        train,
        labels=TASKS,
        scenario=SCENARIO if several else None,
        scenario_values=countries if several else None,
        sample_spaces={"cvr": "ctr"},
    )
    return DatasetSplits(train=train, val=val, test=test, spec=spec)
