"""Export to TF Serving: SavedModel signatures and atomic versions."""

from kmtl.export.saved_model import SIGNATURE_KEY
from kmtl.export.saved_model import ExportVerificationError
from kmtl.export.saved_model import device_pins
from kmtl.export.saved_model import export
from kmtl.export.saved_model import latest_version
from kmtl.export.saved_model import serving_input_signature
from kmtl.export.saved_model import synthetic_inputs

__all__ = [
    "SIGNATURE_KEY",
    "ExportVerificationError",
    "device_pins",
    "export",
    "latest_version",
    "serving_input_signature",
    "synthetic_inputs",
]
