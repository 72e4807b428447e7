"""kmtl's neural layers: each one usable alone in any Keras 3 model."""

from kmtl.layers.aesm2 import ExpertSelectionLayer
from kmtl.layers.aitm import AdaptiveInformationTransfer
from kmtl.layers.aitm import BehavioralExpectationCalibrator
from kmtl.layers.bias_tower import BiasTower
from kmtl.layers.cgc import CGCLayer
from kmtl.layers.consistency_bound import ConsistencyBound
from kmtl.layers.cross import CrossNet
from kmtl.layers.dselect_k import DSelectKGate
from kmtl.layers.dselect_k import DSelectKLayer
from kmtl.layers.epnet import EPNet
from kmtl.layers.expert_mixture import ExpertMixture
from kmtl.layers.experts import Experts
from kmtl.layers.gate_nu import GateNU
from kmtl.layers.gates import MixtureGate
from kmtl.layers.group_gradient_gate import GroupGradientGate
from kmtl.layers.group_membership import GroupMembership
from kmtl.layers.group_router import GroupRouter
from kmtl.layers.hinet import ScenarioExtractionLayer
from kmtl.layers.lhuc import LHUC
from kmtl.layers.missing_value import MissingValueLayer
from kmtl.layers.mlp import MLP
from kmtl.layers.mmoe import MMoELayer
from kmtl.layers.partitioned_normalization import PartitionedNormalization
from kmtl.layers.ppnet import PPNetMLP
from kmtl.layers.sequence_attention import SequenceAttention
from kmtl.layers.shared_bottom import SharedBottomLayer
from kmtl.layers.snr import SNRLayer
from kmtl.layers.star_dense import STARDense
from kmtl.layers.switcher import Switcher
from kmtl.layers.switcher import get_switcher
from kmtl.layers.switcher import register_switcher
from kmtl.layers.switcher import switcher_names

__all__ = [
    "AdaptiveInformationTransfer",
    "BehavioralExpectationCalibrator",
    "BiasTower",
    "CGCLayer",
    "ConsistencyBound",
    "CrossNet",
    "DSelectKGate",
    "DSelectKLayer",
    "EPNet",
    "ExpertSelectionLayer",
    "ExpertMixture",
    "Experts",
    "GateNU",
    "GroupGradientGate",
    "GroupMembership",
    "GroupRouter",
    "LHUC",
    "MLP",
    "MissingValueLayer",
    "MMoELayer",
    "MixtureGate",
    "PPNetMLP",
    "PartitionedNormalization",
    "SNRLayer",
    "STARDense",
    "ScenarioExtractionLayer",
    "SequenceAttention",
    "SharedBottomLayer",
    "Switcher",
    "get_switcher",
    "register_switcher",
    "switcher_names",
]
