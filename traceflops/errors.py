"""Errors the CLI turns into one line on stderr and a documented exit code."""


class TraceflopsError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""
    exit_code = 1


class UsageError(TraceflopsError):
    """Bad arguments: batch size 0, an unknown device, an unwritable output directory."""
    exit_code = 2


class ModelError(TraceflopsError):
    """The model file is missing, is not a model, or cannot be loaded safely."""
    exit_code = 3


class TraceError(TraceflopsError):
    """The trace is missing, empty, damaged or holds nothing we can analyse."""
    exit_code = 4


class CaptureError(TraceflopsError):
    """Running the model under the profiler failed."""
    exit_code = 5


class MissingExtraError(TraceflopsError):
    """An optional dependency a command needs is not installed (TensorFlow for profile and peaks)."""
    exit_code = 6
