"""What multi-scenario builders share: the scenario requirement and the
scenario context vector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import ScenarioSpec


def require_scenario(model: str, spec: FeatureSpec) -> ScenarioSpec:
    """The spec's ScenarioSpec, or a ValueError naming the model.

    Args:
        model: str. The model name, for the message.
        spec: FeatureSpec.

    Returns:
        `spec.scenario`.
    """
    if spec.scenario is None:
        raise ValueError(
            f"Model {model!r} is a multi-scenario model: its FeatureSpec "
            "needs a ScenarioSpec (`FeatureSpec(..., scenario=ScenarioSpec("
            "column, values=[...]))` or `from_dataframe(..., scenario="
            "column)`). Received a spec without one."
        )
    return spec.scenario


def scenario_context(
    spec: FeatureSpec, encoded: Mapping[str, Any], dim: int | None = None
) -> Any:
    """Embeddings of the scenario and of its hierarchy levels, concatenated:
    the context that scenario-aware gates and auxiliary networks read.

    Args:
        spec: FeatureSpec with a scenario.
        encoded: the `FeatureEncoder` output (`"scenario"`, `"levels"`).
        dim: int. Width of each embedding. Defaults to
            `spec.embedding_dim`.

    Returns:
        `[B, dim * (1 + number of levels)]`.
    """
    scenario = spec.scenario
    dim = dim or spec.embedding_dim
    parts = [
        keras.layers.Embedding(
            scenario.num_scenarios, dim, name="scenario_embedding"
        )(encoded["scenario"])
    ]
    for i, (column, size) in enumerate(
        zip(scenario.level_names, scenario.level_sizes, strict=True)
    ):
        parts.append(
            keras.layers.Embedding(size, dim, name=f"{column}_embedding")(
                encoded["levels"][:, i]
            )
        )
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(name="scenario_context")(parts)
