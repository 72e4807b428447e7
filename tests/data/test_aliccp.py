import pytest

from kmtl.data.datasets import load_aliccp
from kmtl.data.datasets.aliccp import DENSE
from kmtl.data.datasets.aliccp import SPARSE_FIELDS
from kmtl.models.esmm import esmm_tasks
from kmtl.training.quality import load_benchmark_data

# The header and two rows of torch-rechub's ali_ccp_val_sample.csv layout.
HEADER = "click,purchase," + ",".join(SPARSE_FIELDS + DENSE)
ROWS = [
    "0,0,1,1,1,1,1,0,1,1,1,0,27,56,57,11,18,13,4,0,1,1,1,1,1,"
    "0.4734,0.562,0.0856,0.1902,0.4243,0.179,0.265,0.0",
    "1,1,1,1,1,1,1,0,1,1,1,108,27,130,139,52,18,0,17,0,1,1,1,1,1,"
    "0.4734,0.562,0.0856,0.1902,0.4243,0.0,0.3555,0.0",
    "1,0,1,1,1,1,1,0,1,1,1,113,6,126,150,0,5,0,0,0,1,1,1,1,1,"
    "0.4734,0.562,0.0856,0.1902,0.4802,0.0,0.0,0.0",
]


@pytest.fixture
def ccp_dir(tmp_path):
    folder = tmp_path / "ali-ccp"
    folder.mkdir()
    for name, rows in (
        ("train", ROWS * 3),
        ("val", ROWS[:2]),
        ("test", ROWS[1:] + [ROWS[0].replace(",0,27,", ",500,27,")]),
    ):
        (folder / f"ali_ccp_{name}.csv").write_text(
            "\n".join([HEADER, *rows]) + "\n"
        )
    return tmp_path


def test_columns_labels_and_splits(ccp_dir):
    assert len(HEADER.split(",")) == 33
    data = load_aliccp(ccp_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (9, 2, 3)
    sparse = [f"f{f}" for f in SPARSE_FIELDS]
    assert list(data.train.columns) == [*sparse, *DENSE, "click", "purchase"]
    assert len(data.spec.features) == 31
    assert data.spec.names("categorical") == sparse
    assert data.spec.names("numerical") == list(DENSE)
    assert data.train.f205.dtype == "int64"
    assert data.train.D508.dtype == "float32"
    # Train-only vocabulary: 205 tops at 113 in train; 500 is OOV in test.
    assert data.spec.feature("f205").vocabulary_size == 114
    assert data.test.f205.max() == 500
    assert data.train.click.tolist() == [0, 1, 1] * 3
    assert data.train.purchase.tolist() == [0, 1, 0] * 3
    ctr, cvr = data.spec.tasks
    assert (ctr.name, ctr.label, ctr.sample_space) == ("ctr", "click", None)
    assert (cvr.name, cvr.label, cvr.sample_space) == ("cvr", "purchase", "ctr")
    assert data.spec.scenario is None


def test_esmm_reads_ctcvr_from_the_two_tasks(ccp_dir):
    spec = load_aliccp(ccp_dir).spec
    ctcvr = esmm_tasks(spec)[2]
    assert ctcvr.name == "ctcvr"
    assert ctcvr.label == ("click", "purchase")


def test_max_rows(ccp_dir):
    data = load_aliccp(ccp_dir, max_rows=2)
    assert (len(data.train), len(data.val), len(data.test)) == (2, 2, 2)


def test_other_files_are_rejected(tmp_path):
    for name in ("train", "val", "test"):
        (tmp_path / f"ali_ccp_{name}.csv").write_text("click,purchase\n0,0\n")
    with pytest.raises(ValueError, match="not a preprocessed Ali-CCP"):
        load_aliccp(tmp_path)


def test_quality_runs_read_only_the_first_rows(ccp_dir):
    data = load_benchmark_data("aliccp", data_dir=ccp_dir, max_rows=2)
    assert (len(data.train), len(data.val), len(data.test)) == (2, 2, 2)
    assert data.train.click.tolist() == [0, 1]
    with pytest.raises(ValueError, match="'census'"):
        load_benchmark_data("census", data_dir=ccp_dir, max_rows=2)
    with pytest.raises(ValueError, match="max_rows=0"):
        load_benchmark_data("aliccp", data_dir=ccp_dir, max_rows=0)
