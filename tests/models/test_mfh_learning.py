"""MFH and H-MTL follow a small user group that a flat MMoE cannot (slow).

Data: `make_faceted`, whose new users (10 % of rows, about 8k of 80k
training rows, never seen again at test) reverse the regular users' signal
weights and price effect. The group reaches every model only as the
scenario column (`group_id`), not as an embedded feature, so the test
measures each model's group mechanism: MFH and H-MTL route each group to
its own towers and train them on its own rows (new users' rows also train
the regular users' tasks, the paper's rule); the flat MMoE (the paper's
baseline, tasks `click` and `purchase` over every row) pools the groups
and follows the regular users.

Measured (80k rows, 3 epochs, batch 512, default hparams; new / regular
AUC of the served `click` and `purchase` outputs; oracle = the true
probabilities): oracle click 0.907 / 0.903, purchase 0.857 / 0.844; mfh
click 0.882 / 0.880, purchase 0.812 / 0.808; hmtl click 0.880 / 0.884,
purchase 0.820 / 0.808; flat mmoe click 0.464 / 0.883, purchase 0.510 /
0.815 (0.37 / 0.43 on new users in a 60k-row run: it follows no law of
theirs). So MFH and H-MTL must beat the flat MMoE on new users by 0.2 on
both behaviours (measured: 0.42 on click, 0.30 on purchase) and come
within 0.04 (click) and 0.06 (purchase, the rarer label; measured up to
0.045) of the oracle on every group.

With the group also embedded as a feature of every model (not tested
here: `faceted_spec`, same rows), the flat MMoE learns the interaction as
well as the trees: new-user click / purchase AUC 0.884 / 0.821 for MMoE,
0.881 / 0.820 for MFH, 0.882 / 0.818 for H-MTL. The margin above is the
group mechanism's (routing, per-group towers and training rule), not a
gain of the tree over a flat model that sees the group.
"""

import keras
import numpy as np
import pytest

import kmtl
from kmtl.data import to_dataset
from kmtl.data.facets import faceted_tasks
from kmtl.data.facets import make_faceted
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.training.metrics import roc_auc

pytestmark = pytest.mark.slow

MARGIN_OVER_FLAT = 0.2
MARGIN_TO_ORACLE = {"click": 0.04, "purchase": 0.06}
BEHAVIOURS = ("click", "purchase")


def _draw(rows, seed):
    df, truth = make_faceted(rows, seed=seed)
    return df.assign(
        group_id=(df.user_group == "regular").astype("int64")
    ), truth


@pytest.fixture(scope="module")
def data():
    train, _ = _draw(80_000, seed=0)
    test, truth = _draw(40_000, seed=1)
    spec = FeatureSpec.from_dataframe(
        train,
        labels=list(BEHAVIOURS),
        scenario="group_id",
        scenario_values=["new", "regular"],
        exclude=["user_group"],
        embedding_dim=8,
    )
    spec = spec.replace(
        features=[f for f in spec.features if f.name != "group_id"],
        tasks=faceted_tasks(),
    )
    groups = {
        "new": (test.user_group == "new").to_numpy(),
        "regular": (test.user_group == "regular").to_numpy(),
    }
    return train, test, truth, spec, groups


def _aucs(test, predictions, groups):
    return {
        (behaviour, group): roc_auc(
            test[behaviour].to_numpy()[rows],
            np.ravel(predictions[behaviour])[rows],
        )
        for behaviour in BEHAVIOURS
        for group, rows in groups.items()
    }


_CACHE = {}


def _trained_aucs(name, data):
    """AUC per (behaviour, group) of `name`'s served behaviour outputs."""
    if name not in _CACHE:
        train, test, _, spec, groups = data
        if name == "mmoe":
            spec = spec.replace(
                tasks=[TaskSpec(b, label=b) for b in BEHAVIOURS]
            )
            hparams = {}
        else:
            hparams = dict(
                group_column="group_id", group_inclusion={"new": ["regular"]}
            )
        keras.utils.set_random_seed(0)
        model = kmtl.build(name, spec, **hparams)
        model.fit(
            to_dataset(train, spec, batch_size=512, shuffle=True, seed=0),
            epochs=3,
            verbose=0,
        )
        predictions = model.predict(
            to_dataset(test, spec, batch_size=4096, with_labels=False),
            verbose=0,
        )
        _CACHE[name] = _aucs(test, predictions, groups)
    return _CACHE[name]


def test_flat_mmoe_misses_the_small_group(data):
    # The baseline the faceted models are measured against: near the oracle
    # on regular users, far from it on new users (measured 0.02 and 0.44
    # below it on click).
    _, test, truth, _, groups = data
    oracle = _aucs(test, truth, groups)
    flat = _trained_aucs("mmoe", data)
    assert flat["click", "regular"] > oracle["click", "regular"] - 0.04
    assert flat["click", "new"] < oracle["click", "new"] - 0.3


@pytest.mark.parametrize("name", ["mfh", "hmtl"])
def test_faceted_model_follows_the_small_group(name, data):
    _, test, truth, _, groups = data
    oracle = _aucs(test, truth, groups)
    flat = _trained_aucs("mmoe", data)
    auc = _trained_aucs(name, data)
    report = {"oracle": oracle, "flat": flat, name: auc}
    for behaviour in BEHAVIOURS:
        key = (behaviour, "new")
        assert auc[key] > flat[key] + MARGIN_OVER_FLAT, report
        for group in groups:
            key = (behaviour, group)
            assert auc[key] > oracle[key] - MARGIN_TO_ORACLE[behaviour], report
