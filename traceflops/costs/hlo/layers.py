"""The Keras layer an HLO instruction belongs to, from its metadata.

* JAX (Keras 3 on the JAX backend): `metadata.op_name` is the name stack,
  `jit(step)/<layer>/<primitive>`; transformations wrap the layer's scope:
  `jit(step)/jvp(conv2d)/conv_general_dilated` (forward of a training step),
  `jit(step)/transpose(jvp(conv2d))/conv_general_dilated` (its gradients),
  `jit(step)/jvp(dense)/jit(relu)/max` (a nested jit). The layer is the first
  scope after the leading `jit(...)` ones, unwrapped.
* XLA sometimes makes an instruction without a name (the CPU compiler rewrites a
  depthwise convolution's weight gradient into a dense convolution and a mask).
  Such an instruction is attributed to the layer whose trainable variable its
  result updates: the JAX capture passes trainable variables as a dict keyed by
  variable path, so their parameters are named `tv['<layer>/<variable>']`.
* TensorFlow (`jit_compile`): `model/<layer>/...`, as `graph.layer_of` reads it.
"""
from __future__ import annotations

import re

from ...graph import layer_of

_JIT = re.compile(r"^p?jit\(")
_WRAPPED = re.compile(r"^[\w.-]+\((.*)\)$")
_VARIABLE = re.compile(r"^\w+\['([^'/]+)/")
SEARCH_DEPTH = 12
_KERAS_PLUMBING = re.compile(r"/keras/src/(ops|backend|ops/operation|utils|trainers|models)/")


def _unwrap(scope: str) -> str:
    while True:
        match = _WRAPPED.match(scope)
        if match is None:
            return scope
        scope = match.group(1)


def name_stack_layer(op_name: str) -> str:
    """The layer of a JAX name stack (module doc); TensorFlow names as `graph.layer_of` reads them."""
    if not op_name:
        return ""
    parts = op_name.split("/")
    if not _JIT.match(parts[0]):
        return layer_of(op_name)
    while parts and _JIT.match(parts[0]):
        parts = parts[1:]
    if len(parts) < 2:  # a primitive outside every layer scope
        return ""
    return _unwrap(parts[0])


def variable_layer(mc, instr) -> str:
    """The layer whose trainable variable (`tv['layer/var']` parameter) the result of `instr` meets
    first on its way through its users (breadth first); "" when none within SEARCH_DEPTH."""
    seen, frontier = {instr.id}, [instr]
    for _ in range(SEARCH_DEPTH):
        following = []
        for current in frontier:
            for user in mc.users(current):
                for oid in user.operand_ids:
                    operand = mc.instructions.get(oid)
                    if operand is not None and operand.opcode == "parameter":
                        match = _VARIABLE.match(operand.metadata.op_name)
                        if match:
                            return match.group(1)
                if user.id not in seen:
                    seen.add(user.id)
                    following.append(user)
        frontier = following
        if not frontier:
            break
    return ""


def instruction_layer(mc, instr) -> str:
    """The Keras layer of one HLO instruction (module doc)."""
    layer = name_stack_layer(instr.metadata.op_name)
    if layer or instr.metadata.op_name:
        return layer
    return variable_layer(mc, instr)


def source_line(module, instr) -> str:
    """`file:line` of the instruction's source: `metadata.source_file`/`source_line` where present,
    else JAX's stack frame (`stack_frame_id` into the module's `stack_frame_index`): the innermost
    frame outside JAX and Keras's op and backend layers (so a Keras layer's own code, or the
    user's); else the innermost outside JAX. The path keeps its last 3 parts."""
    meta = instr.metadata
    if meta.source_file:
        return f"{_short(meta.source_file)}:{meta.source_line}"
    index = module.stack_frame_index
    frame_id = meta.stack_frame_id
    seen = set()
    first = ""
    while 0 < frame_id <= len(index.stack_frames) and frame_id not in seen:
        seen.add(frame_id)
        frame = index.stack_frames[frame_id - 1]
        if not 0 < frame.file_location_id <= len(index.file_locations):
            break
        location = index.file_locations[frame.file_location_id - 1]
        if not 0 < location.file_name_id <= len(index.file_names):
            break
        path = index.file_names[location.file_name_id - 1]
        text = f"{_short(path)}:{location.line}"
        if "/jax/" not in path and "/jaxlib/" not in path:
            first = first or text
            if not _KERAS_PLUMBING.search(path.replace("\\", "/")):
                return text
        frame_id = frame.parent_frame_id
    return first


def _short(path: str) -> str:
    return "/".join(path.replace("\\", "/").split("/")[-3:])
