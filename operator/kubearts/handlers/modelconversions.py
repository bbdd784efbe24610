"""ModelConversion handlers. A ModelConversion turns a model into ONNX or Ascend OM.

Reconciliation of this kind is not implemented yet: every create, update and resume
reports it honestly on the object (Ready=False, reason NotImplemented) with the observed
generation, so users and tests see that the operator saw the object and did nothing with it.
"""

from __future__ import annotations

from kubearts.constants import MODEL_CONVERSION
from kubearts.handlers import common

common.register_not_implemented(MODEL_CONVERSION)
