import numpy as np
import pytest

from kmtl.data.datasets import load_aliexpress
from kmtl.data.datasets.aliexpress import CATEGORICAL
from kmtl.data.datasets.aliexpress import COLUMNS
from kmtl.data.datasets.aliexpress import NUMERICAL

HEADER = ",".join(COLUMNS)


def _row(search: int, label: int, seed: int) -> str:
    """One line of a preprocessed file: `label` is the raw AliExpress
    label (0 impression, 1 click, 2 click and purchase); `numerical_1`
    carries the search id so the split can be checked."""
    rng = np.random.default_rng(seed)
    cats = [str(search % 7 if search < 50 else search)] + [
        str(v) for v in rng.integers(0, 5, 15)
    ]
    nums = (
        [f"{search / 100}"] + ["0"] * 2 + [f"{v:.4f}" for v in rng.random(60)]
    )
    click, conversion = {0: (0, 0), 1: (1, 0), 2: (1, 1)}[label]
    return ",".join([str(search), *cats, *nums, str(click), str(conversion)])


def _write(path, searches, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for i, (search, label) in enumerate(zip(searches, labels, strict=True)):
        lines.append(_row(search, label, seed=i))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def ali_dir(tmp_path):
    # NL in the Multitask-Recommendation-Library layout: 10 searches of 2.
    searches = [s for s in range(10) for _ in range(2)]
    _write(
        tmp_path / "aliexpress" / "AliExpress_NL" / "train.csv",
        searches,
        [0, 1] * 5 + [2, 0] * 5,
    )
    _write(
        tmp_path / "aliexpress" / "AliExpress_NL" / "test.csv",
        [50, 50, 51, 51, 52, 52],
        [0, 2, 1, 0, 0, 0],
    )
    # ES flat, directly in data_dir: 5 searches of 2.
    _write(tmp_path / "aliexpress_ES_train.csv", searches[:10], [1, 0] * 5)
    _write(tmp_path / "aliexpress_ES_test.csv", [60, 61], [2, 0])
    return tmp_path


def test_columns_labels_and_split(ali_dir):
    assert len(COLUMNS) == 82
    data = load_aliexpress(ali_dir, val_fraction=0.2)
    assert list(data.train.columns) == [
        *CATEGORICAL,
        *NUMERICAL,
        "click",
        "conversion",
    ]
    assert len(data.train.columns) == 81
    assert (len(data.train), len(data.val), len(data.test)) == (16, 4, 6)
    assert data.spec.scenario is None
    assert len(data.spec.features) == 79
    assert data.train["categorical_1"].dtype == "int64"
    assert data.train["numerical_2"].dtype == "float32"
    # Vocabularies come from train only (test ids 50-52 are OOV).
    train_max = int(data.train.categorical_1.max())
    assert train_max < 7 and data.test.categorical_1.min() == 50
    assert data.spec.feature("categorical_1").vocabulary_size == train_max + 1
    assert data.spec.feature("numerical_1").normalized
    ctr, cvr = data.spec.tasks
    assert (ctr.name, ctr.label, ctr.sample_space) == ("ctr", "click", None)
    assert (cvr.name, cvr.label, cvr.sample_space) == (
        "cvr",
        "conversion",
        "ctr",
    )
    assert data.test.click.tolist() == [0, 1, 1, 0, 0, 0]
    assert data.test.conversion.tolist() == [0, 1, 0, 0, 0, 0]
    # Whole searches go to validation: 2 of 10, none on both sides.
    train_searches = set(np.round(data.train.numerical_1 * 100).astype(int))
    val_searches = set(np.round(data.val.numerical_1 * 100).astype(int))
    assert len(val_searches) == 2 and len(train_searches) == 8
    assert not train_searches & val_searches
    assert (data.train.conversion <= data.train.click).all()


def test_split_is_seeded(ali_dir):
    first = load_aliexpress(ali_dir, val_fraction=0.3, seed=3)
    again = load_aliexpress(ali_dir, val_fraction=0.3, seed=3)
    assert first.val.equals(again.val)
    others = [
        set(load_aliexpress(ali_dir, val_fraction=0.3, seed=s).val.numerical_1)
        for s in range(4, 9)
    ]
    assert any(o != set(first.val.numerical_1) for o in others)


def test_countries_are_scenarios(ali_dir):
    data = load_aliexpress(ali_dir, countries=["ES", "NL"], val_fraction=0.2)
    assert data.spec.scenario.name == "country"
    assert data.spec.scenario.values == ("ES", "NL")
    assert len(data.spec.features) == 80
    assert data.train.country.dtype == "int64"
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 8)
    assert data.test.country.tolist() == [0, 0] + [1] * 6
    assert data.test.click.tolist()[:2] == [1, 0]
    assert sorted(data.train.country.value_counts().tolist()) == [8, 16]


def test_unknown_or_other_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="countries=\\('XX',\\)"):
        load_aliexpress(tmp_path, countries=["XX"])
    bad = tmp_path / "aliexpress_US_train.csv"
    bad.write_text("a,b\n1,2\n")
    (tmp_path / "aliexpress_US_test.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a preprocessed AliExpress"):
        load_aliexpress(tmp_path, countries=["US"])
