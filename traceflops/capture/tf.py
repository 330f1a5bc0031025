"""TensorFlow, imported only where a capture needs it (so `analyze` never pays for it)."""
from __future__ import annotations

import os


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: deferred so that `analyze` never pays for it
    return tf
