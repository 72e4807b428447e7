"""Losses, metrics, compile arguments, optimizers and evaluation."""

from kmtl.training.balancing import PLEWeightSchedule
from kmtl.training.balancing import balance
from kmtl.training.callbacks import EpochCheckpoint
from kmtl.training.callbacks import NonFiniteLossError
from kmtl.training.callbacks import StopOnNonFiniteLoss
from kmtl.training.callbacks import resumable_callbacks
from kmtl.training.compile import compile_args
from kmtl.training.evaluate import evaluate
from kmtl.training.fused_adam import FusedAdam
from kmtl.training.gate_callback import GateStatistics
from kmtl.training.lazy_adam import LazyAdam
from kmtl.training.predict import predict

__all__ = [
    "EpochCheckpoint",
    "FusedAdam",
    "GateStatistics",
    "LazyAdam",
    "NonFiniteLossError",
    "PLEWeightSchedule",
    "StopOnNonFiniteLoss",
    "balance",
    "compile_args",
    "evaluate",
    "predict",
    "resumable_callbacks",
]
