"""Checkpoints: download + cache + verification, MMAction2 0.x / 1.x files, 2D->3D inflation.

* :func:`resolve_checkpoint` / :func:`download_checkpoint` give a local file for a path or an
  http(s) URL together with how far it can be trusted (:class:`ResolvedCheckpoint`:
  ``"verified: sha256 prefix c25ef9a4"`` or ``"unverified: no published hash"``), which a
  record can store; :func:`resolve` / :func:`download` return just the path.
* Downloads go to ``$I3DBENCH_CACHE/checkpoints/<sha256(url)[:16]>/<file name>``
  (``I3DBENCH_CACHE`` defaults to ``~/.cache/i3dbench``): keyed by the whole URL, so the same
  file name from another URL is another file, and still named as published. A download is
  written to a temporary file that gets its final name only after it was checked: its sha256
  (the full hash, or the 8-hex prefix OpenMMLab puts at the end of its file names), or, with
  no hash known, that it reads as a PyTorch checkpoint (an HTML page served with status 200
  or a body cut short is never kept). A body shorter than its Content-Length is refused, and
  so are redirects to anything but http(s). Each read waits at most
  ``I3DBENCH_DOWNLOAD_TIMEOUT`` seconds (default 60) and the whole download at most
  ``I3DBENCH_DOWNLOAD_DEADLINE`` (default 3600); a stall or an overrun reports the bytes
  received. A cached file is checked again before every use.
* Offline (:func:`resolve_published`, what an evaluation uses for an entry's published
  checkpoint): a file already in the cache (above, or ``<cache>/checkpoints/<published file
  name>`` when its hash proves it), else ``I3DBENCH_CHECKPOINT_MIRROR``: a base URL or a folder
  that replaces the published URL's scheme and host (``<mirror>/<URL path>``; a folder may also
  hold the file under its published name), else the published URL. A download that fails names
  the ways out (:func:`offline_ways_out`). A local file given instead is verified against the
  entry's published hash by its content, whatever its name (``--sha256`` for others).
* :func:`read_checkpoint` reads MMAction2 files (``{'state_dict', 'meta', ...}``, optional
  ``module.`` prefix) and bare state dicts with ``torch.load(weights_only=True)``. Files
  whose metadata holds other objects (mmengine ``ConfigDict``, NumPy scalars, the message
  hub's ``HistoryBuffer``...) are read again by a restricted unpickler that rebuilds tensors
  and plain containers and turns every other class or function into an inert
  :class:`StrippedObject`: nothing named in the file is imported or called. Where such
  placeholders sit is reported (``CheckpointFile.stripped_at``, and a warning on loading).
* :func:`load_checkpoint` loads one into a model; strict loading reports every missing,
  unexpected and mis-shaped key.
* :func:`save_checkpoint` writes MMAction2's layout atomically (temp file + ``os.replace``).
* :func:`inflate_2d_to_3d` initialises the I3D backbone from a torchvision-format 2D
  ResNet state dict, as MMAction2's ``ResNet3d.inflate_weights`` does.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import http.client
import os
import pickle
import re
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .errors import UserError
from .fileio import atomic_write

CHUNK = 1 << 20
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|ckpt)$")
DEFAULT_TIMEOUT_S = 60.0  # per socket operation (connect, each read)
DEFAULT_DEADLINE_S = 3600.0  # a whole download (a 200 MB checkpoint at ~60 kB/s)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be downloaded, verified, read or loaded; the message says why."""


class CheckpointWarning(UserWarning):
    """Something about a checkpoint a user should know, that does not stop loading it."""


# --------------------------------------------------------------------------- hashing / cache


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where downloads go: ``cache_dir`` itself if given, else ``$I3DBENCH_CACHE/checkpoints``
    (``I3DBENCH_CACHE`` defaults to ``~/.cache/i3dbench``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("I3DBENCH_CACHE") or Path.home() / ".cache" / "i3dbench"
    return Path(root) / "checkpoints"


def cache_path(url: str, cache_dir: str | Path | None = None) -> Path:
    """Where the download of ``url`` is kept: ``<cache>/<sha256(url)[:16]>/<file name>``."""
    return checkpoint_cache_dir(cache_dir) / hashlib.sha256(url.encode()).hexdigest()[:16] / _file_name(url)


def _file_name(url: str) -> str:
    # The URL's last path segment, made safe as one file name ('..' or '/' cannot escape the cache).
    name = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+=~%-]", "_", name)
    return name if name.strip(".") else "checkpoint.pth"


def expected_sha256(url_or_name: str, sha256: str | None = None) -> str | None:
    """The hash (full or prefix, lower case) to check: ``sha256`` if given, else the one in the file name."""
    if sha256:
        sha256 = sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{8,64}", sha256):
            raise CheckpointError(f"sha256 must be 8 to 64 hex digits, got {sha256!r}")
        return sha256
    m = _HASH_IN_NAME.search(url_or_name.split("?")[0].rsplit("/", 1)[-1])
    return m.group(1) if m else None


def _check_hash(path: Path, expected: str | None, what: str, hint: str = "") -> str:
    got = file_sha256(path)
    if expected is not None and not got.startswith(expected):
        raise CheckpointError(
            f"sha256 mismatch for {what}: expected {expected}{'...' if len(expected) < 64 else ''}, got {got}{hint}. "
            "The file is corrupted or not the published one; it was not kept."
        )
    return got


def _is_url(s: str) -> bool:
    return s.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A local checkpoint file and how far it can be trusted (for records).

    ``expected`` is the hash (full or prefix) the file was checked against, None when no hash
    was known (then the file was only checked to read as a PyTorch checkpoint).
    """

    path: Path
    source: str  # the URL or path as given
    sha256: str  # full hash of the file
    expected: Optional[str] = None
    downloaded: bool = False  # fetched by this call (not served from the cache / a local file)

    @property
    def verified(self) -> bool:
        return self.expected is not None

    @property
    def verification(self) -> str:
        """``verified: sha256 prefix c25ef9a4`` | ``verified: sha256 <64 hex>`` | ``unverified: no published hash``."""
        if self.expected is None:
            return "unverified: no published hash"
        return f"verified: sha256 {'prefix ' if len(self.expected) < 64 else ''}{self.expected}"

    def as_record(self) -> dict:
        return {"source": self.source, "path": str(self.path), "sha256": self.sha256, "verified": self.verified,
                "verification": self.verification}


MIRROR_ENV = "I3DBENCH_CHECKPOINT_MIRROR"


def mirror_for(url: str) -> Optional[str]:
    """Where ``I3DBENCH_CHECKPOINT_MIRROR`` says to get the published ``url`` from: ``<base
    URL>/<URL path>``, or a file of the mirror folder (``<folder>/<URL path>`` or
    ``<folder>/<file name>``); None when the variable is unset. A folder without the file, or a
    value that is neither a URL nor a folder, is a CheckpointError naming it."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base or not _is_url(url):
        return None
    path = urllib.parse.urlsplit(url).path.lstrip("/")
    if _is_url(base):
        return base.rstrip("/") + "/" + path
    folder = Path(base).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{MIRROR_ENV}={base!r} is neither an http(s) base URL nor an existing folder")
    for candidate in (folder / path, folder / _file_name(url)):
        if candidate.is_file():
            return str(candidate)
    raise CheckpointError(f"{MIRROR_ENV}={base}: the mirror folder has neither {folder / path} nor "
                          f"{folder / _file_name(url)} (it holds the published files under their URL path or name)")


def offline_ways_out(url: str) -> str:
    """The three ways to evaluate without reaching ``url``."""
    parts = urllib.parse.urlsplit(url)
    return (f"without network: pass --checkpoint FILE (a copy of {_file_name(url)}; verified against the entry's "
            f"published hash by its content), or set {MIRROR_ENV} to a base URL or folder replacing "
            f"{parts.scheme}://{parts.netloc} (same paths), or put the file into the cache as "
            f"{checkpoint_cache_dir() / _file_name(url)} (`i3dbench fetch NAME` on a machine with internet fills "
            "the cache; copy its checkpoints/ folder over)")


def resolve_published(url: str, sha256_prefix: Optional[str] = None, **download_kw: Any) -> ResolvedCheckpoint:
    """An entry's published checkpoint ``url``: from the cache, else the mirror
    (``I3DBENCH_CHECKPOINT_MIRROR``), else downloaded; always checked against ``sha256_prefix``
    (or the hash in the file name). A local path (the smoke entries' shipped files) is checked
    where it is."""
    if not _is_url(url):
        return resolve_checkpoint(url, sha256=sha256_prefix)
    expected = expected_sha256(url, sha256_prefix)
    cached = cache_path(url)
    if cached.is_file():
        try:
            return _checked(cached, url, expected, f"cached {cached}")
        except CheckpointError:
            pass  # download_checkpoint deletes it and fetches again
    mirror = mirror_for(url)
    if mirror is not None and not _is_url(mirror):
        path = Path(mirror)
        got = _check_hash(path, expected, f"{path} (from {MIRROR_ENV})")
        return ResolvedCheckpoint(path, str(path), got, expected)
    return download_checkpoint(url, sha256_prefix, fetch_from=mirror, **download_kw)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise CheckpointError(f"environment variable {name} must be a number of seconds > 0, got {raw!r}")
    return value


def download(
    url: str,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    progress: bool = True,
    timeout: float | None = None,
    deadline: float | None = None,
) -> Path:
    """Download ``url`` into the cache (once) and return the path of the checked file
    (see :func:`download_checkpoint`, which also says whether it was hash-verified)."""
    return download_checkpoint(url, sha256, cache_dir, progress=progress, timeout=timeout, deadline=deadline).path


def download_checkpoint(
    url: str,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    progress: bool = True,
    timeout: float | None = None,
    deadline: float | None = None,
    fetch_from: str | None = None,
) -> ResolvedCheckpoint:
    """Download ``url`` into the cache (once) and return the checked file.

    ``fetch_from``: another URL serving the same file (a mirror); the cache and the hash are
    still those of ``url``, the returned ``source`` is where the bytes came from.

    The hash checked is ``sha256`` (full or a prefix) or, when not given, the 8+ hex digits
    at the end of the URL's file name (``<name>-<sha256[:8]>.pth``). With no hash known the
    file must read as a PyTorch checkpoint (see :func:`read_checkpoint`) and is returned as
    unverified (a warning says so). A cached file is checked again before reuse; one that
    fails is deleted and downloaded again. ``timeout`` (per read) and ``deadline`` (whole
    download) default to ``I3DBENCH_DOWNLOAD_TIMEOUT`` / ``I3DBENCH_DOWNLOAD_DEADLINE``.
    """
    if not _is_url(url):
        raise CheckpointError(f"not an http(s) URL: {url!r}")
    timeout = timeout if timeout is not None else _env_seconds("I3DBENCH_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT_S)
    deadline = deadline if deadline is not None else _env_seconds("I3DBENCH_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE_S)
    expected = expected_sha256(url, sha256)
    target = cache_path(url, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)

    if target.exists():
        try:
            return _checked(target, url, expected, f"cached {target}")
        except CheckpointError:
            target.unlink(missing_ok=True)  # corrupted cache entry: fetch again
    # A file of the same name in the cache's old layout (<cache>/<file name>, not keyed by
    # URL) may come from another URL: it is used only when the published hash proves it.
    old = target.parent.parent / target.name
    if expected is not None and old.is_file():
        try:
            _check_hash(old, expected, str(old))
        except CheckpointError:
            pass
        else:
            os.replace(old, target)
            return _checked(target, url, expected, f"cached {target}")

    _remove_stale_parts(target.parent, target.name)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        source = fetch_from or url
        with os.fdopen(fd, "wb") as out:
            try:
                content_type = _fetch(source, out, progress=progress, timeout=timeout, deadline=deadline)
            except CheckpointError as err:
                raise CheckpointError(f"{err}; {offline_ways_out(url)}") from None
            out.flush()
            os.fsync(out.fileno())
        resolved = _checked(tmp, source, expected, source, hint=_content_hint(tmp, content_type))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a partial file behind (Ctrl-C included)
        raise
    return ResolvedCheckpoint(target, source, resolved.sha256, expected, downloaded=True)


def _checked(path: Path, source: str, expected: str | None, what: str, hint: str = "") -> ResolvedCheckpoint:
    """``path`` checked against ``expected``, or (no hash known) read as a checkpoint."""
    sha = _check_hash(path, expected, what, hint)
    if expected is None:
        try:
            read_checkpoint(path, warn=False)  # the caller's load reports stripped metadata
        except CheckpointError as err:
            why = str(err).replace(f"cannot read checkpoint {path}: ", "").replace(str(path), "the file")
            raise CheckpointError(f"{what}: no published hash to verify it, and it is not a usable PyTorch "
                                  f"checkpoint{hint}: {why}; it was not kept") from None
        warnings.warn(f"{source}: no sha256 known (none given, none in the file name): "
                      "the checkpoint is unverified", CheckpointWarning, stacklevel=3)
    return ResolvedCheckpoint(path, source, sha, expected)


def _content_hint(path: Path, content_type: str | None) -> str:
    """`` (the server sent an HTML page ...)`` when that is what the body looks like."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    html = head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body"))
    if html or (content_type or "").startswith(("text/", "application/json")):
        return f" (the server sent {content_type or 'no Content-Type'}, {'an HTML page' if html else 'text'}: " \
               "an error or login page?)"
    return ""


def _remove_stale_parts(directory: Path, name: str, max_age_s: float = 86400.0) -> None:
    # Temp files of downloads killed with SIGKILL: never trusted, only taking space. A day
    # old means no live download still writes them.
    now = time.time()
    for part in directory.glob(f".{glob.escape(name)}.*.part"):
        try:
            if now - part.stat().st_mtime > max_age_s:
                part.unlink()
        except OSError:
            pass


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only (urllib's own also follows ftp://, and reports a
    file:// one as an HTTP error that does not say what was refused)."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri") or ""
        target = urllib.parse.urljoin(req.full_url, location)
        if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
            fp.close()
            raise CheckpointError(f"cannot download {req.full_url}: HTTP {code} redirects to {target!r}; "
                                  "only http(s) redirects are followed (0 bytes received)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", err)
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(reason) or type(reason).__name__


def _fetch(url: str, out, *, progress: bool, timeout: float, deadline: float) -> Optional[str]:
    """Write the body of ``url`` to ``out``; returns the Content-Type.

    torch.hub.download_url_to_file does the temp-file-and-rename and the prefix check, but
    has no timeout (a stalled server hangs it forever), no overall deadline, no check of the
    received length, follows ftp:// redirects, and only checks a hash it is given; this does
    all of that, and the caller checks the file (hash, or readable as a checkpoint).
    """
    from tqdm import tqdm

    start = time.monotonic()
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    req = urllib.request.Request(url, headers={"User-Agent": "i3dbench"})
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        raise CheckpointError(f"cannot download {url}: HTTP {err.code} {err.reason} (0 bytes received)") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise CheckpointError(f"cannot download {url}: {_reason(err)} (0 bytes received)") from None
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.strip().isdigit() else None
        received = 0

        def of_total() -> str:
            return f"{received} of {total} bytes" if total is not None else f"{received} bytes"

        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=_file_name(url)[:40],
                  disable=None if progress else True, leave=False) as bar:
            while True:
                if time.monotonic() - start > deadline:
                    raise CheckpointError(
                        f"download of {url} passed its {deadline:g} s deadline after {of_total()}; "
                        "retry, or allow longer with I3DBENCH_DOWNLOAD_DEADLINE (seconds)")
                try:
                    # read1: at most one socket read, so a trickling server cannot hold this
                    # loop past the deadline; each read waits at most `timeout`.
                    chunk = resp.read1(CHUNK)
                except TimeoutError:  # socket.timeout is an alias
                    raise CheckpointError(
                        f"download of {url} stalled: no data for {timeout:g} s after {of_total()}; "
                        "retry, or allow longer with I3DBENCH_DOWNLOAD_TIMEOUT (seconds)") from None
                except (OSError, ValueError, http.client.HTTPException) as err:
                    raise CheckpointError(f"download of {url} interrupted after {of_total()}: {_reason(err)}") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise CheckpointError(f"download of {url} interrupted: the connection closed after {of_total()}")
        return resp.headers.get("Content-Type")


# --------------------------------------------------------------------------- reading


class StrippedObject:
    """Stands in for an object of a class the restricted reader refused to import.

    ``qualname`` is the module-qualified name the file asked for; ``args`` / ``state`` are
    what the pickle would have passed to it (themselves plain data or stripped objects).
    """

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stripped {self.qualname}>"

    def __reduce__(self):
        # Pickled again (e.g. meta copied into a new checkpoint), it becomes its repr string.
        return (str, (repr(self),))


def _stripped_class(module: str, name: str) -> type:
    # A fresh subclass per name, so repr() and isinstance checks can tell them apart.
    return type(f"Stripped[{module}.{name}]", (StrippedObject,), {"qualname": f"{module}.{name}"})


def _plain(obj: Any) -> Any:
    """``obj`` with every StrippedObject inside dicts / lists / tuples replaced by its repr."""
    if isinstance(obj, StrippedObject):
        return repr(obj)
    if isinstance(obj, dict):
        out = {k: _plain(v) for k, v in obj.items()}
        return collections.OrderedDict(out) if isinstance(obj, collections.OrderedDict) else out
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import torch._utils as tu

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
    }
    for fn in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    ):
        if hasattr(tu, fn):
            allowed[("torch._utils", fn)] = getattr(tu, fn)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[("torch", name)] = getattr(torch, name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors, storages and plain containers; everything else becomes a StrippedObject."""

    allowed = _allowed_globals()
    stripped: set[str]

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is not None:
            return obj
        # protocol-2 pickles of bytes go through _codecs.encode(str, 'latin1'): a pure function
        if (module, name) == ("_codecs", "encode"):
            import _codecs

            return _codecs.encode
        type(self).stripped.add(f"{module}.{name}")
        return _stripped_class(module, name)


class _RestrictedPickleModule:
    """The ``pickle_module`` torch.load uses: our Unpickler, the standard everything else."""

    def __init__(self) -> None:
        self.stripped: set[str] = set()
        stripped = self.stripped
        self.Unpickler = type("Unpickler", (_RestrictedUnpickler,), {"stripped": stripped})
        self.__name__ = "i3dbench_restricted_pickle"

    def load(self, file, **kwargs: Any) -> Any:
        # torch's legacy (pre-1.6) format reads a few header pickles with pickle_module.load:
        # they go through the same restrictions as the main object.
        return self.Unpickler(file, **kwargs).load()

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)


@dataclass
class CheckpointFile:
    """What :func:`read_checkpoint` found in a file."""

    state_dict: collections.OrderedDict[str, torch.Tensor]
    meta: dict
    other_keys: list[str] = field(default_factory=list)  # top-level keys besides state_dict / meta
    stripped: list[str] = field(default_factory=list)  # classes replaced by StrippedObject
    reader: str = "weights_only"  # weights_only | restricted
    # where each StrippedObject sits ("meta.hook_msgs.best_score" -> "numpy.core.multiarray.scalar")
    stripped_at: dict[str, str] = field(default_factory=dict)

    def describe_stripped(self, limit: int = 8) -> str:
        """One line naming where the placeholders are ('' when there are none)."""
        if not self.stripped_at:
            return ""
        items = [f"{where} ({cls})" for where, cls in self.stripped_at.items()]
        more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
        return (f"{len(items)} object(s) of classes that are not imported, for safety, were kept as inert "
                f"placeholders (the weights are not affected): {', '.join(items[:limit])}{more}")


def _stripped_paths(obj: Any, where: str, out: dict[str, str], limit: int = 200) -> dict[str, str]:
    """Where the StrippedObjects in ``obj`` sit, as dotted/indexed paths (the first ``limit``)."""
    if len(out) >= limit:
        return out
    if isinstance(obj, StrippedObject):
        out[where] = obj.qualname
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _stripped_paths(v, f"{where}.{k}" if where else str(k), out, limit)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            _stripped_paths(v, f"{where}[{i}]", out, limit)
    return out


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    """Say what a file that torch.load refused looks like, in one line."""
    with open(path, "rb") as f:
        head = f.read(64)
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    first = re.split(r"(?<=\.)\s", first)[0][:200]  # torch's first sentence says what failed
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        what = "an HTML page, not a PyTorch checkpoint"
    elif head.startswith(b"PK"):
        what = f"a truncated or damaged PyTorch zip archive ({first})"
    elif head.startswith(b"\x80"):
        what = f"a truncated or damaged pickle / legacy PyTorch file ({first})"
    else:
        what = f"not a PyTorch checkpoint (it starts with {head[:16]!r}; {first})"
    return CheckpointError(f"cannot read checkpoint {path}: {what}")


def _torch_load(path: Path) -> tuple[Any, str, list[str]]:
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes); download or copy it again")
    # Zip-format files (torch >= 1.6) are memory-mapped: tensors are read straight from the
    # page cache into the model instead of through a second in-memory copy.
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap), "weights_only", []
    except pickle.UnpicklingError:
        pass  # non-tensor objects in the metadata: read again with the restricted unpickler
    except Exception as err:  # noqa: BLE001 - anything else means the file itself is broken
        raise _unreadable(path, err) from None
    module = _RestrictedPickleModule()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module, mmap=mmap)
    except Exception as err:  # noqa: BLE001
        raise _unreadable(path, err) from None
    return obj, "restricted", sorted(module.stripped)


def read_checkpoint(path: str | Path, *, warn: bool = True) -> CheckpointFile:
    """Read a checkpoint file safely (see the module docstring); strips a ``module.`` prefix.

    Objects the restricted reader replaced by placeholders are listed in ``stripped_at`` and,
    with ``warn``, in a :class:`CheckpointWarning`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}" if not path.exists()
                              else f"checkpoint {path} is not a regular file")
    obj, reader, stripped = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict (state dict or {{'state_dict', 'meta'}}), got {type(obj).__name__}"
        )
    if "state_dict" in obj:
        sd = obj["state_dict"]
        meta = obj.get("meta") or {}
        other = [k for k in obj if k not in ("state_dict", "meta")]
    else:
        sd, meta, other = obj, {}, []
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(sd).__name__}, not a mapping")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {bad[:10]}")
    clean = collections.OrderedDict((k.removeprefix("module."), v) for k, v in sd.items())
    meta = dict(meta) if isinstance(meta, Mapping) else {"meta": meta}
    ckpt = CheckpointFile(clean, meta, other, stripped, reader)
    if stripped:
        top = {k: v for k, v in obj.items() if k != "state_dict"} if "state_dict" in obj else {}
        ckpt.stripped_at = _stripped_paths(top, "", {})
        if warn and ckpt.stripped_at:
            warnings.warn(f"{path}: {ckpt.describe_stripped()}", CheckpointWarning, stacklevel=2)
    return ckpt


# --------------------------------------------------------------------------- loading


@dataclass
class KeyReport:
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, checkpoint shape, model shape

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 20) -> str:
        def cut(items: list) -> str:
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(map(str, items[:limit])) + more

        lines = []
        if self.missing:
            lines.append(f"missing in checkpoint ({len(self.missing)}): {cut(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected in checkpoint ({len(self.unexpected)}): {cut(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in self.mismatched]
            lines.append(f"shape mismatch ({len(shown)}): {cut(shown)}")
        return "; ".join(lines)  # one line: the command line prints an error as one line


def compare_keys(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]) -> KeyReport:
    missing = [k for k in model_sd if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    mismatched = [
        (k, tuple(ckpt_sd[k].shape), tuple(v.shape))
        for k, v in model_sd.items()
        if k in ckpt_sd and tuple(ckpt_sd[k].shape) != tuple(v.shape)
    ]
    return KeyReport(missing, unexpected, mismatched)


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel / DataParallel keep the real model in .module
    return model.module if isinstance(getattr(model, "module", None), nn.Module) else model


def resolve(path_or_url: str | Path, sha256: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local path for ``path_or_url`` (see :func:`resolve_checkpoint`)."""
    return resolve_checkpoint(path_or_url, sha256=sha256, cache_dir=cache_dir).path


def resolve_checkpoint(
    path_or_url: str | Path, sha256: str | None = None, cache_dir: str | Path | None = None, **download_kw: Any
) -> ResolvedCheckpoint:
    """A local file for ``path_or_url`` and whether it was hash-verified.

    An http(s) URL is downloaded into the cache (:func:`download_checkpoint`); a local file
    is hash-checked when ``sha256`` is given (verified), else taken as it is (unverified).
    """
    s = str(path_or_url)
    if _is_url(s):
        return download_checkpoint(s, sha256=sha256, cache_dir=cache_dir, **download_kw)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s):
        raise CheckpointError(f"cannot use checkpoint {s!r}: only http(s) URLs are downloaded; "
                              "give a local file path otherwise")
    path = Path(s).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is {'a folder' if path.is_dir() else 'not a regular file'}, "
                              "not a checkpoint file")
    expected = expected_sha256(s, sha256) if sha256 else None
    return ResolvedCheckpoint(path, s, _check_hash(path, expected, str(path)), expected)


def load_checkpoint(
    model: nn.Module,
    path_or_url: str | Path,
    strict: bool = True,
    sha256: str | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> dict:
    """Load a checkpoint (local path or http(s) URL) into ``model``; returns the file's ``meta``.

    URLs are downloaded once into the cache and verified (see :func:`download`). With
    ``strict`` any missing, unexpected or mis-shaped key is a :class:`CheckpointError`
    listing all of them and the model is left untouched; without, the matching keys are
    loaded and the rest is reported in a warning.
    """
    path = resolve(path_or_url, sha256=sha256, cache_dir=cache_dir)
    ckpt = read_checkpoint(path)
    target = _unwrap(model)
    model_sd = target.state_dict()
    report = compare_keys(model_sd, ckpt.state_dict)
    if not report.ok:
        if strict:
            raise CheckpointError(
                f"checkpoint {path} does not fit the model ({type(target).__name__}): {report.describe()}"
            )
        warnings.warn(f"non-strict load of {path}: {report.describe()}")
    bad = {k for k, _, _ in report.mismatched}
    usable = {k: v for k, v in ckpt.state_dict.items() if k in model_sd and k not in bad}
    target.load_state_dict(usable, strict=False)
    return ckpt.meta


# --------------------------------------------------------------------------- saving


def save_checkpoint(
    path: str | Path, model: nn.Module | Mapping[str, torch.Tensor], meta: dict | None = None, extra: dict | None = None
) -> Path:
    """Write ``{'state_dict', 'meta', **extra}`` (MMAction2's layout) atomically.

    Tensors are moved to the CPU; ``meta`` gets ``time`` and ``i3dbench_version`` unless
    given. The file appears under its name only once complete (temp file + ``os.replace``),
    so a crash mid-write never leaves a truncated checkpoint behind. Keep ``meta`` / ``extra``
    to plain data and tensors so that the file loads with ``weights_only=True``.
    """
    from . import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = _unwrap(model).state_dict() if isinstance(model, nn.Module) else model
    state_dict = collections.OrderedDict((k, v.detach().cpu()) for k, v in sd.items())
    # A meta read from another checkpoint may hold StrippedObjects: store their repr instead.
    meta = _plain(dict(meta or {}))
    meta.setdefault("time", time.strftime("%Y-%m-%d %H:%M:%S"))
    meta.setdefault("i3dbench_version", __version__)
    payload = {"meta": meta, "state_dict": state_dict, **_plain(dict(extra or {}))}
    return atomic_write(path, lambda f: torch.save(payload, f))


def publish_checkpoint(src: str | Path, out_dir: str | Path, name: str, date: str | None = None) -> Path:
    """Write ``src`` as a release file ``<out_dir>/<name>_<YYYYMMDD>-<sha256[:8]>.pth``.

    As OpenMMLab's ``publish_model.py``: only ``state_dict`` and ``meta`` are kept (optimizer,
    scheduler and RNG states of a training checkpoint are dropped), and the file name ends in
    the first 8 hex digits of the written file's sha256, which :func:`download` /
    :func:`resolve` then verify.
    """
    ckpt = read_checkpoint(src)
    out_dir = Path(out_dir)
    date = date or time.strftime("%Y%m%d")
    tmp = save_checkpoint(out_dir / f".{name}_{date}.unhashed.pth", ckpt.state_dict, meta=ckpt.meta)
    final = out_dir / f"{name}_{date}-{file_sha256(tmp)[:8]}.pth"
    os.replace(tmp, final)
    return final


# --------------------------------------------------------------------------- 2D -> 3D inflation


@dataclass
class InflationReport:
    """What :func:`inflate_2d_to_3d` did, in terms of the 3D model's and the 2D file's keys."""

    inflated: list[str]  # 3D keys that got a value from the 2D state dict
    missing: list[str]  # 3D backbone keys with no 2D source (left as they were)
    mismatched: list[str]  # 3D keys whose 2D source had an incompatible shape (left as they were)
    unused: list[str]  # 2D keys that went nowhere (e.g. fc.weight / fc.bias)


def _conv_modules(backbone: nn.Module):
    # Every conv+bn unit of the backbone, with its torchvision names.
    from .models.layers import ConvBNAct

    for name, m in backbone.named_modules():
        if not isinstance(m, ConvBNAct) or "non_local_block" in name:
            continue
        if name.endswith("downsample"):
            yield name, m, f"{name}.0", f"{name}.1"  # torchvision: downsample = Sequential(conv, bn)
        else:
            # layerX.Y.convN -> layerX.Y.convN / layerX.Y.bnN ; stem conv1 -> conv1 / bn1
            head, _, last = name.rpartition(".")
            bn = (f"{head}." if head else "") + last.replace("conv", "bn")
            yield name, m, name, bn


@torch.no_grad()
def inflate_2d_to_3d(model: nn.Module, state_dict_2d: Mapping[str, torch.Tensor] | str | Path) -> InflationReport:
    """Initialise the I3D backbone of ``model`` from a torchvision-format 2D ResNet state dict.

    ``state_dict_2d`` is a mapping or a file / URL (read as in :func:`load_checkpoint`).
    Each 2D conv kernel ``k x k`` is repeated over the 3D kernel's time extent ``t`` and
    divided by ``t`` (so a temporally constant clip gives the 2D response); BN parameters and
    statistics are copied. Non-local blocks and the classification head keep their init. A
    2D tensor of an incompatible shape is skipped and reported, as MMAction2 does.
    """
    if not isinstance(state_dict_2d, Mapping):
        state_dict_2d = read_checkpoint(resolve(state_dict_2d)).state_dict
    model = _unwrap(model)
    backbone = getattr(model, "backbone", model)
    prefix = "backbone." if backbone is not model else ""
    used: set[str] = set()
    inflated, missing, mismatched = [], [], []

    for name, unit, conv2d, bn2d in _conv_modules(backbone):
        key3d = f"{prefix}{name}.conv.weight"
        w2d = state_dict_2d.get(f"{conv2d}.weight")
        w3d = unit.conv.weight
        if w2d is None:
            missing.append(key3d)
        elif tuple(w2d.shape) != (w3d.shape[0], w3d.shape[1], w3d.shape[3], w3d.shape[4]):
            mismatched.append(key3d)
        else:
            t = w3d.shape[2]
            w3d.copy_(w2d.unsqueeze(2).expand_as(w3d) / t)
            inflated.append(key3d)
            used.add(f"{conv2d}.weight")
        if unit.bn is None:
            continue
        tensors = list(unit.bn.named_parameters()) + list(unit.bn.named_buffers())
        # A BN whose affine parameters do not fit is skipped as a whole (statistics included).
        if any(
            f"{bn2d}.{leaf}" in state_dict_2d and tuple(state_dict_2d[f"{bn2d}.{leaf}"].shape) != tuple(t.shape)
            for leaf, t in tensors
        ):
            mismatched += [f"{prefix}{name}.bn.{leaf}" for leaf, _ in tensors]
            continue
        for leaf, tensor in tensors:
            key3d = f"{prefix}{name}.bn.{leaf}"
            src = state_dict_2d.get(f"{bn2d}.{leaf}")
            if src is None:
                missing.append(key3d)
            else:
                tensor.copy_(src)
                inflated.append(key3d)
                used.add(f"{bn2d}.{leaf}")
    unused = [k for k in state_dict_2d if k not in used]
    # Everything else in the backbone (non-local blocks) had no 2D source either.
    covered = set(inflated) | set(missing) | set(mismatched)
    missing += [f"{prefix}{k}" for k in backbone.state_dict() if f"{prefix}{k}" not in covered]
    return InflationReport(inflated, missing, mismatched, unused)
