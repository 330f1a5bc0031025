"""Freeze the golden outputs: `traceflops analyze` on every recorded trace under traces/, written to tests/golden.

    python scripts/freeze_golden.py "why these outputs are refrozen" [CASE ...]

Writes exactly what tests/test_golden.py compares (tests/golden_outputs.py holds the cases and the files
for both): each case's CSV tables and summary.json, and a FROZEN_AS_IS marker holding the reason, so the
case is compared as is. Without CASE names, every case is refrozen. Review `git diff tests/golden`
before committing it.
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import traceflops  # noqa: E402
from golden_outputs import GOLDEN, freeze, golden_cases  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="refreeze tests/golden from the recorded traces")
    parser.add_argument("why", help="the reason, written into each case's FROZEN_AS_IS marker")
    parser.add_argument("cases", nargs="*", help="case names (default: every recorded trace)")
    args = parser.parse_args(argv)
    cases = golden_cases()
    unknown = sorted(set(args.cases) - set(cases))
    if unknown:
        parser.error(f"no recorded trace for {unknown}; the cases are {sorted(cases)}")
    for name in args.cases or sorted(cases):
        result = traceflops.analyze(str(cases[name]))
        target = freeze(name, result, args.why)
        print(name, len(result.ops), "ops;", ", ".join(sorted(p.name for p in target.iterdir())))
    stale = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name not in cases)
    if stale:
        print("golden directories without a recorded trace (remove them):", ", ".join(stale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
