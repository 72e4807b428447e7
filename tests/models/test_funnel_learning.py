"""ESM2 and ESCM2 on the purchase funnel (slow): each output near its
oracle AUC, and the entire-space CVR better than ESMM's.

The entire-space CVR is the post-click `cvr` output scored on every test
impression, clicked or not, against the true P(purchase | click) of
`kmtl.data.make_funnel`: an AUC with soft labels (each impression is a
positive of weight p and a negative of weight 1 - p), whose oracle (the
truth itself) is 0.700. `make_funnel`'s clicks are anti-selected on the
items' conversion appeal (`selection_bias=1`): clicked rows convert at
0.098 against 0.118 over all impressions.

Measured (100k or 200k training rows, towers (64, 32), embeddings 8,
batch 512, Adam 1e-3, seeds 0-3), soft entire-space CVR AUC:

- one pass over 200k rows (ESCM2's setting: how the selection-biased
  clicks are weighted): ESMM 0.6483-0.6543, ESCM2-IPS 0.6600-0.6615
  (+0.007 to +0.012 over ESMM on every seed), ESCM2-DR 0.6568-0.6609
  (+0.006 to +0.009), and the same regulariser without the propensity
  (`min_propensity=1`, every click weighed alike) 0.6533-0.6572: the
  inverse propensity itself adds +0.004 to +0.007;
- each model trained to its best validation loss (ESM2's setting: the
  denser DAction labels; 100k rows, at most 8 epochs): ESMM 0.6553 /
  0.6608, ESM2 0.6677 / 0.6676 (seeds 0 / 2). In one pass ESM2 is only
  +0.001 to +0.005 over ESMM (its DAction tower learns through
  pCTR x pAVR, as slowly as ESMM's CVR), and trained to convergence
  ESCM2 no longer beats ESMM here (its IPS loss overfits the rare,
  heavily weighted clicks): each claim is tested where it holds.

The margins below sit between what each model reaches and what ESMM
reaches (mean of seeds 0 and 2); an untrained model sits near 0.5.
"""

import functools

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import kmtl
from kmtl.data import to_dataset
from kmtl.data.funnel import make_funnel
from kmtl.data.funnel import true_probabilities
from kmtl.data.funnel import truth_column
from kmtl.training.metrics import evaluate_predictions

SEEDS = (0, 2)
HPARAMS = dict(tower_units=(64, 32))
#: Largest gap to the oracle AUC measured per truth column, plus slack.
ORACLE_MARGIN = {
    "p_click": 0.015,
    "p_daction_given_click": 0.07,
    "p_ctavr": 0.035,
    "p_purchase_given_click": 0.06,
    "p_ctcvr": 0.04,
}
ENTIRE_SPACE_MARGIN = 0.06
#: Least gain over ESMM's entire-space CVR AUC (mean of SEEDS).
GAIN_OVER_ESMM = {"esm2": 0.004, "escm2": 0.004, "escm2_dr": 0.003}
#: (registered name, hparams, spec, protocol) of each model compared.
MODELS = {
    "esmm": ("esmm", {}, "two_tasks", None),
    "esm2": ("esm2", {}, "three_tasks", "converged"),
    "escm2": ("escm2", {}, "two_tasks", "one_pass"),
    "escm2_dr": ("escm2", {"estimator": "dr"}, "two_tasks", "one_pass"),
}


def soft_auc(truth, scores):
    """AUC of `scores` against the true probabilities `truth`."""
    n = len(truth)
    labels = np.r_[np.ones(n), np.zeros(n)]
    return roc_auc_score(
        labels, np.r_[scores, scores], sample_weight=np.r_[truth, 1 - truth]
    )


@functools.cache
def funnel(seed, rows):
    """Train, validation and test logs of one seed, and their specs."""
    train, _ = make_funnel(rows, seed=seed)
    valid, _ = make_funnel(20_000, seed=200 + seed)
    test, truth = make_funnel(40_000, seed=100 + seed)
    specs = {
        "three_tasks": kmtl.FeatureSpec.from_dataframe(
            train,
            labels={"ctr": "click", "avr": "daction", "cvr": "purchase"},
            sample_spaces={"avr": "ctr", "cvr": "ctr"},
            embedding_dim=8,
        ),
        "two_tasks": kmtl.FeatureSpec.from_dataframe(
            train,
            labels={"ctr": "click", "cvr": "purchase"},
            sample_spaces={"cvr": "ctr"},
            exclude=["daction"],
            embedding_dim=8,
        ),
    }
    return train, valid, test, truth, specs


@functools.cache
def trained(key, protocol, seed):
    """Test predictions and output tasks of model `key` trained with
    `protocol`: `"one_pass"` (one epoch over 200k rows) or `"converged"`
    (100k rows, up to 8 epochs, the best validation loss)."""
    rows = 200_000 if protocol == "one_pass" else 100_000
    train, valid, test, _, specs = funnel(seed, rows)
    name, hparams, spec_name, _ = MODELS[key]
    spec = specs[spec_name]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = kmtl.build(name, spec, **HPARAMS, **hparams)
    data = to_dataset(train, spec, batch_size=512, shuffle=True, seed=seed)
    if protocol == "one_pass":
        model.fit(data, epochs=1, verbose=0)
    else:
        model.fit(
            data,
            epochs=8,
            validation_data=to_dataset(valid, spec, batch_size=4096),
            callbacks=[
                keras.callbacks.EarlyStopping(
                    patience=1, restore_best_weights=True
                )
            ],
            verbose=0,
        )
    predictions = model.predict(
        to_dataset(test, spec, with_labels=False, batch_size=4096), verbose=0
    )
    return predictions, model.tasks


def entire_space_auc(key, protocol, seed):
    predictions, _ = trained(key, protocol, seed)
    rows = 200_000 if protocol == "one_pass" else 100_000
    truth = funnel(seed, rows)[3]["p_purchase_given_click"].to_numpy()
    return soft_auc(truth, predictions["cvr"].ravel())


@pytest.mark.slow
@pytest.mark.parametrize("key", ["esm2", "escm2", "escm2_dr"])
def test_outputs_reach_the_oracle(key):
    protocol = MODELS[key][3]
    predictions, tasks = trained(key, protocol, SEEDS[0])
    rows = 200_000 if protocol == "one_pass" else 100_000
    _, _, test, truth, _ = funnel(SEEDS[0], rows)
    got = evaluate_predictions(test, predictions, tasks).set_index("task")
    oracle = evaluate_predictions(
        test, true_probabilities(truth, tasks), tasks
    ).set_index("task")
    for task in tasks:
        gap = oracle.auc[task.name] - got.auc[task.name]
        margin = ORACLE_MARGIN[truth_column(task)]
        assert gap <= margin, (
            f"{key}/{task.name}: AUC {got.auc[task.name]:.4f}, oracle "
            f"{oracle.auc[task.name]:.4f}, gap {gap:.4f} > {margin}"
        )
    entire = truth["p_purchase_given_click"].to_numpy()
    gap = soft_auc(entire, entire) - entire_space_auc(key, protocol, SEEDS[0])
    assert gap <= ENTIRE_SPACE_MARGIN, f"{key}: entire-space CVR gap {gap:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("key", ["esm2", "escm2", "escm2_dr"])
def test_entire_space_cvr_beats_esmm(key):
    protocol = MODELS[key][3]
    gains = [
        entire_space_auc(key, protocol, seed)
        - entire_space_auc("esmm", protocol, seed)
        for seed in SEEDS
    ]
    assert np.mean(gains) >= GAIN_OVER_ESMM[key], (
        f"{key} vs esmm ({protocol}): entire-space CVR AUC gains "
        f"{np.round(gains, 4).tolist()}, mean below {GAIN_OVER_ESMM[key]}"
    )
