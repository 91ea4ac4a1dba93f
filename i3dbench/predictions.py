"""Per-video prediction files of an evaluation: writing, resuming, sealing, locking.

An evaluation appends one JSON line per video to ``<run>/predictions/<entry>-<key>.partial.jsonl``
(flushed and fsynced per batch) and, when every listed video has a row, rewrites it in list order
as ``<entry>-<key>.jsonl`` — *sealed* — and writes its record. ``key`` is the run key: a hash of
everything that determines the numbers (see ``evaluate.run_key_parts``).

Resuming follows one rule: **only an interrupted evaluation of the same key is resumed** — a
``.partial.jsonl`` file of that key, in this run folder or in another run folder under the runs
root. A sealed file is never read back by an evaluation: a finished measurement is never replayed
as a new one. A partial file taken over from another run folder is moved into this one, and
the record says how many rows came from which file.

Two evaluations of the same key cannot run at once: :class:`KeyLock` holds an exclusive lock on
``$I3DBENCH_CACHE/locks/<key>.lock`` for the whole evaluation, so no video is counted twice.

Rows::

    {"i": 17, "video": "abseiling/xyz.mp4", "label": 0, "top5": [0, 3, ...], "scores": [0.91, ...]}
    {"i": 18, "video": "...", "label": 4, "error": "cannot decode ...: moov atom not found"}
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

from .errors import UserError
from .fileio import atomic_write

PARTIAL = ".partial.jsonl"


class KeyLockedError(UserError):
    """Another live process holds the lock of this run key (see :class:`KeyLock`)."""

SEALED = ".jsonl"


def partial_path(pred_dir: Path, entry_name: str, key: str, rank: Optional[int] = None) -> Path:
    suffix = PARTIAL if rank is None else f".rank{rank}{PARTIAL}"
    return Path(pred_dir) / f"{entry_name}-{key}{suffix}"


def sealed_path(pred_dir: Path, entry_name: str, key: str) -> Path:
    return Path(pred_dir) / f"{entry_name}-{key}{SEALED}"


def read_predictions(path: Path, repair: bool = False, num_listed: Optional[int] = None) -> dict[int, dict]:
    """Rows of a predictions file by video index (first row of an index wins).

    A last line without its newline is a write cut short by a kill: it is ignored, and with
    ``repair=True`` cut off the file so that appending can go on. A malformed line elsewhere
    raises UserError naming the file and line. With ``num_listed`` (a resume), a row whose index
    is outside the list (``i`` < 0 or >= ``num_listed``) or repeats an earlier row's index is
    refused the same way: such a file is not an interrupted run of this list.
    """
    path = Path(path)
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is torn
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    rows: dict[int, dict] = {}
    for lineno, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            index = int(row["i"])
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}:{lineno}: not a prediction row ({err}); delete the file to start over") from None
        if num_listed is not None:
            if isinstance(row["i"], bool) or not 0 <= index < num_listed or index != row["i"]:
                raise UserError(f"{path}:{lineno}: row i={row['i']!r} is outside the list of {num_listed} videos; "
                                "not an interrupted run of this list: delete the file or rerun with --fresh")
            if index in rows:
                raise UserError(f"{path}:{lineno}: a second row for video i={index}; the file is not an "
                                "interrupted run of this list: delete the file or rerun with --fresh")
        rows.setdefault(index, row)
    return rows


def append_rows(fh, rows: list[dict]) -> None:
    """Append ``rows`` to an open predictions file and make them durable.

    A failed write (a full disk) leaves at most a torn last line, which the next run cuts off
    and resumes after; the error names the file (a bare ``OSError`` from ``write`` does not).
    """
    if not rows:
        return
    try:
        fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, f"{err.strerror}; the rows written so far are kept: rerun the same command to "
                                     "resume", fh.name) from None
        raise


def write_sealed(path: Path, rows: dict[int, dict]) -> Path:
    """Write ``rows`` in index order, atomically, as the sealed predictions file ``path``."""
    return atomic_write(path, "".join(json.dumps(rows[i], separators=(",", ":")) + "\n" for i in sorted(rows)))


def find_interrupted(entry_name: str, key: str, search: Iterable[Path]) -> list[Path]:
    """Partial files of ``key`` (single-process and per-rank) in the ``search`` folders (predictions
    folders, or run folders / runs roots whose ``*/predictions`` are searched), sorted, unique."""
    found: set[Path] = set()
    pattern = f"{entry_name}-{key}*{PARTIAL}"
    for folder in search:
        folder = Path(folder)
        for cand in (folder, folder / "predictions"):
            if cand.is_dir():
                found.update(p.resolve() for p in cand.glob(pattern))
        if folder.is_dir():
            for run in folder.glob("*/predictions"):
                found.update(p.resolve() for p in run.glob(pattern))
    return sorted(found)


def adopt(partial: Path, pred_dir: Path) -> Path:
    """Move an interrupted partial file into ``pred_dir`` (a no-op when it is there already)."""
    target = Path(pred_dir) / partial.name
    if partial.resolve() == target.resolve():
        return target
    Path(pred_dir).mkdir(parents=True, exist_ok=True)
    try:
        os.replace(partial, target)
    except OSError:  # another file system: copy, then remove the original
        shutil.copy2(partial, target)
        partial.unlink()
    return target


class KeyLock:
    """An exclusive, non-blocking lock on one run key (``fcntl.flock`` on a lock file).

    Taken for the whole evaluation by the process that writes its record (rank 0 under
    torchrun). A second evaluation of the same key raises :class:`UserError` naming the holder.
    The lock dies with its process, so a killed evaluation leaves nothing to clean up.
    """

    def __init__(self, key: str, lock_dir: Optional[Path] = None):
        from .runs import cache_root

        self.path = Path(lock_dir or cache_root() / "locks") / f"{key}.lock"
        self._fh = None

    def __enter__(self) -> KeyLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise KeyLockedError(f"another evaluation of the same run key is running ({holder}; lock {self.path}); "
                            "wait for it to finish, then rerun to resume or reuse nothing with --fresh") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


__all__ = ["KeyLock", "KeyLockedError", "adopt", "append_rows", "find_interrupted", "partial_path", "read_predictions", "sealed_path",
           "write_sealed"]
