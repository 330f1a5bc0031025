"""FLOPs and bytes of XLA HLO instructions (see `module.py` for the table's columns and conventions).

* `opcodes.py`: the `hlo:` keys of the one registry (`costs/registry.py`): opcode -> family, formula;
* `custom_calls.py`: the `custom_call:` keys: GEMM, cuDNN convolution and fused-attention targets;
* `describe.py`: the registry's HLO adapter: an instruction's entry found and priced by its signature;
* `instructions.py`: formulas of dot, convolution, reduce, fusion, elementwise...;
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
