"""Test and benchmark helpers: XSpace traces built by hand; not part of the analysis pipeline.

`builder` builds XSpace messages event by event (interned metadata, every stat
type, raw ids for damaged traces); `synthetic` writes large TensorFlow-layout
host traces for benchmarks and the scaling tests. Nothing under
`traceflops/` outside this subpackage imports them.
"""
