"""Run folders (and the cache folder): where a run's measurements, predictions and rendered tables go.

Every run (`i3dbench run`, `eval`, `bench`, `sweep`, the suites) writes into its own folder —
``runs/<UTC time>-<host>/`` under the runs root (``$I3DBENCH_RUNS``, default ``./runs``,
git-ignored) or the folder given with ``--out``::

    <run>/records/       one JSON record per measurement (records.py)
    <run>/predictions/   per-video predictions of each evaluation (predictions.py)
    <run>/report/        tables and figures rendered from records/ (report.py), swapped in whole
    <run>/env.txt        the environment the run saw (provenance.environment_report)

A run never writes anywhere else: the reference results in ``results/`` and the README's zoo
table change only through ``i3dbench publish RUN``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError


def cache_root() -> Path:
    """``$I3DBENCH_CACHE`` or ``~/.cache/i3dbench``: downloads, the synthetic set, locks."""
    return Path(os.environ.get("I3DBENCH_CACHE") or Path.home() / ".cache" / "i3dbench")


def runs_root() -> Path:
    """``$I3DBENCH_RUNS`` or ``./runs``."""
    return Path(os.environ.get("I3DBENCH_RUNS") or "runs")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def records(self) -> Path:
        return self.path / "records"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def env_file(self) -> Path:
        return self.path / "env.txt"


def _host() -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40] or "host"


def new_run_dir(root: str | os.PathLike | None = None) -> RunDir:
    """A new, empty run folder ``<root>/<UTC time>-<host>`` (suffix ``-2``, ``-3``... if taken)."""
    root = Path(root) if root is not None else runs_root()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{_host()}"
    ensure_writable(root)
    for n in range(1, 1000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return RunDir(path)
    raise UserError(f"{root}: could not create a new run folder named {base}-N; clean up old runs")


def open_run_dir(out: str | os.PathLike | None, root: str | os.PathLike | None = None) -> RunDir:
    """``--out DIR`` (created if missing; an existing run folder is continued) or a new run folder."""
    if out is None:
        return new_run_dir(root)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: exists and is not a folder; give a folder for the run's output")
    ensure_writable(path)
    return RunDir(path)


def ensure_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it takes a file, before any long work starts.

    Raises :class:`UserError` naming the folder (read-only file system, no permission, a file in
    the way, full disk) so that a 10-minute measurement never fails at its last step."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".i3dbench-write-check-", delete=True) as f:
            f.write(b"x")
            f.flush()
    except OSError as err:
        reason = err.strerror or str(err)
        raise UserError(f"{folder}: cannot write there ({reason}); choose another output folder with --out") from None
    return folder


__all__ = ["RunDir", "cache_root", "ensure_writable", "new_run_dir", "open_run_dir", "runs_root"]
