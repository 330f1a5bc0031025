"""Stage 3: what each executed op was: attributes and shapes."""
from .executed import ExecutedGraph, Node  # noqa: F401
from .layers import MODEL_LEVEL, LayerIndex, layer_of  # noqa: F401
from ..ops import TensorSpec  # noqa: F401
from .shapes import parse_shape_list  # noqa: F401
