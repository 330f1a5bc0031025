"""`python -m traceflops`: the command line (cli.py)."""
from .cli import run

run()
