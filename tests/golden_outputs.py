"""Which recorded traces the golden test covers and which of `analyze`'s files it freezes from each.

Shared by tests/test_golden.py and scripts/freeze_golden.py, so that a refreeze writes exactly the
files the test compares, from the same paths the test analyses.
"""
import json
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
TRACES = REPO / "traces"
SUMMARY_JSON = "summary.json"
# A golden directory holding this file was frozen with the names and columns of its time and is
# compared as is: no normalising exception applies to it.
AS_IS_MARKER = "FROZEN_AS_IS"
# Summary keys that depend on where the trace lies: frozen relative to the repository, never compared.
SUMMARY_SKIP = {"trace_files", "run_dir"}


def golden_cases() -> dict:
    """Case name -> what `analyze` is given: a run directory holding `host.xplane.pb`, else the trace file."""
    cases = {}
    for trace in sorted(TRACES.rglob("*.xplane.pb")):
        if trace.name == "host.xplane.pb":
            cases[trace.parent.name] = trace.parent
        else:
            cases[trace.name.replace(".xplane.pb", "")] = trace
    return cases


def frozen_tables(directory: Path) -> list:
    """The tables compared for one case: every CSV file in its golden (or freshly written) directory."""
    return sorted(Path(directory).glob("*.csv"))


def _relative_to_repo(value):
    """A path (or list of paths) under the repository as a repository-relative string."""
    if isinstance(value, list):
        return [_relative_to_repo(item) for item in value]
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(REPO):
        return Path(value).relative_to(REPO).as_posix()
    return value


def freeze(name: str, result, why: str) -> Path:
    """Replace tests/golden/<name> with what the test compares of `result`: its CSV tables and its summary
    (the location keys made repository-relative), marked to be compared as is; `why` goes in the marker."""
    target = GOLDEN / name
    with tempfile.TemporaryDirectory() as staging:
        result.write(staging)
        summary = json.loads((Path(staging) / SUMMARY_JSON).read_text())
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for table in frozen_tables(staging):
            shutil.copyfile(table, target / table.name)
    for key in SUMMARY_SKIP & set(summary):
        summary[key] = _relative_to_repo(summary[key])
    (target / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    (target / AS_IS_MARKER).write_text(why.strip() + "\n")
    return target
