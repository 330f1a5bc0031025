"""Running the project as another (unprivileged) user, as ../shared/TF-PROFILER-FACTS.md says how.

root's home is private (mode 700) and the default interpreter lives in it, so the
other user gets a venv made from the system interpreter in a world-readable
folder, whose `.pth` file points at this checkout and at this environment's
site-packages. Where those are not readable by the other user (a checkout
under /root), they are hard-linked into the same world-readable folder first
(same file system: no data is copied).
"""
import contextlib
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

NOBODY = "nobody"
SYSTEM_PYTHON = "/usr/bin/python3"
REPO = Path(__file__).resolve().parent.parent


def _readable_by(user: str, path: Path) -> bool:
    """Whether `user` can list `path` (every folder above it traversable)."""
    return subprocess.run(["runuser", "-u", user, "--", "ls", str(path)], capture_output=True).returncode == 0


def _world_readable(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)


@contextlib.contextmanager
def nonroot_python(user: str):
    """(python, home): a Python the `user` can run, importing this checkout and this environment's
    packages, and a home folder it can write; all in a world-readable folder removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="traceflops-nonroot-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        roots = []
        for name, source in (("repo", REPO), ("site", Path(sysconfig.get_paths()["purelib"]))):
            if not _readable_by(user, source):
                linked = base / name
                subprocess.run(["cp", "-al", str(source), str(linked)], check=True)
                _world_readable(linked)
                source = linked
            roots.append(source)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
        python = base / "venv" / "bin" / "python"
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        Path(purelib, "nonroot.pth").write_text("\n".join(str(r) for r in roots) + "\n")
        _world_readable(base / "venv")
        home = base / "home"
        home.mkdir()
        os.chmod(home, 0o777)
        yield str(python), home
    finally:
        shutil.rmtree(base, ignore_errors=True)
