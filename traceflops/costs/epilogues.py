"""One table of fused epilogues and activations: FLOPs per output element, by canonical name.

TensorFlow's `fused_ops` attribute, cuBLAS(Lt) GEMM epilogues and cuDNN
activation modes spell the same activations differently; each spelling maps to
a sequence of canonical names here, and each canonical name to the elementwise
op type whose registration (`costs/elementwise.py`) gives its FLOPs per element.
No number is repeated here.
"""
from __future__ import annotations

from typing import Optional

from .registry import elementwise_flops

# canonical activation -> the elementwise op type that prices it
CANONICAL = {
    "bias": "BiasAdd", "add": "AddV2", "mul": "Mul", "relu": "Relu", "relu6": "Relu6", "elu": "Elu",
    "leaky_relu": "LeakyRelu", "tanh": "Tanh", "sigmoid": "Sigmoid", "swish": "Swish", "mish": "Mish",
    "gelu_erf": "GeluExact", "gelu_tanh": "GeluApproximate",
}
# source -> its spelling -> the canonical activations it applies, in order (() = none)
SPELLINGS = {
    # TensorFlow `fused_ops` (and FusedBatchNormEx `activation_mode`); a name not listed
    # here is looked up as an elementwise op type.
    "tf": {
        "BiasAdd": ("bias",), "Add": ("add",), "AddV2": ("add",), "Mul": ("mul",), "Relu": ("relu",),
        "Relu6": ("relu6",), "Elu": ("elu",), "LeakyRelu": ("leaky_relu",), "Tanh": ("tanh",),
        "Sigmoid": ("sigmoid",), "GeluApproximate": ("gelu_tanh",), "GeluExact": ("gelu_erf",),
        "Swish": ("swish",), "_MklSwish": ("swish",), "_FusedHardSwish": ("swish",), "Mish": ("mish",),
        "_FusedMish": ("mish",),
    },
    # cuBLASLt epilogues (GemmBackendConfig.epilogue): GELU is the tanh approximation.
    "cublaslt": {
        "DEFAULT": (), "BIAS": ("bias",), "RELU": ("relu",), "BIAS_RELU": ("bias", "relu"),
        "GELU": ("gelu_tanh",), "GELU_AUX": ("gelu_tanh",), "BIAS_GELU": ("bias", "gelu_tanh"),
        "BIAS_GELU_AUX": ("bias", "gelu_tanh"),
    },
    # cuDNN fused convolution activation modes (CudnnConvBackendConfig.activation_mode).
    "cudnn": {
        "kNone": (), "kRelu": ("relu",), "kRelu6": ("relu6",), "kElu": ("elu",),
        "kLeakyRelu": ("leaky_relu",), "kTanh": ("tanh",), "kSigmoid": ("sigmoid",),
    },
}


def activation_flops(canonical: str) -> Optional[int]:
    """FLOPs per element of one canonical activation (None if its op type has no registration)."""
    return elementwise_flops(CANONICAL[canonical])


def epilogue_flops(source: str, spelling: str) -> Optional[int]:
    """FLOPs per output element of one epilogue as `source` ("tf", "cublaslt", "cudnn") spells it;
    None when the spelling is not known (TF names fall back to the elementwise registrations)."""
    parts = SPELLINGS[source].get(spelling)
    if parts is None:
        return elementwise_flops(spelling) if source == "tf" else None
    total = 0
    for part in parts:
        per = activation_flops(part)
        if per is None:
            return None
        total += per
    return total
