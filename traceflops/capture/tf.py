"""TensorFlow, imported only where a capture needs it (so `analyze` never pays for it)."""
from __future__ import annotations

import os

from ..errors import MissingExtraError

TENSORFLOW_MISSING = ('profile and peaks need TensorFlow, which is not installed: '
                      'pip install "traceflops[cpu]" (or "traceflops[gpu]")')


def import_tf():
    """`tensorflow`, or MissingExtraError when it is not installed (analysis alone does not need it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf  # noqa: deferred so that `analyze` never pays for it
    except ModuleNotFoundError as exc:
        if exc.name != "tensorflow":
            raise  # TensorFlow is there but broken: not a missing extra
        raise MissingExtraError(TENSORFLOW_MISSING) from None
    return tf


def installed(name: str) -> bool:
    """Whether a top-level package can be imported, without importing it (an import hook that refuses
    it counts as missing)."""
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def require_tensorflow() -> None:
    """MissingExtraError now, before any work, when TensorFlow is not installed."""
    if not installed("tensorflow"):
        raise MissingExtraError(TENSORFLOW_MISSING)
