"""Tests of the SavedModel export: signatures, parity, atomic versions."""

import hashlib
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kmtl.export import ExportVerificationError
from kmtl.export import device_pins
from kmtl.export import export
from kmtl.export import latest_version
from kmtl.export import serving_input_signature
from kmtl.export import synthetic_inputs

VOCABULARY = ["us", "fr", "de"]
OOV = "zz-never-seen"
TASKS = ("ctr", "cvr")


def _inputs():
    return {
        "user_id": keras.Input(shape=(1,), dtype="int64", name="user_id"),
        "price": keras.Input(shape=(3,), dtype="float32", name="price"),
        "country": keras.Input(shape=(1,), dtype="string", name="country"),
        "history": keras.Input(shape=(5,), dtype="int64", name="history"),
    }


def _build_model(inputs=None, extra_layer=None):
    """An id embedding, a dense float, a looked-up string, a sequence."""
    inputs = inputs or _inputs()
    country_ids = keras.layers.StringLookup(
        vocabulary=VOCABULARY, name="country_lookup"
    )(inputs["country"])
    user = keras.layers.Flatten()(
        keras.layers.Embedding(20, 4, name="user_emb")(inputs["user_id"])
    )
    country = keras.layers.Flatten()(
        keras.layers.Embedding(len(VOCABULARY) + 1, 4, name="country_emb")(
            country_ids
        )
    )
    history = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(20, 4, name="item_emb")(inputs["history"])
    )
    hidden = keras.layers.Concatenate()(
        [user, country, history, inputs["price"]]
    )
    hidden = keras.layers.Dense(8, activation="relu", name="shared")(hidden)
    if extra_layer is not None:
        hidden = extra_layer(hidden)
    outputs = {
        task: keras.layers.Dense(1, activation="sigmoid", name=task)(hidden)
        for task in TASKS
    }
    return keras.Model(inputs, outputs)


def _raw_batch(size, seed=0):
    rng = np.random.default_rng(seed)
    countries = np.array(VOCABULARY + [OOV], dtype=object)
    batch = {
        "user_id": rng.integers(0, 20, (size, 1)).astype("int64"),
        "price": rng.normal(size=(size, 3)).astype("float32"),
        "country": rng.choice(countries, (size, 1)),
        "history": rng.integers(0, 20, (size, 5)).astype("int64"),
    }
    batch["country"][0, 0] = OOV
    return batch


def _as_tensors(batch):
    return {name: tf.constant(value) for name, value in batch.items()}


def _predict(model, batch):
    # Keras 3.15's array adapter rejects NumPy string arrays (object, <U
    # and S alike: "Invalid dtype: object"), so predict on tensors.
    return model.predict(_as_tensors(batch), verbose=0)


def _serve(path, batch):
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in signature(**_as_tensors(batch)).items()}


def _assert_same(served, predicted, atol=1e-5):
    assert sorted(served) == sorted(TASKS)
    for task in TASKS:
        assert served[task].shape == predicted[task].shape
        np.testing.assert_allclose(
            served[task], predicted[task], rtol=0, atol=atol
        )


def _tree_digest(path):
    digest = hashlib.sha256()
    for file in sorted(pathlib.Path(path).rglob("*")):
        digest.update(str(file.relative_to(path)).encode())
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _entries(base):
    return sorted(child.name for child in pathlib.Path(base).iterdir())


@pytest.fixture(scope="module")
def model():
    """The test model after a few training steps on raw features."""
    keras.utils.set_random_seed(0)
    model = _build_model()
    model.compile(
        optimizer="adam", loss={task: "binary_crossentropy" for task in TASKS}
    )
    features = _raw_batch(64, seed=1)
    labels = {
        "ctr": (features["price"][:, :1] > 0).astype("float32"),
        "cvr": (features["user_id"] % 2).astype("float32"),
    }
    # String training inputs: object arrays, through tf.data.
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(16)
    model.fit(dataset, epochs=2, shuffle=False, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """One export of the trained model, shared by read-only tests."""
    base = tmp_path_factory.mktemp("exported") / "demo"
    return export(model, base, sample=_raw_batch(8, seed=2))


# === Versions ===


def test_successive_exports_get_versions_1_2_3(model, tmp_path):
    base = tmp_path / "demo"
    assert latest_version(base) is None
    base.mkdir()
    # Names TF Serving would not load are not versions.
    (base / ".kmtl-export-9-abc").mkdir()
    (base / "notes").mkdir()
    (base / "12.bak").mkdir()
    (base / "42").write_text("a file, not a version directory")
    assert latest_version(base) is None

    paths = [export(model, base) for _ in range(3)]

    assert paths == [base / "1", base / "2", base / "3"]
    assert all(isinstance(path, pathlib.Path) for path in paths)
    assert all((path / "saved_model.pb").is_file() for path in paths)
    assert latest_version(base) == 3
    assert _entries(base) == [
        ".kmtl-export-9-abc",
        "1",
        "12.bak",
        "2",
        "3",
        "42",
        "notes",
    ]


def test_version_follows_the_largest_existing_one(model, tmp_path):
    base = tmp_path / "demo"
    (base / "7").mkdir(parents=True)
    (base / "3").mkdir()
    assert latest_version(base) == 7
    assert export(model, base) == base / "8"
    assert latest_version(base) == 8
    assert latest_version(str(base)) == 8


# === Parity and signature ===


def test_served_predictions_match_predict(model, exported):
    for size, seed in ((8, 3), (1, 4), (33, 5)):
        batch = _raw_batch(size, seed=seed)
        _assert_same(_serve(exported, batch), _predict(model, batch))


def test_signature_names_and_dtypes_are_features_and_tasks(exported):
    signature = tf.saved_model.load(str(exported)).signatures["serving_default"]
    args, kwargs = signature.structured_input_signature
    assert args == ()
    assert kwargs == {
        "user_id": tf.TensorSpec((None, 1), tf.int64, name="user_id"),
        "price": tf.TensorSpec((None, 3), tf.float32, name="price"),
        "country": tf.TensorSpec((None, 1), tf.string, name="country"),
        "history": tf.TensorSpec((None, 5), tf.int64, name="history"),
    }
    assert signature.structured_outputs == {
        "ctr": tf.TensorSpec((None, 1), tf.float32, name="ctr"),
        "cvr": tf.TensorSpec((None, 1), tf.float32, name="cvr"),
    }


def test_out_of_vocabulary_string_is_served(model, exported):
    batch = _raw_batch(4, seed=6)
    batch["country"][:, 0] = [OOV, "another-unseen", "", "us"]
    served = _serve(exported, batch)
    _assert_same(served, _predict(model, batch))
    for task in TASKS:
        assert np.all(np.isfinite(served[task]))
    # Unseen strings share the OOV bucket: same country embedding.
    same_rest = {name: value.copy() for name, value in batch.items()}
    for name in ("user_id", "price", "history"):
        same_rest[name][1] = same_rest[name][0]
    served = _serve(exported, same_rest)
    np.testing.assert_array_equal(served["ctr"][0], served["ctr"][1])


def test_no_accelerator_is_pinned(exported):
    pins = device_pins(exported)
    device_types = {
        tf.DeviceSpec.from_string(device).device_type
        for device in pins.values()
    }
    # Only CPU pins: TF's checkpoint save/restore functions, and Keras's
    # StringLookup table lookup (string ops have no GPU kernel).
    assert device_types <= {"CPU"}


def test_saved_model_cli_run_matches_predict(model, exported, tmp_path):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip(f"saved_model_cli not found beside {sys.executable}")
    batch = _raw_batch(5, seed=7)
    # Plain Python literals: the CLI rejects NumPy expressions.
    exprs = ";".join(
        f"{name}={value.tolist()!r}" for name, value in batch.items()
    )
    outdir = tmp_path / "cli_out"
    result = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(exported),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            exprs,
            "--outdir",
            str(outdir),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = {task: np.load(outdir / f"{task}.npy") for task in TASKS}
    _assert_same(served, _predict(model, batch))


def test_helpers_describe_the_signature(model):
    signature = serving_input_signature(model)
    assert list(signature) == ["user_id", "price", "country", "history"]
    batch = synthetic_inputs(model, batch_size=3)
    assert batch["user_id"].dtype == np.int64
    assert batch["price"].shape == (3, 3)
    assert batch["price"].dtype == np.float32
    assert batch["country"].dtype == object
    assert batch["country"].tolist() == [[""], [""], [""]]
    assert batch["history"].shape == (3, 5)


# === Failure safety ===


def test_failed_write_leaves_no_version_and_no_temp(
    model, tmp_path, monkeypatch
):
    base = tmp_path / "demo"
    first = export(model, base)
    before = _tree_digest(first)
    real_save = tf.saved_model.save
    written_to = []

    def save_then_fail(obj, export_dir, *args, **kwargs):
        real_save(obj, export_dir, *args, **kwargs)
        written_to.append(pathlib.Path(export_dir))
        raise OSError("disk full while writing the SavedModel")

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export(model, base)

    # It failed mid-way: files were written into a hidden staging directory
    # beside the target, which TF Serving never loads.
    (staging,) = written_to
    assert staging.parent == base
    assert staging.name.startswith(".")
    assert not staging.name.isdigit()
    assert not staging.exists()
    assert _entries(base) == ["1"]
    assert _tree_digest(first) == before
    assert latest_version(base) == 1


def test_failed_reload_leaves_no_version_and_no_temp(
    model, tmp_path, monkeypatch
):
    base = tmp_path / "demo"
    first = export(model, base)
    before = _tree_digest(first)

    def fail_to_load(*args, **kwargs):
        raise RuntimeError("reload failed")

    monkeypatch.setattr(tf.saved_model, "load", fail_to_load)
    with pytest.raises(RuntimeError, match="reload failed"):
        export(model, base)
    assert _entries(base) == ["1"]
    assert _tree_digest(first) == before


class _SkewedSignatures:
    """A reloaded SavedModel whose `cvr` output is off by `shift` in every
    signature."""

    def __init__(self, loaded, shift):
        self._loaded = loaded
        self._shift = shift

    @property
    def signatures(self):
        return {
            name: self._skewed(real)
            for name, real in self._loaded.signatures.items()
        }

    def _skewed(self, real):
        def serve(**features):
            outputs = dict(real(**features))
            outputs["cvr"] = outputs["cvr"] + self._shift
            return outputs

        return serve


def test_reload_that_serves_other_numbers_is_rejected(
    model, tmp_path, monkeypatch
):
    base = tmp_path / "demo"
    first = export(model, base)
    before = _tree_digest(first)
    real_load = tf.saved_model.load
    monkeypatch.setattr(
        tf.saved_model,
        "load",
        lambda path, *a, **k: _SkewedSignatures(real_load(path, *a, **k), 1e-3),
    )
    with pytest.raises(ExportVerificationError, match="'cvr'.*atol=1e-05"):
        export(model, base)
    assert _entries(base) == ["1"]
    assert _tree_digest(first) == before

    # The same difference passes a looser tolerance.
    assert export(model, base, atol=1e-2) == base / "2"


class _EagerOnlyShift(keras.layers.Layer):
    """Adds 1 when run eagerly only: the traced graph computes otherwise."""

    def call(self, inputs):
        if tf.executing_eagerly():
            return inputs + 1.0
        return inputs


def test_graph_that_computes_differently_is_rejected(tmp_path):
    model = _build_model(extra_layer=_EagerOnlyShift())
    base = tmp_path / "demo"
    with pytest.raises(ExportVerificationError, match="'ctr'"):
        export(model, base, sample=_raw_batch(4))
    assert _entries(base) == []


class _PinnedToGPU(keras.layers.Layer):
    def call(self, inputs):
        with tf.device("/GPU:0"):
            return inputs * 2.0


def test_graph_pinned_to_a_gpu_is_rejected(tmp_path):
    model = _build_model(extra_layer=_PinnedToGPU())
    base = tmp_path / "demo"
    with pytest.raises(ExportVerificationError, match="GPU:0"):
        export(model, base)
    assert _entries(base) == []


# === Bad inputs ===


def _scalar_head(hidden, name="ctr"):
    return keras.layers.Dense(1, activation="sigmoid", name=name)(hidden)


def test_inputs_must_be_a_dict(tmp_path):
    user = keras.Input(shape=(1,), dtype="float32", name="user")
    item = keras.Input(shape=(1,), dtype="float32", name="item")
    hidden = keras.layers.Concatenate()([user, item])
    model = keras.Model([user, item], {"ctr": _scalar_head(hidden)})
    with pytest.raises(ValueError, match="inputs must be a dict"):
        export(model, tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_input_named_unlike_its_key(tmp_path):
    inputs = _inputs()
    inputs["user_id"] = keras.Input(shape=(1,), dtype="int64", name="uid")
    with pytest.warns(UserWarning, match="must match the names"):
        model = _build_model(inputs=inputs)
    with pytest.raises(ValueError, match="'user_id' is named 'uid'"):
        export(model, tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_outputs_must_be_a_dict(tmp_path):
    price = keras.Input(shape=(3,), dtype="float32", name="price")
    model = keras.Model(
        {"price": price}, [_scalar_head(price), _scalar_head(price, "cvr")]
    )
    with pytest.raises(ValueError, match="outputs must be a dict"):
        export(model, tmp_path / "demo")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("drop:price", r"missing the feature\(s\) \['price'\]"),
        ("add:age", r"feature\(s\) \['age'\] that the model does not take"),
        ("price_as_text", r"sample\['price'\].*dtype <U3"),
        ("float_ids", r"sample\['user_id'\].*dtype float64"),
        ("ids_as_country", r"sample\['country'\].*dtype int64"),
        ("wide_price", r"sample\['price'\].*shape \(4, 4\)"),
        ("short_batch", r"same batch size.*'history': 3"),
    ],
)
def test_bad_sample_names_the_feature(model, tmp_path, change, match):
    batch = _raw_batch(4)
    if change == "drop:price":
        del batch["price"]
    elif change == "add:age":
        batch["age"] = np.zeros((4, 1), dtype="int64")
    elif change == "price_as_text":
        batch["price"] = np.full((4, 3), "1.5")
    elif change == "float_ids":
        batch["user_id"] = batch["user_id"].astype("float64")
    elif change == "ids_as_country":
        batch["country"] = np.zeros((4, 1), dtype="int64")
    elif change == "wide_price":
        batch["price"] = np.zeros((4, 4), dtype="float32")
    elif change == "short_batch":
        batch["history"] = batch["history"][:3]
    base = tmp_path / "demo"
    with pytest.raises(ValueError, match=match):
        export(model, base, sample=batch)
    assert not base.exists() or _entries(base) == []


def test_sample_of_compatible_dtypes_is_cast(model, tmp_path):
    batch = _raw_batch(3)
    batch["user_id"] = batch["user_id"].astype("int32")
    batch["history"] = batch["history"].tolist()
    batch["price"] = batch["price"].astype("float64")
    batch["country"] = batch["country"].astype(str)
    assert export(model, tmp_path / "demo", sample=batch).name == "1"
