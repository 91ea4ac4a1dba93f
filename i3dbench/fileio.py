"""Atomic writes of files and folders: a reader (or a run killed mid-write) sees the old one or the whole new one."""

from __future__ import annotations

import glob
import os
import shutil
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
    fsync_dir(path.parent)  # make the rename itself durable
    return path


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames into it) to disk; a no-op where folders cannot be opened."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


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


def replace_dir(dest: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Replace the folder ``dest`` as a whole with what ``build(tmp)`` writes into a new folder.

    ``build`` fills a temp folder next to ``dest``; only when it returns is the old ``dest``
    renamed aside, the new one renamed in and the old one removed. On any error (a full disk
    in the middle of a file, a bug, Ctrl-C) the temp folder is removed and ``dest`` is
    untouched, so a reader never sees a half-written folder or a mix of old and new files.
    Leftovers of a swap killed half-way (``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*``
    of a process that no longer runs) are removed first. The folder's mode is the old
    ``dest``'s, else what ``mkdir`` gives under the umask. Returns ``dest``.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"{dest}: exists and is not a folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_swap_leftovers(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
    try:
        # mkdtemp makes 0o700; a plain mkdir would have given the umask's mode.
        os.chmod(tmp, dest.stat().st_mode & 0o7777 if dest.exists() else 0o777 & ~current_umask())
        build(tmp)
        if dest.exists():
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except BaseException:
            if old.exists():
                os.rename(old, dest)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _remove_swap_leftovers(dest: Path) -> None:
    for kind in ("tmp", "old"):
        for path in dest.parent.glob(f".{glob.escape(dest.name)}.{kind}-*"):
            pid = path.name[len(dest.name) + len(kind) + 3 :].split("-")[0]  # .<name>.<kind>-<pid>-<random>
            if not pid.isdigit() or (int(pid) != os.getpid() and _alive(int(pid))):
                continue  # not ours, or another process is swapping right now
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
