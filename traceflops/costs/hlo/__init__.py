"""FLOPs and bytes of XLA HLO instructions (see `module.py` for the table's columns and conventions).

* `opcodes.py`: the opcode table, opcode -> (family, formula), the only dispatch;
* `instructions.py`: formulas of dot, convolution, reduce, fusion, elementwise, zero...;
* `custom_calls.py`: GEMM, cuDNN convolution and fused-attention custom calls;
* `module.py`: `ModuleCosts` (per module), `module_costs`, `hlo_costs`;
* `common.py`: shapes, backend configs, the `Cost` constructor.
"""
from __future__ import annotations

from ...trace.hlo import HLO_PROTO_STAT, METADATA_PLANE
from ..registry import UNKNOWN
from .common import XLA, shape_text
from .instructions import convolution_fmas, convolution_macs
from .module import HLO_COLUMNS, ModuleCosts, hlo_costs, module_costs
from .opcodes import FUSION_FAMILIES, OPCODES, opcode_family

__all__ = ["FUSION_FAMILIES", "HLO_COLUMNS", "HLO_PROTO_STAT", "METADATA_PLANE", "OPCODES", "UNKNOWN", "XLA",
           "ModuleCosts", "convolution_fmas", "convolution_macs", "hlo_costs", "module_costs", "opcode_family", "shape_text"]
