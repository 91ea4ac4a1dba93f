"""Where a number came from: the code, the packages and the environment that produced it.

* :func:`code_version` — the git commit and dirty flag of the checkout holding the package,
  and always a sha256 over the package's own source files. The source hash is what identifies
  the code in an evaluation's run key: it changes with every edit that can change a number
  (committed or not), works outside a git checkout (a wheel, a tarball), and does not change
  when only tests or docs do.
* :func:`package_versions` — versions of the libraries that shape results (cheap; in every record).
* :func:`environment_report` — ``torch.utils.collect_env``'s report plus the package versions
  (slow: seconds; written once per run folder as ``env.txt`` and printed by ``i3dbench env``).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Optional

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

# Libraries whose version can change a number this project reports (decoding, resizing,
# statistics, tables). torch is recorded separately with CUDA/cuDNN.
PACKAGES = ("i3dbench", "numpy", "decord", "av", "opencv-python-headless", "opencv-python", "PyTurboJPEG",
            "Pillow", "pandas", "tabulate", "PyYAML", "tqdm", "matplotlib", "submitit")


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10,
                             check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state() -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the git checkout holding this package; (None, None) outside git.

    ``dirty`` means uncommitted changes to tracked files (untracked files are not counted)."""
    if not (REPO_ROOT / ".git").exists():
        return None, None
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit.strip(), (bool(status.strip()) if status is not None else None)


def source_files() -> list[Path]:
    """The package's source files, sorted: every ``.py`` under the package folder."""
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


@functools.lru_cache(maxsize=1)
def source_sha256() -> str:
    """sha256 over (relative path, bytes) of every package source file (read once per process)."""
    h = hashlib.sha256()
    for p in source_files():
        h.update(str(p.relative_to(PACKAGE_DIR)).encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def code_version() -> dict:
    """``{"commit", "dirty", "source_sha256"}``: the first two are None outside a git checkout."""
    commit, dirty = git_state()
    return {"commit": commit, "dirty": dirty, "source_sha256": source_sha256()}


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (those not installed are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def environment_report() -> str:
    """``torch.utils.collect_env`` (OS, compilers, CUDA/cuDNN, GPUs, CPU, pip packages) plus
    this project's package versions and code version. Takes seconds (it runs subprocesses)."""
    from torch.utils import collect_env

    code = code_version()
    lines = [
        "i3dbench environment",
        "--------------------",
        f"code: commit {code['commit'] or '(not a git checkout)'}"
        + (" (uncommitted changes)" if code["dirty"] else "")
        + f", package sources sha256 {code['source_sha256']}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        "",
        collect_env.get_pretty_env_info(),
    ]
    return "\n".join(lines) + "\n"


__all__ = ["code_version", "environment_report", "git_state", "package_versions", "source_sha256"]
