"""MovieLens 1M: `like` (rating > 3), one scenario per age group."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from kmtl.data.datasets.files import find_data_file
from kmtl.data.datasets.splits import DatasetSplits
from kmtl.features.spec import FeatureSpec

DATASET = "ml-1m"
RATINGS_FILE = "ratings.dat"
USERS_FILE = "users.dat"
MOVIES_FILE = "movies.dat"
RATINGS_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
USERS_COLUMNS = ("user_id", "gender", "age", "occupation", "zip")
MOVIES_COLUMNS = ("movie_id", "title", "genres")
SCENARIO = "age_group"
# users.dat age codes -> scenario id; AGE_GROUPS names the ids.
AGE_GROUP_OF = {1: 0, 18: 0, 25: 1, 35: 2, 45: 2, 50: 2, 56: 2}
AGE_GROUPS = ("under_25", "age_25_34", "age_35_plus")
# Inputs of the returned frames, in order, then the label.
INPUTS = (
    "user_id",
    "movie_id",
    "gender",
    "age",
    "occupation",
    "zip",
    "genres",
    "year",
    SCENARIO,
)
LABEL = "like"
FRACTIONS = (0.8, 0.1, 0.1)


def _read_dat(path: Any, columns: tuple[str, ...]) -> Any:
    """A `::`-separated file without `:` inside its fields."""
    import pandas as pd

    # Splitting on ":" leaves an empty field between two separators.
    raw = pd.read_csv(
        path,
        sep=":",
        header=None,
        usecols=[2 * i for i in range(len(columns))],
        dtype=str,
        encoding="latin-1",
        keep_default_na=False,
    )
    raw.columns = list(columns)
    return raw


def _read_movies(path: Any) -> Any:
    """movies.dat: titles may hold `:`, so split each line twice."""
    import pandas as pd

    with open(path, encoding="latin-1") as f:
        rows = [
            line.rstrip("\r\n").split("::", 2) for line in f if line.strip()
        ]
    movies = pd.DataFrame(rows, columns=list(MOVIES_COLUMNS))
    movies["movie_id"] = movies["movie_id"].astype("int64")
    year = movies["title"].str.extract(r"\((\d{4})\)\s*$")[0]
    movies["year"] = year.astype("float32")
    movies["genres"] = movies["genres"].str.split("|")
    return movies


def read_movielens_1m(data_dir: str | os.PathLike | None = None) -> Any:
    """Reads and joins the three MovieLens 1M files, before any split.

    Args:
        data_dir: str or path. Folder holding `ratings.dat`, `users.dat`
            and `movies.dat`, directly or in an `ml-1m/` subfolder. Defaults
            to the `KMTL_DATA_DIR` environment variable.

    Returns:
        pandas.DataFrame, one row per rating in file order: `INPUTS`, the
        label `like`, then the raw `rating` and `timestamp`.

    Example:

    ```python
    df = read_movielens_1m("/data")
    ```
    """
    ratings_path = find_data_file(RATINGS_FILE, DATASET, data_dir)
    users_path = find_data_file(USERS_FILE, DATASET, data_dir)
    movies_path = find_data_file(MOVIES_FILE, DATASET, data_dir)
    ratings = _read_dat(ratings_path, RATINGS_COLUMNS).astype("int64")
    users = _read_dat(users_path, USERS_COLUMNS)
    for col in ("user_id", "age", "occupation"):
        users[col] = users[col].astype("int64")
    unknown = sorted(set(users["age"]) - set(AGE_GROUP_OF))
    if unknown:
        raise ValueError(
            f"{users_path}: unknown age codes {unknown}; expected "
            f"{sorted(AGE_GROUP_OF)}."
        )
    users[SCENARIO] = users["age"].map(AGE_GROUP_OF).astype("int64")
    movies = _read_movies(movies_path)
    df = ratings.merge(users, on="user_id", how="left").merge(
        movies[["movie_id", "genres", "year"]], on="movie_id", how="left"
    )
    missing = df["gender"].isna() | df["genres"].isna()
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} ratings name a user or movie that is not "
            f"in {users_path.name} / {movies_path.name}."
        )
    df["year"] = df["year"].fillna(df["year"].mean()).astype("float32")
    df[LABEL] = (df["rating"] > 3).astype("int64")
    return df[[*INPUTS, LABEL, "rating", "timestamp"]]


def load_movielens_1m(
    data_dir: str | os.PathLike | None = None, *, seed: int = 0
) -> DatasetSplits:
    """Loads MovieLens 1M as one binary task over three age-group scenarios.

    Files (`::`-separated, as in GroupLens's `ml-1m.zip`): `ratings.dat`
    (UserID::MovieID::Rating::Timestamp), `users.dat`
    (UserID::Gender::Age::Occupation::Zip-code), `movies.dat`
    (MovieID::Title::Genres, latin-1).

    Task `like`: rating > 3. Scenario `age_group`: ages 1 and 18 ->
    `under_25` (0), 25 -> `age_25_34` (1), 35 to 56 -> `age_35_plus` (2).
    Inputs (9): `user_id`, `movie_id`, `age` and `occupation` (integer
    ids), `gender` and `zip` (strings), `genres` (a sequence of genre
    strings), `year` (release year from the title, a normalised float) and
    `age_group`. The rating and timestamp are dropped. The ratings are
    shuffled with `seed` and split 80/10/10 into `train`, `val`, `test`.

    Args:
        data_dir: str or path. Folder holding the three files, directly or
            in an `ml-1m/` subfolder. Defaults to the `KMTL_DATA_DIR`
            environment variable.
        seed: int. Seed of the split. Defaults to 0.

    Returns:
        `DatasetSplits` with `train`, `val`, `test` and `spec`.

    Raises:
        FileNotFoundError: a file is missing; the message names it and
            where it was expected.

    Example:

    ```python
    data = kmtl.data.datasets.load_movielens_1m("/data")
    model = kmtl.build("star", data.spec)
    ```
    """
    df = read_movielens_1m(data_dir)[[*INPUTS, LABEL]]
    order = np.random.default_rng(seed).permutation(len(df))
    n_train = int(FRACTIONS[0] * len(df))
    n_val = int(FRACTIONS[1] * len(df))
    train, val, test = (
        df.iloc[idx].reset_index(drop=True)
        for idx in np.split(order, [n_train, n_train + n_val])
    )
    spec = FeatureSpec.from_dataframe(
        train,
        labels=[LABEL],
        scenario=SCENARIO,
        scenario_values=AGE_GROUPS,
    )
    return DatasetSplits(train=train, val=val, test=test, spec=spec)
