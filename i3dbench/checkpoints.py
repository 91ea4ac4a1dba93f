"""Checkpoints: download + cache + sha256 check, MMAction2 0.x / 1.x files, 2D->3D inflation.

* :func:`download` fetches a URL into ``$I3DBENCH_CACHE/checkpoints`` (``I3DBENCH_CACHE``
  defaults to ``~/.cache/i3dbench``) through a temporary file that is renamed to its final name only
  after its sha256 matched (the full hash, or the 8-hex prefix OpenMMLab puts at the end of
  its file names). An interrupted or corrupted download never appears under the final
  name, so a later run cannot trust it; it simply downloads again.
* :func:`read_checkpoint` reads MMAction2 files (``{'state_dict', 'meta', ...}``, optional
  ``module.`` prefix) and bare state dicts with ``torch.load(weights_only=True)``. Files
  whose metadata holds other objects (mmengine ``ConfigDict``, NumPy scalars, the message
  hub's ``HistoryBuffer``...) are read again by a restricted unpickler that rebuilds tensors
  and plain containers and turns every other class or function into an inert
  :class:`StrippedObject`: nothing named in the file is imported or called.
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
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError
from .fileio import atomic_write

CHUNK = 1 << 20
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|ckpt)$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be downloaded, verified, read or loaded; the message says why."""


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


def expected_sha256(url_or_name: str, sha256: str | None = None) -> str | None:
    """The hash (full or prefix, lower case) to check: ``sha256`` if given, else the one in the file name."""
    if sha256:
        sha256 = sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{8,64}", sha256):
            raise CheckpointError(f"sha256 must be 8 to 64 hex digits, got {sha256!r}")
        return sha256
    m = _HASH_IN_NAME.search(url_or_name.split("?")[0].rsplit("/", 1)[-1])
    return m.group(1) if m else None


def _check_hash(path: Path, expected: str | None, what: str) -> str:
    got = file_sha256(path)
    if expected is not None and not got.startswith(expected):
        raise CheckpointError(
            f"sha256 mismatch for {what}: expected {expected}{'...' if len(expected) < 64 else ''}, got {got}. "
            "The file is corrupted or not the published one; it was not kept."
        )
    return got


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def download(
    url: str,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` into the cache (once) and return the path of the verified file.

    The hash checked is ``sha256`` (full or a prefix) or, when not given, the 8+ hex digits
    at the end of the URL's file name (``<name>-<sha256[:8]>.pth``). A cached file is
    re-hashed before reuse; if it does not match it is deleted and downloaded again. With
    no hash known at all the file is kept unverified (a warning says so).
    """
    if not _is_url(url):
        raise CheckpointError(f"not an http(s) URL: {url!r}")
    expected = expected_sha256(url, sha256)
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "checkpoint.pth"
    target_dir = checkpoint_cache_dir(cache_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / name

    if target.exists():
        try:
            _check_hash(target, expected, f"cached {target}")
            return target
        except CheckpointError:
            target.unlink(missing_ok=True)  # corrupted cache entry: fetch again

    _remove_stale_parts(target_dir, name)
    if expected is None:
        warnings.warn(f"no sha256 known for {url} (none given, none in the file name): the download is not verified")

    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, progress=progress, timeout=timeout)
            out.flush()
            os.fsync(out.fileno())
        _check_hash(tmp, expected, url)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a partial file behind (Ctrl-C included)
        raise
    return target


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


def _fetch(url: str, out, *, progress: bool, timeout: float) -> None:
    from tqdm import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "i3dbench"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise CheckpointError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise CheckpointError(f"cannot download {url}: {getattr(err, 'reason', err)}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=url.rsplit("/", 1)[-1][:40],
            disable=not progress,
            leave=False,
        ) as bar:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, ValueError, http.client.HTTPException) as err:
                    raise CheckpointError(f"download of {url} interrupted after {received} bytes: {err!r}") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise CheckpointError(f"download of {url} interrupted: got {received} of {total} bytes")


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


def _torch_load(path: Path) -> tuple[Any, str, list[str]]:
    # Zip-format files (torch >= 1.6) are memory-mapped: tensors are read straight from the
    # page cache into the model instead of through a second in-memory copy.
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap), "weights_only", []
    except pickle.UnpicklingError:
        pass  # non-tensor objects in the metadata: read again with the restricted unpickler
    except Exception as err:  # noqa: BLE001 - anything else means the file itself is broken
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    module = _RestrictedPickleModule()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module, mmap=mmap)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    return obj, "restricted", sorted(module.stripped)


def read_checkpoint(path: str | Path) -> CheckpointFile:
    """Read a checkpoint file safely (see the module docstring); strips a ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
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
    return CheckpointFile(clean, dict(meta) if isinstance(meta, Mapping) else {"meta": meta}, other, stripped, reader)


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
        return "\n".join(lines)


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
    """A local path for ``path_or_url`` (downloading a URL into the cache); a local file is hash-checked when ``sha256`` is given."""
    s = str(path_or_url)
    if _is_url(s):
        return download(s, sha256=sha256, cache_dir=cache_dir)
    path = Path(s).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if sha256:
        _check_hash(path, expected_sha256(s, sha256), str(path))
    return path


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
                f"checkpoint {path} does not fit the model ({type(target).__name__}):\n{report.describe()}"
            )
        warnings.warn(f"non-strict load of {path}:\n{report.describe()}")
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
