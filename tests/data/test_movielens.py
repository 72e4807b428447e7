import keras
import numpy as np
import pytest

import kmtl
from kmtl.data.datasets import load_movielens_1m
from kmtl.data.datasets.movielens import AGE_GROUPS
from kmtl.features.spec import SequenceFeature
from kmtl.training.quality import load_benchmark_data

# users.dat lines, one user per age code (1, 18, 25, 35, 45, 50, 56).
USERS = [
    "1::F::1::10::48067",
    "2::M::56::16::70072",
    "3::M::25::15::55117",
    "4::M::45::7::02460",
    "5::M::25::20::55455",
    "6::F::50::9::55117",
    "7::M::35::1::06810",
    "8::M::18::12::11413",
]
# Latin-1 titles, a ":" inside a title, several genres.
MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi",
    "3::Caf\xe9 au lait (M\xe9tisse) (1993)::Comedy",
]


def _ratings(n):
    rows = []
    for i in range(n):
        user, movie, rating = i % 8 + 1, i % 3 + 1, i % 5 + 1
        rows.append(f"{user}::{movie}::{rating}::{978300760 + i}")
    return rows


@pytest.fixture
def ml_dir(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "users.dat").write_text("\n".join(USERS) + "\n")
    (folder / "ratings.dat").write_text("\n".join(_ratings(40)) + "\n")
    (folder / "movies.dat").write_bytes(
        ("\n".join(MOVIES) + "\n").encode("latin-1")
    )
    return tmp_path


def test_columns_labels_and_scenarios(ml_dir):
    data = load_movielens_1m(ml_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (32, 4, 4)
    assert list(data.train.columns) == [
        "user_id",
        "movie_id",
        "gender",
        "age",
        "occupation",
        "zip",
        "genres",
        "year",
        "age_group",
        "like",
    ]
    assert len(data.spec.features) == 9
    assert data.spec.task_names == ["like"]
    assert data.spec.scenario.name == "age_group"
    assert data.spec.scenario.values == AGE_GROUPS
    users = np.concatenate(
        [d.user_id for d in (data.train, data.val, data.test)]
    )
    assert np.bincount(users).tolist() == [0] + [5] * 8
    for df in (data.train, data.val, data.test):
        assert df.user_id.dtype == "int64" and df.age_group.dtype == "int64"
        assert df.year.dtype == "float32" and df.like.dtype == "int64"
    df = data.train
    groups = dict(zip(df.user_id, df.age_group, strict=True))
    assert groups == {1: 0, 8: 0, 3: 1, 5: 1, 2: 2, 4: 2, 6: 2, 7: 2}
    assert set(df[df.user_id == 4].zip) == {"02460"}
    years = dict(zip(df.movie_id, df.year, strict=True))
    assert years == {1: 1995.0, 2: 1977.0, 3: 1993.0}
    genres = dict(zip(df.movie_id, df.genres.map(tuple), strict=True))
    assert genres[1] == ("Animation", "Children's", "Comedy")
    assert genres[2] == ("Action", "Sci-Fi")
    feature = data.spec.feature("genres")
    assert isinstance(feature, SequenceFeature) and feature.max_length == 3
    assert data.spec.feature("gender").vocabulary == ("F", "M")


def test_like_is_rating_above_three(ml_dir):
    # Rating i % 5 + 1 and timestamp 978300760 + i: like iff i % 5 >= 3.
    data = load_movielens_1m(ml_dir, seed=5)
    total = sum(int(d.like.sum()) for d in (data.train, data.val, data.test))
    assert total == 16


def test_split_is_seeded(ml_dir):
    first = load_movielens_1m(ml_dir, seed=1)
    assert first.test.equals(load_movielens_1m(ml_dir, seed=1).test)
    assert not first.test.equals(load_movielens_1m(ml_dir, seed=2).test)


def test_benchmark_data_trains_a_model(ml_dir):
    data = load_benchmark_data("movielens", data_dir=ml_dir)
    assert len(data.train) == 32
    keras.utils.set_random_seed(0)
    model = kmtl.build("shared_bottom", data.spec)
    history = model.fit(
        kmtl.data.to_dataset(data.train, data.spec, batch_size=8),
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][-1])
    preds = model.predict(
        kmtl.data.to_dataset(data.test, data.spec, with_labels=False),
        verbose=0,
    )
    assert preds["like"].shape == (4, 1)
    assert np.all((preds["like"] > 0) & (preds["like"] < 1))
