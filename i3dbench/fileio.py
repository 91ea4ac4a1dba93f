"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the whole new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

Content = Union[str, bytes, Callable[[BinaryIO], None]]


def atomic_write(path: str | os.PathLike, content: Content) -> Path:
    """Write ``content`` (text, bytes, or a function writing to a binary file) to ``path``.

    The data goes to a temp file in the same folder, is fsynced, and is renamed over ``path``
    only when complete; on any error the temp file is removed and ``path`` is untouched.
    The file's mode is what a plain ``open(path, "w")`` would give: an existing file keeps its
    mode, a new one gets ``0o666 & ~umask`` (``mkstemp`` alone would leave ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _target_mode(path))
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None and err.errno is not None:  # name the file a failed write was for
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _target_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask: Linux shows it in /proc/self/status; elsewhere it is read by setting
    and restoring it (POSIX has no read-only call, and the set-restore is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
