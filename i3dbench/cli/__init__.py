"""The ``i3dbench`` command: one parser, one handler module per command group, one error boundary.

Handlers are thin: they parse, call one typed function of the package, print. Heavy modules
(torch, decoders) are imported inside handlers so that ``i3dbench zoo list`` and ``--help``
stay instant.

The error boundary (:func:`main`) turns every :class:`~i3dbench.errors.UserError` and every
``OSError`` about a named file (permission, read-only or full disk, missing path) into one
line on stderr and exit 2; any other exception is an internal error: a short line naming
the file that holds the full traceback (``--debug`` shows it instead), exit 3.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, UserError

EPILOG = """exit codes:
  0    ok
  1    a regression (gate, compare)
  2    cannot judge, bad usage or bad input (one line names the file, field or value to fix)
  3    internal error (a bug; the traceback file is named, or shown with --debug)
  130  interrupted by Ctrl-C, 143 terminated by SIGTERM (resumable work is kept)

environment: I3DBENCH_CACHE (checkpoints, synthetic set; default ~/.cache/i3dbench),
I3DBENCH_RUNS (run folders; default ./runs), I3DBENCH_K400 (a YAML describing your Kinetics-400 copy, every
layout) or I3DBENCH_K400_ROOT / I3DBENCH_K400_ANN (one layout), I3DBENCH_CHECKPOINT_MIRROR (a base URL or
folder replacing the published checkpoints' host)"""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("i3dbench")
    except Exception:  # noqa: BLE001 - not installed (running from a source tree)
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from . import compare, data, fetch, loop, perf, sweep, train, zoo

    parser = argparse.ArgumentParser(
        prog="i3dbench",
        description="Reproducibility benchmark for the MMAction2 I3D Kinetics-400 model zoo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"i3dbench {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (zoo, data, loop, sweep, train, perf, compare, fetch):
        module.add_parsers(sub)
    return parser


def _crash_file(command: str) -> Path:
    """Where the traceback of an internal error goes: the cache's crash folder, else the temp dir."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(os.environ.get("I3DBENCH_CACHE") or Path.home() / ".cache" / "i3dbench") / "crash"
    for folder in (base, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"i3dbench-{command}-{stamp}-{os.getpid()}.txt"
            path.write_text(traceback.format_exc())
            return path
        except OSError:
            continue
    return Path("(could not be written)")


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose another output folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another output folder",
    errno.EROFS: "the file system is read-only: choose another output folder",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a path component is not a folder",
    errno.EISDIR: "is a folder, a file was expected",
}


def _describe_os_error(err: OSError) -> str:
    what = _OS_HINTS.get(err.errno, err.strerror or str(err))
    if err.errno in _OS_HINTS and err.strerror and ";" in err.strerror:  # what the raiser added (e.g. "resumable")
        what += ";" + err.strerror.split(";", 1)[1]
    where = err.filename if err.filename is not None else ""
    return f"{where}: {what}" if where else what


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    # A warning meant for the user (an unverified checkpoint, stripped metadata) is one line, not
    # Python's "file:line: Category: message" plus the source line that raised it.
    return f"warning: {message}\n"


EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells and schedulers expect of a terminated program


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's pre-emption), raised where the program is, so that it ends as
    Ctrl-C does: the same cleanup (partial files kept, temporary files removed), a message, and
    exit 143 (130 is kept for Ctrl-C, so a wrapper can tell who stopped it)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _catch_sigterm() -> list:
    """Install the SIGTERM handler (main thread only); returns ``[previous handler]`` to restore, or []."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return []
    return [signal.signal(signal.SIGTERM, _on_sigterm)]


def main(argv: list[str] | None = None) -> int:
    import signal
    import warnings

    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints it and exits 2
    command = " ".join(str(getattr(args, k)) for k in ("command", "zoo_command", "data_command") if getattr(args, k, None))
    previous = _catch_sigterm()
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print(f"i3dbench {command}: terminated by SIGTERM (finished work is kept; rerun the same command to resume)",
              file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"i3dbench {command}: interrupted (finished work is kept; rerun the same command to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except UserError as err:
        print(f"i3dbench {command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        if err.filename is None and err.errno not in _OS_HINTS:
            return _internal(args, command)
        print(f"i3dbench {command}: error: {_describe_os_error(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - the boundary: anything else is a bug of ours
        return _internal(args, command)
    finally:
        for handler in previous:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if handler is None else handler)


def _internal(args, command: str) -> int:
    exc = sys.exc_info()[1]
    if getattr(args, "debug", False):
        traceback.print_exc()
        print(f"i3dbench {command}: internal error (a bug; please report it with the traceback above)", file=sys.stderr)
    else:
        path = _crash_file(command.replace(" ", "-"))
        print(f"i3dbench {command}: internal error: {type(exc).__name__}: {str(exc)[:300]} "
              f"(a bug; full traceback in {path}, or rerun with --debug)", file=sys.stderr)
    return EXIT_INTERNAL


__all__ = ["build_parser", "main"]
