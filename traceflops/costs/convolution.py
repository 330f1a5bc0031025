"""Convolutions: regular, grouped, depthwise and transposed (backprop-input); fused epilogues counted."""
from __future__ import annotations

import math

from .contraction import contraction
from ..ops import OpInfo
from .registry import register

FAMILY = "conv"


@register("Conv2D", "Conv3D", "Conv", "_FusedConv2D", "_FusedConv3D",
          "_MklPadWithConv2D", "_MklPadWithFusedConv2D", "_MklConv2DWithBias", family=FAMILY)
def conv(op: OpInfo):
    """2·MACs + epilogue FLOPs; MACs = output elements × kernel spatial volume × input channels per group.

    Filter [k..., C_in / groups, C_out]: dim -2 is the input channels each output channel sees.
    """
    filt, out = op.input(1), op.output(0)
    if filt is None or out is None:
        return None
    kernel_volume = math.prod(filt.dims[:-2])
    in_channels_per_group = filt.dims[-2]
    macs = out.num_elements * kernel_volume * in_channels_per_group
    return contraction(op, macs, out.num_elements)


@register("DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", family=FAMILY)
def depthwise_conv(op: OpInfo):
    """2·MACs + epilogue FLOPs; MACs = output elements × kh × kw (filter [kh, kw, C, multiplier])."""
    filt, out = op.input(1), op.output(0)
    if filt is None or out is None:
        return None
    macs = out.num_elements * filt.dims[0] * filt.dims[1]
    return contraction(op, macs, out.num_elements)


@register("Conv2DBackpropInput", "Conv3DBackpropInputV2", "Conv3DBackpropInput",
          "DepthwiseConv2dNativeBackpropInput", family=FAMILY)
def conv_transpose(op: OpInfo):
    """2·MACs; MACs = out_backprop elements × kernel volume × output channels (filter dim −2).

    Conv2DBackpropInput(input_sizes, filter [kh,kw,C_out,C_in], out_backprop
    [N,H,W,C_in]) produces [N,H',W',C_out]: each input element scatters into a
    kh*kw window for each of C_out channels (filter dim -2). Depthwise: kh × kw only.
    """
    filt, grad = op.input(1), op.input(2)
    if filt is None or grad is None:
        return None
    if op.op_type.lstrip("_").replace("MklNative", "").replace("Mkl", "").startswith("Depthwise"):
        macs = grad.num_elements * filt.dims[0] * filt.dims[1]
    else:
        macs = grad.num_elements * math.prod(filt.dims[:-2]) * filt.dims[-2]
    return 2 * macs, macs
