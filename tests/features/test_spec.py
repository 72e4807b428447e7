import numpy as np
import pandas as pd
import pytest

from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec


def _spec(**changes):
    base = dict(
        features=[
            CategoricalFeature("item", vocabulary_size=10, group="item"),
            CategoricalFeature("city", vocabulary=["paris", "lyon"]),
            CategoricalFeature("query", hash_bins=32, dtype="string"),
            NumericalFeature("price", mean=2.0, variance=4.0),
            NumericalFeature("dense", dim=3),
            SequenceFeature("clicked", max_length=5, shared_with="item"),
        ],
        tasks=[
            TaskSpec("ctr", label="click"),
            TaskSpec("cvr", label="buy", sample_space="ctr"),
        ],
        scenario=ScenarioSpec("domain", values=["home", "search"]),
    )
    base.update(changes)
    return FeatureSpec(**base)


def test_json_round_trip_is_identical():
    spec = _spec()
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def test_derived_properties():
    spec = _spec()
    assert spec.feature("item").num_ids == 11  # OOV row
    assert spec.feature("city").num_ids == 3
    assert spec.feature("query").num_ids == 32  # hashing has no OOV row
    assert spec.input_names[-1] == "domain"
    assert spec.task("cvr").sample_space == "ctr"
    assert spec.task("ctr").loss == "binary_crossentropy"
    assert spec.task("ctr").metrics == ("auc",)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"tasks": [TaskSpec("ctr"), TaskSpec("ctr", label="x")]},
            "duplicate task name 'ctr'",
        ),
        (
            {
                "features": [
                    CategoricalFeature("a", vocabulary_size=3),
                    NumericalFeature("a"),
                ]
            },
            "duplicate feature name 'a'",
        ),
        (
            {"tasks": [TaskSpec("ctr"), TaskSpec("cvr", sample_space="click")]},
            "sample_space='click'.*'cvr'",
        ),
        (
            {
                "tasks": [
                    TaskSpec("time", kind="regression"),
                    TaskSpec("cvr", sample_space="time"),
                ]
            },
            "'time'.*must be a binary task",
        ),
    ],
    ids=[
        "duplicate_task_name",
        "duplicate_feature_name",
        "sample_space_naming_a_missing_task",
        "sample_space_must_be_binary",
    ],
)
def test_inconsistent_spec_is_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        _spec(**changes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(vocabulary_size=3, hash_bins=4), "exactly one of"),
        (dict(), "exactly one of"),
        (dict(vocabulary_size=0), "vocabulary_size=0"),
        (dict(vocabulary=["a", "a"]), "distinct strings"),
        (dict(vocabulary_size=3, dtype="string"), "is for integer ids"),
        (dict(hash_bins=3, dtype="float32"), "dtype='float32'"),
    ],
)
def test_invalid_categorical(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CategoricalFeature("f", **kwargs)


def test_invalid_names_and_numericals():
    with pytest.raises(ValueError, match="Python identifier"):
        CategoricalFeature("my feature", vocabulary_size=3)
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        NumericalFeature("x", mean=1.0)
    with pytest.raises(ValueError, match="variance > 0"):
        NumericalFeature("x", mean=1.0, variance=0.0)
    with pytest.raises(ValueError, match="3 floats"):
        NumericalFeature("x", dim=3, mean=[1.0, 2.0], variance=[1.0, 1.0])
    with pytest.raises(ValueError, match="kind='binary'"):
        TaskSpec("t", num_classes=3)
    with pytest.raises(ValueError, match="must name a CategoricalFeature"):
        _spec(features=[SequenceFeature("s", max_length=3, shared_with="x")])


def test_unknown_key_in_dict_is_rejected():
    data = _spec().to_dict()
    data["tasks"][0]["lable"] = "click"
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['lable'\]"):
        FeatureSpec.from_dict(data)


def test_unknown_feature_lookup_names_it():
    with pytest.raises(ValueError, match="Unknown feature 'nope'"):
        _spec().feature("nope")


def test_from_dataframe_infers_kinds_and_vocabularies():
    df = pd.DataFrame(
        {
            "user": np.array([0, 5, 2, 9]),
            "city": ["paris", "lyon", "paris", "nice"],
            "price": np.array([1.0, 3.0, 5.0, 7.0]),
            "clicked": [[1, 2], [], [3], [7, 1, 2]],
            "tags": [["a"], ["b", "c"], [], ["a"]],
            "domain": np.array([0, 1, 2, 1]),
            "click": [1, 0, 1, 0],
            "buy": [1, 0, 0, 0],
            "row_id": [1, 2, 3, 4],
        }
    )
    spec = FeatureSpec.from_dataframe(
        df,
        labels={"ctr": "click", "ctcvr": ["click", "buy"]},
        scenario="domain",
        exclude=["row_id"],
        groups={"user": "user"},
    )
    assert spec.names() == [
        "user",
        "city",
        "price",
        "clicked",
        "tags",
        "domain",
    ]
    assert spec.feature("user") == CategoricalFeature(
        "user", vocabulary_size=10, group="user"
    )
    assert spec.feature("city").vocabulary == ("lyon", "nice", "paris")
    price = spec.feature("price")
    assert price.mean == pytest.approx(4.0)
    assert price.variance == pytest.approx(5.0)
    assert spec.feature("clicked").max_length == 3
    assert spec.feature("clicked").vocabulary_size == 8
    assert spec.feature("tags").vocabulary == ("a", "b", "c")
    assert spec.scenario.num_scenarios == 3
    assert spec.task("ctcvr").label_columns == ("click", "buy")


def test_from_dataframe_names_a_missing_label_column():
    df = pd.DataFrame({"x": [1.0], "click": [1]})
    with pytest.raises(ValueError, match="'buy' of task 'cvr'"):
        FeatureSpec.from_dataframe(df, labels={"cvr": "buy"})


def test_from_dataframe_hashes_large_string_columns():
    df = pd.DataFrame({"q": [f"q{i}" for i in range(50)], "y": [0, 1] * 25})
    spec = FeatureSpec.from_dataframe(df, labels=["y"], max_vocabulary=10)
    assert spec.feature("q").hash_bins == 20


class TestScenarioLevels:
    def test_levels_round_trip_and_sizes(self):
        scenario = ScenarioSpec(
            "channel", ["home", "search"], {"country": ["us", "fr", "de"]}
        )
        assert scenario.level_names == ("country",)
        assert scenario.level_sizes == (3,)
        spec = FeatureSpec(
            [CategoricalFeature("item", vocabulary_size=5)],
            [TaskSpec("click")],
            scenario=scenario,
        )
        assert spec.input_names == ["item", "channel", "country"]
        again = FeatureSpec.from_json(spec.to_json())
        assert again == spec

    @pytest.mark.parametrize(
        "levels, message",
        [
            (["country"], "must map each level column"),
            ({"country": []}, "'country'.*non-empty"),
            ({"channel": ["a"]}, "must be distinct"),
        ],
    )
    def test_bad_levels(self, levels, message):
        with pytest.raises(ValueError, match=message):
            ScenarioSpec("channel", ["home"], levels)


def test_from_dataframe_names_the_scenario_values():
    df = pd.DataFrame({"item": [1, 2], "domain": [0, 1], "click": [0, 1]})
    spec = FeatureSpec.from_dataframe(
        df, labels=["click"], scenario="domain", scenario_values=["a", "b"]
    )
    assert spec.scenario.values == ("a", "b")


# --- issue 16: round trips, malformed dicts, inference on messy data ------


@pytest.mark.parametrize(
    "task",
    [
        TaskSpec("time", kind="regression"),
        TaskSpec("stars", kind="multiclass", num_classes=5, weight=0.5),
        TaskSpec("ctr", metrics=["auc", "logloss"], loss="mse"),
    ],
)
def test_task_kind_and_fields_survive_dict_and_json(task):
    spec = _spec(tasks=[task])
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert FeatureSpec.from_json(spec.to_json()).task(task.name) == task


def test_load_spec_reads_back_every_task_kind(tmp_path):
    from kmtl.export.saved_model import SPEC_FILE
    from kmtl.export.saved_model import load_spec
    from kmtl.export.warmup import ASSETS_EXTRA

    spec = _spec(
        tasks=[
            TaskSpec("ctr", label="click"),
            TaskSpec("time", kind="regression", sample_space="ctr"),
            TaskSpec("stars", kind="multiclass", num_classes=3),
        ],
        scenario=ScenarioSpec("domain", ["a", "b"], {"country": ["us"]}),
    )
    (tmp_path / ASSETS_EXTRA).mkdir()
    (tmp_path / ASSETS_EXTRA / SPEC_FILE).write_text(spec.to_json(indent=2))
    assert load_spec(tmp_path) == spec


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("tasks"), r"lacks the required key\(s\) \['tasks'\]"),
        (lambda d: d.update(features=5), "`features` must be a list"),
        (lambda d: d["features"].__setitem__(0, None), r"`features\[0\]`"),
        (lambda d: d["features"][0].update(kind=[1]), "`kind` is one of"),
        (lambda d: d["features"][0].pop("name"), r"\['name'\]"),
        (lambda d: d["features"][1].update(vocabulary=7), "`vocabulary`"),
        (lambda d: d["features"][3].update(mean={}), "`mean` must be"),
        (lambda d: d["features"][0].update(group=3), "`group`"),
        (lambda d: d["tasks"][0].update(label=5), "`label`"),
        (lambda d: d["tasks"][0].update(weight="x"), "`weight`"),
        (lambda d: d["tasks"][0].update(metrics="auc"), "`metrics`"),
        (lambda d: d["tasks"][0].update(loss=3), "`loss`"),
        (lambda d: d.update(scenario=[1]), "scenario must be a dict"),
        (lambda d: d["scenario"].update(values=3), "values must be"),
        (lambda d: d["scenario"].update(levels=3), "`levels` must map"),
        (lambda d: d.update(embedding_dimm=3), r"\['embedding_dimm'\]"),
        (lambda d: d.update({1: 2}), r"Unknown key\(s\) \[1\]"),
    ],
)
def test_malformed_dict_is_a_value_error_naming_the_field(change, message):
    data = _spec().to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        FeatureSpec.from_dict(data)


def test_from_dict_of_a_non_dict_is_a_value_error():
    with pytest.raises(ValueError, match="FeatureSpec dict must be a dict"):
        FeatureSpec.from_dict(None)


def test_from_dataframe_statistics_ignore_missing_numericals():
    df = pd.DataFrame(
        {
            "price": [1.0, np.nan, 3.0, np.inf, -np.inf, 5.0],
            "empty": [np.nan] * 6,
            "click": [0, 1, 0, 1, 0, 1],
        }
    )
    spec = FeatureSpec.from_dataframe(df, labels=["click"])
    price = spec.feature("price")
    assert price.mean == pytest.approx(3.0)
    assert price.variance == pytest.approx(8.0 / 3.0)
    assert spec.feature("empty") == NumericalFeature(
        "empty", mean=0.0, variance=1.0
    )


@pytest.mark.parametrize("dtype", [object, "str"])
def test_from_dataframe_keeps_missing_strings_out_of_the_vocabulary(dtype):
    df = pd.DataFrame(
        {
            "city": pd.Series(["b", None, "a", np.nan, "", "b"], dtype=dtype),
            "tags": [["x", None], [], ["y", ""], None, ["x"], ["y"]],
            "click": [0, 1, 0, 1, 0, 1],
        }
    )
    spec = FeatureSpec.from_dataframe(df, labels=["click"])
    assert spec.feature("city").vocabulary == ("a", "b")
    assert spec.feature("tags").vocabulary == ("x", "y")


def test_from_dataframe_hashes_sparse_integer_ids():
    n = 200
    df = pd.DataFrame(
        {
            "hashed": np.arange(n) * 2**33,  # 64-bit hashed ids
            "one_huge": np.r_[np.arange(n - 1), 2**32 + 7],
            "sparse": np.r_[np.arange(n - 1), 5_000_000],
            "dense": np.arange(n) % 10,
            "click": np.arange(n) % 2,
        }
    )
    spec = FeatureSpec.from_dataframe(df, labels=["click"], max_vocabulary=50)
    for name in ("hashed", "one_huge", "sparse"):
        assert spec.feature(name).hash_bins == 100, name
        assert spec.feature(name).vocabulary_size is None
    assert spec.feature("dense").vocabulary_size == 10
    # Below both thresholds ids stay a vocabulary, however sparse.
    small = df.assign(sparse=np.r_[np.arange(n - 1), 999_999])
    spec = FeatureSpec.from_dataframe(small, labels=["click"])
    assert spec.feature("sparse").vocabulary_size == 1_000_000


def test_from_dataframe_hashes_sparse_integer_sequences():
    df = pd.DataFrame({"seq": [[1, 2**40], [3], []], "y": [0, 1, 0]})
    spec = FeatureSpec.from_dataframe(df, labels=["y"], max_vocabulary=8)
    assert spec.feature("seq").hash_bins == 16


def test_from_dataframe_rejects_an_empty_dataframe():
    df = pd.DataFrame({"x": np.zeros(0), "click": np.zeros(0, int)})
    with pytest.raises(ValueError, match="the DataFrame is empty"):
        FeatureSpec.from_dataframe(df, labels=["click"])


def test_numpy_scalars_are_integers_and_floats_as_everywhere():
    feature = CategoricalFeature("x", vocabulary_size=np.int64(5))
    assert feature.vocabulary_size == 5
    assert type(feature.vocabulary_size) is int
    task = TaskSpec("t", label="y", weight=np.float32(0.5))
    assert type(task.weight) is float
    with pytest.raises(ValueError, match="`vocabulary_size`.*Received"):
        CategoricalFeature("x", vocabulary_size=True)


def test_facets_round_trip_and_are_checked():
    task = TaskSpec(
        "click_new",
        label="click",
        facets={"user_group": "new", "behaviour": "click"},
    )
    assert task.facet("behaviour") == "click" and task.facet("other") is None
    assert TaskSpec.from_dict(task.to_dict()) == task
    assert "facets" not in TaskSpec("ctr").to_dict()  # old dicts unchanged
    for bad in ({"behaviour": ""}, {"1x": "a"}, "click", {"a": 3}):
        with pytest.raises(ValueError, match="TaskSpec 'ctr': `facets`"):
            TaskSpec("ctr", facets=bad)
    spec = FeatureSpec(
        features=[CategoricalFeature("item", vocabulary_size=3)],
        tasks=[
            TaskSpec("a", facets={"user_group": "new"}),
            TaskSpec("b", facets={"user_group": "old"}),
            TaskSpec("c", facets={"user_group": "new"}),
        ],
    )
    assert spec.facet_values("user_group") == ["new", "old"]


def test_step_features_name_a_sequence_of_the_same_length():
    clicked = SequenceFeature("clicked", max_length=5, vocabulary_size=9)
    tags = SequenceFeature(
        "tags", max_length=5, vocabulary_size=3, step_of="clicked"
    )
    spec = FeatureSpec(features=[clicked, tags], tasks=[TaskSpec("ctr")])
    assert spec.step_features("clicked") == ["tags"]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    short = SequenceFeature(
        "tags", max_length=4, vocabulary_size=3, step_of="clicked"
    )
    with pytest.raises(
        ValueError, match="step_of='clicked' must name a SequenceFeature"
    ):
        FeatureSpec(features=[clicked, short], tasks=[TaskSpec("ctr")])


def test_bias_features_are_training_inputs_only():
    spec = FeatureSpec(
        features=[
            CategoricalFeature("item", vocabulary_size=3),
            CategoricalFeature("position", vocabulary_size=10, bias=True),
        ],
        tasks=[TaskSpec("ctr")],
    )
    assert spec.input_names == ["item", "position"]
    assert spec.serving_input_names == ["item"]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="every feature is a bias feature"):
        FeatureSpec(features=[spec.features[1]], tasks=[TaskSpec("ctr")])
    with pytest.raises(ValueError, match="`bias` must be"):
        CategoricalFeature("position", vocabulary_size=10, bias="yes")


def test_from_dataframe_marks_bias_columns():
    df = pd.DataFrame(
        {"item": [1, 2, 3], "position": [0, 1, 2], "click": [0, 1, 0]}
    )
    spec = FeatureSpec.from_dataframe(df, ["click"], bias=["position"])
    assert spec.bias_names == ["position"]
    with pytest.raises(ValueError, match="'pos' is not in the DataFrame"):
        FeatureSpec.from_dataframe(df, ["click"], bias=["pos"])
