"""Git revisions as trees on disk: what ``compare`` and ``bisect`` run.

A commit is materialised once, as the files ``git archive`` gives (no ``.git``, nothing
untracked), into ``$I3DBENCH_CACHE/revisions/<commit>/``, and reused by every later compare of
that commit: the folder only appears, by a rename, once it is complete. The user's repository
is only read (no worktree is registered in it, nothing is checked out). The working tree is
used where it is, labelled dirty with the hash of its diff when it has uncommitted changes.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import UserError
from .runs import cache_root

WORKING_TREE = "working tree"


@dataclass(frozen=True)
class Revision:
    label: str  # as the user named it ("HEAD~1", "main", "working tree")
    commit: Optional[str]  # full sha (the working tree: its HEAD commit)
    dirty: bool  # the working tree with uncommitted changes
    diff_sha256: Optional[str]  # of `git diff HEAD` + untracked files, when dirty
    subject: str  # the commit's subject line
    tree: Path  # the files to run

    @property
    def short(self) -> str:
        sha = (self.commit or "?")[:10]
        return f"{sha}+dirty:{self.diff_sha256[:10]}" if self.dirty and self.diff_sha256 else sha

    def as_dict(self) -> dict:
        return {"rev": self.label, "commit": self.commit, "dirty": self.dirty, "diff_sha256": self.diff_sha256,
                "subject": self.subject, "tree": str(self.tree)}


def git(repo: Path, *args: str, binary: bool = False):
    """Run git in ``repo``; UserError with git's own message when it fails."""
    try:
        res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed: compare and bisect need it") from None
    if res.returncode != 0:
        msg = res.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"git {' '.join(args)}: {msg[-1] if msg else 'failed'}")
    return res.stdout if binary else res.stdout.decode(errors="replace")


def repo_root(start: Optional[Path] = None) -> Path:
    start = Path(start or Path.cwd())
    try:
        return Path(git(start, "rev-parse", "--show-toplevel").strip())
    except UserError:
        raise UserError(f"{start} is not inside a git repository: compare and bisect run git revisions "
                        "(run them from your i3dbench checkout)") from None


def resolve_commit(repo: Path, rev: str) -> str:
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except UserError:
        shallow = git(repo, "rev-parse", "--is-shallow-repository").strip() == "true"
        hint = (" (this clone is shallow: `git fetch --unshallow` brings the history)" if shallow else
                " (name a commit, branch or tag of this repository, e.g. HEAD~1)")
        raise UserError(f"revision {rev!r} is not a commit in {repo}{hint}") from None


def subject(repo: Path, commit: str) -> str:
    return git(repo, "log", "-1", "--format=%s", commit).strip()


def _dirty_hash(repo: Path) -> Optional[str]:
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    if not status.strip():
        return None
    h = hashlib.sha256(git(repo, "diff", "HEAD", "--binary", binary=True))
    for name in sorted(git(repo, "ls-files", "--others", "--exclude-standard", "-z").split("\0")):
        if name and (repo / name).is_file():
            h.update(name.encode() + b"\0" + (repo / name).read_bytes())
    return h.hexdigest()


def materialise(repo: Path, commit: str, root: Optional[Path] = None) -> Path:
    """The files of ``commit`` under ``<root>/<commit>`` (default root: the cache's revisions/)."""
    root = Path(root or cache_root() / "revisions")
    final = root / commit
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{commit[:10]}-", dir=root))
    try:
        data = git(repo, "archive", "--format=tar", commit, binary=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # another compare did not just finish the same commit
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def revision(repo: Path, rev: Optional[str]) -> Revision:
    """``rev`` (None: the working tree) resolved and materialised."""
    if rev is None:
        commit = resolve_commit(repo, "HEAD")
        diff = _dirty_hash(repo)
        return Revision(WORKING_TREE, commit, diff is not None, diff, subject(repo, commit), repo)
    commit = resolve_commit(repo, rev)
    return Revision(rev, commit, False, None, subject(repo, commit), materialise(repo, commit))


def first_parent_range(repo: Path, good: str, bad: str) -> list[str]:
    """The first-parent commits after ``good`` up to and including ``bad``, oldest first."""
    g, b = resolve_commit(repo, good), resolve_commit(repo, bad)
    if subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", g, b], capture_output=True).returncode:
        raise UserError(f"{good} ({g[:10]}) is not an ancestor of {bad} ({b[:10]}): bisect needs GOOD before BAD")
    return [c for c in git(repo, "rev-list", "--first-parent", "--reverse", f"{g}..{b}").split() if c]


def messages(repo: Path, base: str, head: str) -> list[tuple[str, str]]:
    """(sha, full message) of the commits in ``base..head``."""
    out = git(repo, "log", "--format=%H%x00%B%x1e", f"{base}..{head}")
    pairs = []
    for chunk in out.split("\x1e"):
        if "\x00" in chunk:
            sha, msg = chunk.strip("\n").split("\x00", 1)
            pairs.append((sha.strip(), msg))
    return pairs


__all__ = ["WORKING_TREE", "Revision", "first_parent_range", "materialise", "messages", "repo_root", "revision"]
