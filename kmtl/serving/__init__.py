"""Serving beside the graph: the TF Serving client and server config."""

from kmtl.serving.client import Client
from kmtl.serving.client import ServingError
from kmtl.serving.client import ServingTimeout
from kmtl.serving.config import Batching
from kmtl.serving.config import ServingConfig
from kmtl.serving.config import write_serving_config

__all__ = [
    "Batching",
    "Client",
    "ServingConfig",
    "ServingError",
    "ServingTimeout",
    "write_serving_config",
]
