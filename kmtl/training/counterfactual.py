"""Counterfactual CVR regularisers (IPS and doubly robust) trained through
the CTR and CVR log losses, so that a model keeps its plain outputs.

The estimators of ESCM2 (Wang et al., SIGIR 2022) and Multi-IPW / Multi-DR
(Zhang et al., WWW 2020) need, per impression, the click `o`, the purchase
`y`, the propensity `p` (the CTR tower), the CVR `v` and, for DR, an
imputed error: more than one Keras loss sees (a loss sees one output, its
label and its sample weight), and a training-only output would be served.
So `CounterfactualRegularizer` adds the estimator's *gradient* to the
losses the model already has, exactly:

Write the estimator of one impression as its values in the three cases
`J0` (not clicked), `J10` (clicked, not bought), `J11` (bought), which
need no label. With `J1 = v J11 + (1 - v) J10`, `D1 = J1 - J0` and
`D2 = J11 - J10` (the mixing `p`, `v` held constant),

`J(o, y) = [J0 + p D1] + (o - p) D1 + o (y - v) D2`

holds for every `o, y` in {0, 1}. The first term needs no label (an
`add_loss` of value 0); `o - p = -p (1 - p) dBCE(o, p)/dp` and
`o (y - v) = -v (1 - v) o dBCE(y, v)/dv` are the score functions of the
CTR log loss and of the CVR log loss on clicked rows, so the CTR and CVR
outputs carry `D1` and `D2` in their gradients, with values unchanged.
Keras then logs the CTR loss and the clicked-row CVR log loss; the
gradient is that of `ctr_weight L_CTR + weight mean(J) + ...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config

ESTIMATORS = ("ips", "dr")
_EPSILON = 1e-7


def _log_losses(cvr: Any) -> tuple[Any, Any]:
    """`(e0, e1)`: the CVR log loss of a non-purchase and of a purchase."""
    v = ops.clip(cvr, _EPSILON, 1.0 - _EPSILON)
    return -ops.log(1.0 - v), -ops.log(v)


def case_values(
    estimator: str, propensity: Any, cvr: Any, imputed_error: Any = None
) -> tuple[Any, Any, Any]:
    """The estimator of each impression in its three cases.

    With `e_y = BCE(y, v)` and the propensity `p` (already clipped):

    - `"ips"`: `J = o e_y / p`;
    - `"dr"`: `J = ê + o (e_y - ê) / p + o (e_y - ê)^2 / p` (the doubly
      robust error plus the imputation loss, ESCM2's `L_DR + L_IMP`).

    Args:
        estimator: str. `"ips"` or `"dr"`.
        propensity: tensor `[B, 1]`, the clipped propensity.
        cvr: tensor `[B, 1]`, P(purchase | click).
        imputed_error: tensor `[B, 1]`, the imputed CVR error (DR only).

    Returns:
        `(J0, J10, J11)`: not clicked; clicked, not bought; bought.

    Example:

    ```python
    half = np.full((2, 1), 0.5)
    j0, j10, j11 = case_values("ips", half, half)  # 0, 2 log 2, 2 log 2
    ```
    """
    e0, e1 = _log_losses(cvr)
    if estimator == "ips":
        return ops.zeros_like(e0), e0 / propensity, e1 / propensity
    gap0, gap1 = e0 - imputed_error, e1 - imputed_error
    return (
        imputed_error,
        imputed_error + (gap0 + ops.square(gap0)) / propensity,
        imputed_error + (gap1 + ops.square(gap1)) / propensity,
    )


@keras.saving.register_keras_serializable(package="kmtl")
class CounterfactualRegularizer(keras.layers.Layer):
    """Trains a CVR tower with an IPS or doubly robust counterfactual loss.

    `weight * mean_B(J)`, with `J` the estimator of `case_values` and the
    propensity `p = clip(stop_gradient(pCTR), min_propensity, 1)`, is
    added to the model's gradient (see this module's docstring): the
    returned CTR and CVR equal the inputs, but their gradients carry `J`'s
    under the CTR log loss (`ctr_loss_weight`, every impression) and the
    CVR log loss (`cvr_loss_weight`, clicked rows only: sample weight =
    click), which the model must have. The CVR tower then learns only
    through `J` and what else reaches it (ESCM2's CTCVR), not through its
    own log loss. Outside training it returns its inputs.

    Args:
        estimator: str. `"ips"` or `"dr"`. Defaults to `"ips"`.
        weight: float > 0. The regulariser's weight (ESCM2's lambda_c).
            Defaults to 1.
        ctr_loss_weight: float > 0. The CTR log loss's weight. Defaults
            to 1.
        cvr_loss_weight: float > 0. The clicked-row CVR log loss's weight.
            Defaults to 1.
        min_propensity: float in (0, 1]. The propensity's lower clip;
            1 weighs every click alike (the naive, biased CVR loss).
            Defaults to 0.05.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[ctr, cvr]` (IPS) or `[ctr, cvr, imputed_error]`
            (DR), each `[B, 1]`; `imputed_error >= 0`.
        training: bool or None.

    Returns:
        `[ctr, cvr]`, the same values.

    Example:

    ```python
    layer = kmtl.training.counterfactual.CounterfactualRegularizer("ips")
    ctr, cvr = layer([np.full((4, 1), 0.2), np.full((4, 1), 0.1)])

    ctr_in, cvr_in = keras.Input((1,)), keras.Input((1,))
    ctr, cvr = layer([ctr_in, cvr_in])
    model = keras.Model([ctr_in, cvr_in], {"ctr": ctr, "cvr": cvr})
    ```

    Reference:
        - [Wang et al., 2022](https://arxiv.org/abs/2204.05125) (SIGIR
          2022), ESCM2, section 4.
        - [Zhang et al., 2020](https://arxiv.org/abs/1910.09337) (WWW
          2020), Multi-IPW and Multi-DR.
    """

    def __init__(
        self,
        estimator: str = "ips",
        weight: float = 1.0,
        ctr_loss_weight: float = 1.0,
        cvr_loss_weight: float = 1.0,
        min_propensity: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = "CounterfactualRegularizer: "
        self.estimator = validation.one_of(
            estimator, "estimator", owner, ESTIMATORS
        )
        self.weight = validation.positive_float(weight, "weight", owner)
        self.ctr_loss_weight = validation.positive_float(
            ctr_loss_weight, "ctr_loss_weight", owner
        )
        self.cvr_loss_weight = validation.positive_float(
            cvr_loss_weight, "cvr_loss_weight", owner
        )
        self.min_propensity = validation.positive_float(
            min_propensity, "min_propensity", owner
        )
        if self.min_propensity > 1:
            raise ValueError(
                f"{owner}`min_propensity` must be in (0, 1]. "
                f"Received: min_propensity={min_propensity!r}"
            )

    def build(self, input_shape: Sequence[Any]) -> None:
        count = 3 if self.estimator == "dr" else 2
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != count
        ):
            raise ValueError(
                f"CounterfactualRegularizer({self.estimator!r}) takes "
                f"{count} tensors, [ctr, cvr"
                f"{', imputed_error' if count == 3 else ''}], each [B, 1]. "
                f"Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs: Sequence[Any], training: bool | None = None) -> Any:
        ctr, cvr = inputs[0], inputs[1]
        if not training:
            return [ctr, cvr]
        sg = ops.stop_gradient
        p, v = sg(ctr), sg(cvr)
        propensity = ops.clip(p, self.min_propensity, 1.0)
        imputed = inputs[2] if self.estimator == "dr" else None
        j0, j10, j11 = case_values(self.estimator, propensity, cvr, imputed)
        clicked = v * j11 + (1.0 - v) * j10
        d1, d2 = clicked - j0, j11 - j10
        mean_part = j0 + p * d1
        self.add_loss(self.weight * ops.mean(mean_part - sg(mean_part)))
        ctr_scale = -p * (1.0 - p) * (self.weight / self.ctr_loss_weight)
        cvr_scale = -v * (1.0 - v) * (self.weight / self.cvr_loss_weight)
        return [
            ctr + ctr_scale * (d1 - sg(d1)),
            v + cvr_scale * (d2 - sg(d2)),
        ]

    def compute_output_shape(self, input_shape: Sequence[Any]) -> list[Any]:
        return [input_shape[0], input_shape[1]]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, CounterfactualRegularizer))
        return config


__all__ = ["ESTIMATORS", "CounterfactualRegularizer", "case_values"]
