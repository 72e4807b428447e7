"""Gate and expert inspection: what the gates of a trained model do.

A layer takes part by implementing the gate inspection protocol:

- `named_gate_weights(inputs) -> dict[str, tensor [B, E]]`: computed with
  the layer's own weights on its own input (what it receives in the
  model), one entry per gate. `"task_<k>"` names the gate of task branch
  `k`; `"shared"`, `"routed"` (each row under the gate of its scenario id),
  `"fields"`, `"units"` or `"layer_<i>"` the others.
- optionally `named_gate_masks() -> dict[str, list[int]]`: the experts
  each gate may use (CGC: its own task's and the shared ones); by default
  every expert.

`MMoELayer` (mmoe, omoe), `CGCLayer` (cgc, ple's levels, hinet's task
switcher), `ExpertSelectionLayer` (aesm2), `EPNet` and `PPNetMLP` (pepnet's
`GateNU`s) implement it; any other layer of the model's top level that
does is found the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from kmtl.features.spec import FeatureSpec

ALL_SCENARIOS = "all"
"""The `scenario` of the rows computed over every example."""


def gated_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model` that implement the gate inspection protocol.

    Args:
        model: a functional `keras.Model` (e.g. from `kmtl.build`).

    Returns:
        list of layers with a `named_gate_weights` method, in model order.
    """
    return [
        layer
        for layer in model.layers
        if callable(getattr(layer, "named_gate_weights", None))
    ]


def gate_statistics(
    model: keras.Model,
    data: Any,
    *,
    spec: FeatureSpec | None = None,
    batch_size: int = 4096,
    by_scenario: bool = True,
) -> Any:
    """Mean gate weight per layer x gate x expert, overall and per scenario.

    For the rows `b` of `data` (of a scenario `s`, or all of them) and a
    gate's weights `w[b, e]` over its `E` usable experts, with
    `p[b, e] = w[b, e] / sum_e' w[b, e']` (equal to `w` for softmax gates):

    - `weight[e] = mean_b w[b, e]` (a `GateNU`'s gate values lie in
      `(0, gamma)` and are not normalised);
    - `share[e] = weight[e] / sum_e' weight[e']`;
    - `selection_rate[e] = mean_b [w[b, e] > 0]` (AESM2's top-K
      selection; 1 for softmax gates);
    - `entropy = mean_b -sum_e p[b, e] log p[b, e]` (nats; `log E` for
      a uniform gate, 0 for a gate that picks one expert per row);
    - `utilisation = mean_e [share[e] > 1 / (2 E)]`: the fraction of the
      usable experts that get at least half of a uniform share.

    Args:
        model: a model with gated layers (`gated_layers(model)`), e.g.
            `kmtl.build("mmoe", spec)`.
        data: pandas.DataFrame with the input columns, a dict of input
            arrays (`kmtl.data.features_from_dataframe`), or a
            `tf.data.Dataset` of feature dicts or `(features, ...)` tuples.
        spec: FeatureSpec. Defaults to the one the model's encoder holds.
        batch_size: int. Rows per batch (DataFrames and dicts). Defaults
            to 4096.
        by_scenario: bool. Also compute per-scenario rows when the spec
            has a scenario. Defaults to `True`.

    Returns:
        pandas.DataFrame with one row per layer, gate, scenario and usable
        expert: columns `layer`, `gate` (`"task_<k>"` renamed after
        `spec.tasks[k]`), `scenario` (`"all"` or the scenario's name),
        `expert` (index on the layer's expert axis), `weight`, `share`,
        `selection_rate`, then the gate's `entropy`, `utilisation` and
        `rows` (repeated on each of its experts).

    Raises:
        ValueError: the model has no gated layer, or a DataFrame comes
            without a spec.

    Example:

    ```python
    table = kmtl.inspection.gate_statistics(model, test_df)
    overall = table[table.scenario == "all"]
    overall.pivot(index="gate", columns="expert", values="weight")
    ```
    """
    import pandas as pd

    layers = gated_layers(model)
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no gated layer: no layer implements "
            "`named_gate_weights` (MMoE, OMoE, CGC/PLE, HiNet's task "
            "switcher, AESM2, PEPNet do)."
        )
    spec = spec or _model_spec(model)
    scenario = spec.scenario if (spec is not None and by_scenario) else None
    num_slots = 1 + (scenario.num_scenarios if scenario else 0)
    layer_inputs = [layer.input for layer in layers]
    flat_inputs = keras.tree.flatten(layer_inputs)
    probe = keras.Model(
        model.input, {str(i): t for i, t in enumerate(flat_inputs)}
    )
    totals: dict[tuple[str, str], _GateTotals] = {}
    for features in _batches(data, spec, batch_size, model.name):
        out = probe.predict_on_batch(features)
        inputs = keras.tree.pack_sequence_as(
            layer_inputs, [out[str(i)] for i in range(len(flat_inputs))]
        )
        ids = None
        if scenario is not None:
            ids = np.asarray(features[scenario.name]).reshape(-1)
        for layer, layer_input in zip(layers, inputs, strict=True):
            gates = layer.named_gate_weights(layer_input)
            for gate, weights in gates.items():
                values = keras.ops.convert_to_numpy(weights)
                key = (layer.name, gate)
                if key not in totals:
                    totals[key] = _GateTotals(values.shape[-1], num_slots)
                totals[key].add(values.astype("float64"), ids)
    if not totals:
        raise ValueError(
            f"gate_statistics of model {model.name!r}: `data` holds no rows."
        )
    names = [ALL_SCENARIOS, *(scenario.values if scenario else ())]
    masks = {layer.name: _gate_masks(layer) for layer in layers}
    rows = []
    for (layer, gate), total in totals.items():
        label = _gate_label(gate, spec)
        rows += total.rows(layer, label, names, masks[layer].get(gate))
    return pd.DataFrame(rows, columns=list(COLUMNS))


COLUMNS = (
    "layer",
    "gate",
    "scenario",
    "expert",
    "weight",
    "share",
    "selection_rate",
    "entropy",
    "utilisation",
    "rows",
)
"""The columns of `gate_statistics`."""


def gate_summary(table: Any) -> dict[str, float]:
    """Entropy and largest share of each gate, over all rows: what the
    `GateStatistics` callback logs.

    Args:
        table: pandas.DataFrame from `gate_statistics`.

    Returns:
        dict `"<layer>/<gate>/entropy"` and `"<layer>/<gate>/max_share"`
        -> float.

    Example:

    ```python
    gate_summary(gate_statistics(model, df))
    # {'mmoe/ctr/entropy': 1.21, 'mmoe/ctr/max_share': 0.46, ...}
    ```
    """
    overall = table[table["scenario"] == ALL_SCENARIOS]
    out = {}
    for (layer, gate), group in overall.groupby(["layer", "gate"], sort=False):
        out[f"{layer}/{gate}/entropy"] = float(group["entropy"].iloc[0])
        out[f"{layer}/{gate}/max_share"] = float(group["share"].max())
    return out


class _GateTotals:
    """Running sums of one gate's weights, per scenario slot: slot 0 holds
    every row, slot `1 + s` the rows of scenario `s`."""

    def __init__(self, num_experts: int, num_slots: int) -> None:
        self.weight = np.zeros((num_slots, num_experts))
        self.selected = np.zeros((num_slots, num_experts))
        self.entropy = np.zeros(num_slots)
        self.count = np.zeros(num_slots)

    def add(self, weights: np.ndarray, ids: np.ndarray | None) -> None:
        """Adds a batch of weights `[B, E]` with the rows' scenario ids
        `[B]` (or None)."""
        total = weights.sum(axis=-1, keepdims=True)
        p = weights / np.where(total > 0, total, 1.0)
        logs = np.log(np.where(p > 0, p, 1.0))
        entropy = -np.sum(p * logs, axis=-1)
        selected = (weights > 0).astype("float64")
        self.weight[0] += weights.sum(0)
        self.selected[0] += selected.sum(0)
        self.entropy[0] += entropy.sum()
        self.count[0] += len(weights)
        if ids is not None:
            slots = ids + 1
            np.add.at(self.weight, slots, weights)
            np.add.at(self.selected, slots, selected)
            np.add.at(self.entropy, slots, entropy)
            np.add.at(self.count, slots, 1.0)

    def rows(
        self,
        layer: str,
        gate: str,
        scenario_names: list[str],
        mask: list[int] | None,
    ) -> list[tuple[Any, ...]]:
        """This gate's table rows: one per scenario seen and usable
        expert."""
        usable = np.arange(self.weight.shape[1])
        if mask is not None:
            usable = np.flatnonzero(mask)
        out = []
        for slot, scenario in enumerate(scenario_names):
            count = self.count[slot]
            if count == 0:
                continue
            weight = self.weight[slot, usable] / count
            share = weight / weight.sum()
            utilisation = float(np.mean(share > 0.5 / len(usable)))
            entropy = float(self.entropy[slot] / count)
            selection = self.selected[slot, usable] / count
            for expert, w, s, r in zip(
                usable, weight, share, selection, strict=True
            ):
                out.append(
                    (
                        layer,
                        gate,
                        scenario,
                        int(expert),
                        float(w),
                        float(s),
                        float(r),
                        entropy,
                        utilisation,
                        int(count),
                    )
                )
        return out


def _model_spec(model: keras.Model) -> FeatureSpec | None:
    """The spec of the model's `FeatureEncoder`, if it holds one."""
    from kmtl.export.saved_model import find_spec

    return find_spec(model)


def _batches(
    data: Any, spec: FeatureSpec | None, batch_size: int, model_name: str
) -> Any:
    """Feature dicts of at most `batch_size` rows from `data`."""
    import pandas as pd

    from kmtl.data.pandas import check_features
    from kmtl.data.pandas import features_from_dataframe

    if isinstance(data, (pd.DataFrame, Mapping)):
        if spec is None:
            raise ValueError(
                f"Model {model_name!r} holds no FeatureEncoder; pass "
                "`spec=` to read a DataFrame or a dict of features."
            )
        if batch_size < 1:
            raise ValueError(
                "`batch_size` must be a positive integer. "
                f"Received: batch_size={batch_size}"
            )
        features = (
            features_from_dataframe(data, spec)
            if isinstance(data, pd.DataFrame)
            else check_features(data, spec)
        )
        rows = len(next(iter(features.values())))
        for start in range(0, rows, batch_size):
            yield {
                k: v[start : start + batch_size] for k, v in features.items()
            }
        return
    for element in data:
        yield element[0] if isinstance(element, tuple) else element


def _gate_masks(layer: keras.layers.Layer) -> dict[str, list[int]]:
    """Gate name -> usable experts (0/1), for the layers that say."""
    masks = getattr(layer, "named_gate_masks", None)
    return masks() if callable(masks) else {}


def _gate_label(gate: str, spec: FeatureSpec | None) -> str:
    """`"task_<k>"` as the name of `spec.tasks[k]`; other names as given."""
    prefix = "task_"
    if spec is None or not gate.startswith(prefix):
        return gate
    index = gate[len(prefix) :]
    if index.isdigit() and int(index) < len(spec.tasks):
        return spec.tasks[int(index)].name
    return gate


__all__ = [
    "ALL_SCENARIOS",
    "COLUMNS",
    "gate_statistics",
    "gate_summary",
    "gated_layers",
]
