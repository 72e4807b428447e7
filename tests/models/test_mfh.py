"""MFH and H-MTL: the battery on a small faceted log, the tree of
switchers, group routing, the training rule, and the group layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmtl
from kmtl.data import features_from_dataframe
from kmtl.data import labels_from_dataframe
from kmtl.data.facets import faceted_spec
from kmtl.data.facets import faceted_tasks
from kmtl.data.facets import make_faceted
from kmtl.features.spec import TaskSpec
from kmtl.layers.group_gradient_gate import GroupGradientGate
from kmtl.layers.group_membership import GroupMembership
from kmtl.layers.group_router import GroupRouter
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import raw_tensors
from kmtl.testing import run_model_test
from kmtl.testing import to_numpy

TINY = dict(
    expert_units=(8,),
    node_units=(8,),
    tower_units=(8,),
    group_inclusion={"new": ["regular"]},
)
BAD_HPARAMS = [
    (dict(switchers=["cgc"]), "one switcher per level"),
    (dict(switchers=["cgc", "nope", "cgc"]), r"switchers\[1\]"),
    (dict(group_inclusion={"old": ["new"]}), r"names user groups \['old'\]"),
    (dict(group_inclusion=["new"]), "must map a user group"),
    (dict(default_group="vip"), r"`default_group` names user groups"),
    (dict(task_tower_units={"click": (4,)}), "not tasks with a tower"),
    (dict(group_column="item_id2"), "categorical feature 'item_id2'"),
    (dict(facets=["behaviour"]), "the group facet 'user_group'"),
    (dict(expert_units=()), "expert_units"),
]
NO_FACETS = [
    (
        dict(tasks=[TaskSpec("click", label="click"), TaskSpec("buy")]),
        "no task of the spec has facets",
    ),
    (
        dict(
            tasks=[
                TaskSpec("a", label="click", facets={"user_group": "new"}),
                TaskSpec("b", label="click", facets={"behaviour": "click"}),
                TaskSpec("c", label="click", facets={"device": "ios"}),
            ]
        ),
        r"task 'a' has facets \['user_group'\]",
    ),
]


@pytest.fixture(scope="module")
def faceted_small():
    df, truth = make_faceted(3000, seed=11)
    return df, truth, faceted_spec(df, embedding_dim=4)


@pytest.mark.parametrize(
    "name", ["mfh", pytest.param("hmtl", marks=pytest.mark.slow)]
)
def test_model_battery(name, faceted_small):
    # One behaviour (two groups, one routed output) keeps the graph, and
    # the battery's tracing, small.
    df, _, spec = faceted_small
    spec = spec.replace(tasks=faceted_tasks(behaviours=["click"]))
    keras.backend.clear_session()
    run_model_test(
        name,
        df,
        spec,
        TINY,
        bad_hparams=BAD_HPARAMS,
        bad_specs=NO_FACETS,
    )


@pytest.mark.slow
def test_model_battery_with_the_group_as_scenario(faceted_small):
    # The group column is the scenario, not an embedded feature: each
    # `scenario_<group>` signature serves that group.
    df, _, _ = faceted_small
    df = df.assign(group_id=(df.user_group == "regular").astype("int64"))
    spec = kmtl.FeatureSpec.from_dataframe(
        df,
        labels=["click", "purchase"],
        scenario="group_id",
        scenario_values=["new", "regular"],
        exclude=["user_group"],
        embedding_dim=4,
    )
    spec = spec.replace(
        features=[f for f in spec.features if f.name != "group_id"],
        tasks=faceted_tasks(behaviours=["click"]),
    )
    keras.backend.clear_session()
    model = run_model_test(
        "mfh", df, spec, {**TINY, "group_column": "group_id"}
    )
    out = model.predict_on_batch(raw_tensors(df[:32], spec))
    new = (df.group_id[:32] == 0).to_numpy()[:, None]
    np.testing.assert_array_equal(
        out["click"], np.where(new, out["click_new"], out["click_regular"])
    )


def _switchers(model):
    return sorted(
        layer.name for layer in model.layers if layer.name.endswith("switcher")
    )


def test_trees(faceted_small):
    _, _, spec = faceted_small
    mfh = kmtl.build("mfh", spec, **TINY)
    assert _switchers(mfh) == [
        "behaviour_click_switcher",
        "behaviour_purchase_switcher",
        "behaviour_switcher",
        "root_switcher",
        "user_group_new_switcher",
        "user_group_regular_switcher",
        "user_group_switcher",
    ]
    assert type(mfh.get_layer("root_switcher")).__name__ == "SharedBottomLayer"
    assert type(mfh.get_layer("behaviour_switcher")).__name__ == "CGCLayer"
    # Each task tower combines one path per facet: 2 x 8 wide.
    paths = mfh.get_layer("behaviour_click__user_group_new_paths")
    assert tuple(paths.output.shape) == (None, 16)
    hmtl = kmtl.build("hmtl", spec, facets=["user_group", "behaviour"], **TINY)
    assert _switchers(hmtl) == [
        "root_switcher",
        "user_group_new_switcher",
        "user_group_regular_switcher",
    ]
    assert "user_group_new__behaviour_click_paths" not in [
        layer.name for layer in hmtl.layers
    ]


def test_three_facets_any_switchers_and_heterogeneous_towers(faceted_small):
    df, _, spec = faceted_small
    tasks = [
        TaskSpec(
            f"{b}_{g}_{d}",
            label=b,
            facets={"behaviour": b, "user_group": g, "device": d},
        )
        for b in ("click", "purchase")
        for g in ("new", "regular")
        for d in ("ios", "web")
    ]
    spec3 = spec.replace(tasks=tasks)
    model = kmtl.build(
        "mfh",
        spec3,
        switchers=["mmoe", "omoe", "shared_bottom", "cgc"],  # 3 facets + 1
        task_tower_units={"click_new_ios": (4,), "purchase_new_web": ()},
        **{k: v for k, v in TINY.items() if k != "group_inclusion"},
    )
    # A task is reached from its three two-facet nodes.
    paths = model.get_layer("behaviour_click__device_ios__user_group_new_paths")
    assert tuple(paths.output.shape) == (None, 24)
    assert model.get_layer("click_new_ios_tower").units == (4,)
    assert model.get_layer("click_new_web_tower").units == (8,)
    with pytest.raises(ValueError):
        model.get_layer("purchase_new_web_tower")
    out = model.predict_on_batch(raw_tensors(df[:16], spec3))
    assert sorted(out) == sorted(t.name for t in tasks)


def test_routed_outputs_serve_the_rows_group(faceted_small):
    df, _, spec = faceted_small
    model = kmtl.build("mfh", spec, default_group="regular", **TINY)
    rows = df[:64].copy()
    rows.loc[rows.index[:4], "user_group"] = ["", "vip", "new", "regular"]
    out = model.predict_on_batch(raw_tensors(rows, spec))
    group = rows.user_group.where(rows.user_group == "new", "regular")
    for behaviour in ("click", "purchase"):
        expected = np.where(
            (group == "new").to_numpy()[:, None],
            out[f"{behaviour}_new"],
            out[f"{behaviour}_regular"],
        )
        np.testing.assert_array_equal(out[behaviour], expected)
    assert not np.allclose(out["click_new"], out["click_regular"])


def test_routed_task_needs_every_group(faceted_small):
    _, _, spec = faceted_small
    tasks = [t for t in spec.tasks if t.name != "purchase_regular"]
    with pytest.raises(ValueError, match="routed task 'purchase' needs"):
        kmtl.build("mfh", spec.replace(tasks=tasks))


def _gradients(model, spec, rows, output):
    """Gradient of the summed BCE of `output` on `rows`, per weight."""
    x = raw_tensors(rows, spec)
    y = tf.constant(rows[spec.task(output).label].to_numpy("float32"))[:, None]
    with tf.GradientTape() as tape:
        p = model(x, training=True)[output]
        loss = tf.reduce_sum(keras.losses.binary_crossentropy(y, p))
    return dict(
        zip(
            [w.path for w in model.trainable_weights],
            tape.gradient(loss, model.trainable_weights),
            strict=True,
        )
    )


def test_training_rule_is_per_task_sample_weights(faceted_small):
    df, _, spec = faceted_small
    keras.utils.set_random_seed(1)
    model = kmtl.build("mfh", spec, **TINY)  # new users' rows train new
    new = df[df.user_group == "new"][:64]
    regular = df[df.user_group == "regular"][:64]
    # Regular rows send no gradient to a new-user task.
    grads = _gradients(model, spec, regular, "click_new")
    assert all(g is None or not np.any(to_numpy(g)) for g in grads.values())
    assert any(
        g is not None and np.any(to_numpy(g))
        for g in _gradients(model, spec, new, "click_new").values()
    )
    # The gradient on a mixed batch is that of sample weights 1[group].
    mixed = df[:128]
    inner = keras.Model(
        model.input, model.get_layer("click_new_prediction").output
    )
    x = raw_tensors(mixed, spec)
    y = tf.constant(mixed.click.to_numpy("float32"))[:, None]
    weight = tf.constant((mixed.user_group == "new").to_numpy("float32"))
    with tf.GradientTape(persistent=True) as tape:
        gated = keras.losses.binary_crossentropy(y, model(x)["click_new"])
        weighted = weight * keras.losses.binary_crossentropy(y, inner(x))
        gated, weighted = tf.reduce_mean(gated), tf.reduce_mean(weighted)
    for a, b in zip(
        tape.gradient(gated, model.trainable_weights),
        tape.gradient(weighted, model.trainable_weights),
        strict=True,
    ):
        if a is None or b is None:
            assert a is None or not np.any(to_numpy(a))
            continue
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


def test_inclusion_lets_new_rows_train_the_regular_tasks(faceted_small):
    df, _, spec = faceted_small
    new = df[df.user_group == "new"][:64]
    for inclusion, trains in (({"new": ["regular"]}, True), ({}, False)):
        model = kmtl.build(
            "mfh", spec, **{**TINY, "group_inclusion": inclusion}
        )
        grads = _gradients(model, spec, new, "click_regular")
        tower = [p for p in grads if p.startswith("click_regular_tower")]
        assert tower
        assert all(np.any(to_numpy(grads[p])) == trains for p in tower)


def test_fit_on_the_plain_dataset_applies_the_rule(faceted_small):
    # Trained on regular rows only (and no inclusion rule), the new users'
    # tower keeps its initial weights.
    df, _, spec = faceted_small
    spec = spec.replace(tasks=[t for t in spec.tasks if t.label == "click"])
    model = kmtl.build(
        "hmtl",
        spec,
        switchers=["shared_bottom", "shared_bottom"],
        **{k: v for k, v in TINY.items() if k != "group_inclusion"},
    )
    new_tower = model.get_layer("click_new_tower")
    regular_tower = model.get_layer("click_regular_tower")
    before = {
        t.name: [to_numpy(w).copy() for w in t.weights]
        for t in (new_tower, regular_tower)
    }
    regular = df[df.user_group == "regular"][:1024]
    model.fit(kmtl.data.to_dataset(regular, spec, batch_size=256), verbose=0)
    for b, w in zip(before["click_new_tower"], new_tower.weights, strict=True):
        np.testing.assert_array_equal(b, to_numpy(w))
    assert not np.array_equal(
        before["click_regular_tower"][0], to_numpy(regular_tower.weights[0])
    )


def test_integer_group_column(faceted_small):
    df, _, spec = faceted_small
    rows = df.assign(segment=(df.user_group == "regular").astype("int64"))
    tasks = [
        TaskSpec(f"click_{s}", label="click", facets={"b": "click", "seg": s})
        for s in ("0", "1")
    ] + [TaskSpec("click", label="click", facets={"b": "click"}, weight=0.0)]
    spec_int = kmtl.FeatureSpec.from_dataframe(
        rows.drop(columns="purchase"), labels=["click"], embedding_dim=4
    ).replace(tasks=tasks)
    model = kmtl.build(
        "mfh",
        spec_int,
        group_facet="seg",
        group_column="segment",
        **{k: v for k, v in TINY.items() if k != "group_inclusion"},
    )
    out = model.predict_on_batch(raw_tensors(rows[:32], spec_int))
    segment = rows.segment[:32].to_numpy()[:, None]
    np.testing.assert_array_equal(
        out["click"], np.where(segment == 0, out["click_0"], out["click_1"])
    )
    labels, _ = labels_from_dataframe(rows[:32], spec_int.tasks)
    assert sorted(labels) == ["click", "click_0", "click_1"]
    assert features_from_dataframe(rows[:32], spec_int)["segment"].dtype == (
        "int64"
    )


# === The group layers ===

MEMBERSHIP = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], "float32")
P = [np.full((4, 2), v, "float32") for v in (0.1, 0.5, 0.9)]


class TestGroupMembership(LayerTestCase):
    layer_cls = GroupMembership
    batteries = {
        "integer_ids": LayerBattery(
            {"groups": ("0", "7"), "default_group": "7", "integer_ids": True},
            np.array([0, 7, 3, -1], "int64"),
            (4, 2),
            expected_num_weights=(0, 0),
            run_training_check=False,
        )
    }
    invalid_args = [
        ({"groups": ("a", "a")}, "distinct"),
        ({"groups": ("a", "b"), "default_group": "c"}, "default_group"),
        ({"groups": ("a",), "integer_ids": True}, "decimal ids"),
        ({"groups": []}, "`groups` must be a non-empty list"),
    ]

    def test_strings_and_default_group(self):
        layer = GroupMembership(["new", "regular"], default_group="regular")
        raw = np.array([["new"], ["regular"], [""], ["vip"]], dtype=object)
        np.testing.assert_array_equal(
            to_numpy(layer(tf.constant(raw))),
            [[1, 0], [0, 1], [0, 1], [0, 1]],
        )

    def test_integer_ids(self):
        layer = GroupMembership(["0", "7"], integer_ids=True)
        out = to_numpy(layer(np.array([7, 0, 5], "int64")))
        np.testing.assert_array_equal(out, [[0, 1], [1, 0], [1, 0]])


class TestGroupRouter(LayerTestCase):
    layer_cls = GroupRouter
    batteries = {
        "three_groups": LayerBattery(
            {}, [MEMBERSHIP, *P], (4, 2), expected_num_weights=(0, 0)
        )
    }

    def test_selects_the_rows_group(self):
        out = to_numpy(GroupRouter()([MEMBERSHIP, *P]))
        np.testing.assert_array_equal(
            out[:, 0], np.float32([0.1, 0.5, 0.9, 0.5])
        )

    def test_shapes_are_checked(self):
        with pytest.raises(ValueError, match="G predictions"):
            GroupRouter()([MEMBERSHIP, *P[:2]])


class TestGroupGradientGate(LayerTestCase):
    layer_cls = GroupGradientGate
    batteries = {
        "two_of_three": LayerBattery(
            {"trained_by": (0, 2)},
            [P[1], MEMBERSHIP],
            (4, 2),
            expected_num_weights=(0, 0),
        )
    }
    invalid_args = [
        ({"trained_by": ()}, "non-empty list"),
        ({"trained_by": (1, 1)}, "distinct"),
        ({"trained_by": (-1,)}, ">= 0"),
    ]

    def test_forward_is_identity_and_gradient_is_gated(self):
        x = tf.Variable(P[2])
        with tf.GradientTape() as tape:
            y = GroupGradientGate([0, 2])([x, MEMBERSHIP])
            loss = tf.reduce_sum(y)
        np.testing.assert_array_equal(to_numpy(y), P[2])
        grad = to_numpy(tape.gradient(loss, x))
        np.testing.assert_array_equal(grad[:, 0], [1.0, 0.0, 1.0, 0.0])

    def test_index_beyond_the_groups(self):
        with pytest.raises(ValueError, match="indexes the 3 columns"):
            GroupGradientGate([3])([P[0], MEMBERSHIP])
