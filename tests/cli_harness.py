"""Drive the real ``i3dbench`` command line the way a user does, and check how it fails.

``run_cli(argv, expect_rc=2, must_name=[...], watch=[dirs], allowed=[dirs])`` runs
``i3dbench.cli.main(argv)`` in this process with stdout/stderr captured and asserts:

* the exit code;
* no Python traceback in what was printed;
* every string of ``must_name`` (the offending file, field or value) appears in the output;
* no file under the ``watch`` folders changed, appeared or vanished, except under ``allowed``
  (the run's own output).

Every output is also appended to the file named by ``$I3DBENCH_CLI_LOG`` (when set), so
``grep -rn Traceback`` over a whole test session's outputs can be checked afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional


@dataclass
class CliResult:
    rc: int
    out: str  # stdout and stderr together, in that order

    def __str__(self) -> str:
        return f"rc={self.rc}\n{self.out}"


def snapshot(folders: Iterable[os.PathLike]) -> dict[str, str]:
    """path -> sha256 of every file under ``folders`` (missing folders contribute nothing)."""
    out = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            out[str(folder)] = hashlib.sha256(folder.read_bytes()).hexdigest()
            continue
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                try:
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError:
                    out[str(p)] = "unreadable"
    return out


def _under(path: str, roots: Iterable[os.PathLike]) -> bool:
    p = Path(path).resolve()
    for r in roots:
        r = Path(r).resolve()
        if p == r or r in p.parents:
            return True
    return False


def run_cli(
    argv: list[str],
    *,
    expect_rc: Optional[int] = 2,
    must_name: Iterable[str] = (),
    watch: Iterable[os.PathLike] = (),
    allowed: Iterable[os.PathLike] = (),
    env: Optional[dict[str, str]] = None,
) -> CliResult:
    from i3dbench.cli import main

    watch, allowed = list(watch), list(allowed)
    before = snapshot(watch)
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in argv])
            except SystemExit as e:  # argparse usage errors
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    res = CliResult(rc, out.getvalue() + err.getvalue())
    log = os.environ.get("I3DBENCH_CLI_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"$ i3dbench {' '.join(map(str, argv))}\n{res.out}\n[rc={rc}]\n")
    assert "Traceback" not in res.out, f"traceback printed for {argv}:\n{res.out}"
    if expect_rc is not None:
        assert rc == expect_rc, f"exit {rc}, expected {expect_rc} for {argv}:\n{res.out}"
    for needle in must_name:
        assert str(needle) in res.out, f"output of {argv} does not name {needle!r}:\n{res.out}"
    after = snapshot(watch)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    outside = sorted(p for p in changed if not _under(p, allowed))
    assert not outside, f"{argv} changed files outside its output: {outside[:10]}"
    return res


__all__ = ["CliResult", "run_cli", "snapshot"]
