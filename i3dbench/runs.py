"""Run folders (and the cache folder): where a run's measurements, predictions and rendered tables go.

Every run (`i3dbench run`, `eval`, `bench`, `sweep`, the suites) writes into its own folder —
``runs/<UTC time>-<host>/`` under the runs root (``$I3DBENCH_RUNS``, default ``./runs``,
git-ignored) or the folder given with ``--out``::

    <run>/records/       one JSON record per measurement (records.py)
    <run>/predictions/   per-video predictions of each evaluation (predictions.py)
    <run>/report/        tables and figures rendered from records/ (report.py), swapped in whole
    <run>/env.txt        the environment the run saw (provenance.environment_report)

A run never writes anywhere else: the reference results in ``results/`` and the README's zoo
table change only through ``i3dbench publish RUN``. :func:`check_output` is the one check every
writing command makes first (not into results/, never over one of its inputs), and
:func:`new_subfolder` gives a second sweep into one run folder a folder of its own.
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


def reference_folders() -> list[Path]:
    """The reference results folders no command but ``publish`` writes: ``./results`` and the
    ``results/`` of the checkout this package runs from (resolved; only those that exist)."""
    here = Path(__file__).resolve().parents[1] / "results"
    out = []
    for folder in (Path("results"), here):
        if folder.is_dir() and folder.resolve() not in out:
            out.append(folder.resolve())
    return out


def check_output(out: str | os.PathLike, inputs=(), *, flag: str = "--out", replaces: bool = False) -> Path:
    """Refuse an output path that would write over what the command did not make; returns ``out``.

    Refused, with one line naming the path: ``out`` inside (or equal to) a reference ``results/``
    folder (only ``i3dbench publish`` changes it); ``out`` equal to one of ``inputs`` (files or
    folders the command reads: None entries are skipped); and, with ``replaces`` (a command that
    replaces its output folder whole, as ``report``), an input inside ``out``. Call it before any
    work starts."""
    out = Path(out)
    target = out.resolve()
    for ref in reference_folders():
        if target == ref or ref in target.parents:
            raise UserError(f"{flag} {out}: is inside the reference folder {ref}, which only `i3dbench publish` "
                            f"changes; choose another {flag}")
    for item in inputs:
        if item is None or (isinstance(item, str) and "://" in item):
            continue  # not given, or a URL
        src = Path(item).resolve()
        if src == target:
            raise UserError(f"{flag} {out}: is also an input of this command ({item}); write to another path, "
                            "never over an input")
        if replaces and target in src.parents:
            raise UserError(f"{flag} {out}: holds an input of this command ({item}) and is replaced whole; "
                            "write to another folder")
    return out


def new_subfolder(parent: str | os.PathLike, name: str) -> Path:
    """A new, empty folder ``parent/name`` (``name-2``, ``name-3``... if taken): a second command
    writing into one run folder gets its own, and never replaces the first one's files."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10000):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise UserError(f"{parent}: could not create a new folder named {name}-N; clean up old ones")


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


__all__ = ["RunDir", "cache_root", "check_output", "ensure_writable", "new_run_dir", "new_subfolder", "open_run_dir",
           "reference_folders", "runs_root"]
