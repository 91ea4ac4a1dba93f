"""Training with the published recipe of a zoo entry: one process, or DDP under torchrun.

Everything that defines the run comes from the entry (``entry.recipe``, ``entry.data``,
``entry.arch``): SGD with momentum and weight decay, gradient clipping, MultiStepLR stepped
once per epoch, the entry's train/val pipelines, validation every ``val_interval`` epochs and
a checkpoint every ``checkpoint_interval`` epochs plus ``latest.pth``. The caller can change
only the scale of the run (number of processes, videos per GPU, epochs, lr); when the total
batch differs from the recipe's, the linear scaling rule sets the lr and the log says so.

The same function runs single-process and under ``torchrun --nproc-per-node N``: the world
size comes from the environment (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``), DDP uses NCCL on
GPUs and gloo on CPU, data is sharded with a ``DistributedSampler`` (with one process too, so
both paths share every line), and rank 0 alone writes logs and checkpoints.

Reproducibility: the data order of epoch ``e`` is a function of ``(seed, e)`` (the sampler)
and the random augmentation of sample ``i`` in epoch ``e`` is a function of ``(seed, e, i)``
(the dataset's per-item generator, ``ClipDataset.set_epoch``), so neither depends on the
number of processes, on data workers or on where a run was resumed. A checkpoint also holds
the optimizer, scheduler, epoch and iteration, and every rank's torch/numpy/python RNG
states; ``resume="auto"`` picks the newest complete checkpoint in the work dir, so a run
killed with SIGKILL and resumed ends with the same weights as one that was never
interrupted (checked by tests/test_train.py, CPU, deterministic mode).

Logs: a text line every ``log_interval`` iterations (with ETA) on stdout and in
``train.log``; ``log.json`` in MMAction2's format (one JSON object per line: the first is the
run's meta, then ``mode: train`` and ``mode: val`` lines; accuracies are fractions as in
MMAction2). :func:`read_log_json` reads ours or a published one.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import random
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from .errors import UsageError, UserError
from .zoo import ZooEntry, get_entry

# mmcv resolved ``torchvision://resnet50`` through torchvision's model_urls; in 2020
# (when the published I3D models were trained) that was this file. torchvision itself is
# never imported here.
TORCHVISION_URLS = {
    "torchvision://resnet50": "https://download.pytorch.org/models/resnet50-19c8e357.pth",
}

LOG_JSON = "log.json"
TEXT_LOG = "train.log"
LATEST = "latest.pth"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainResult:
    """What a training run produced. Accuracies in percent (log.json keeps fractions)."""

    work_dir: Path
    checkpoint: Optional[Path]  # latest.pth (resolves to the last epoch_N.pth), None if none written
    checkpoint_sha256: Optional[str]
    epochs: int  # epochs completed
    iters: int  # optimizer steps completed
    final_top1: Optional[float]  # last validation
    final_top5: Optional[float]
    best_top1: Optional[float]
    best_top5: Optional[float]
    best_epoch: Optional[int]
    wall_time_s: float  # training + validation time, summed over resumed sessions
    peak_memory_mb: int  # max over ranks; kind says what it is
    memory_kind: str  # "cuda_max_memory_allocated" | "cpu_peak_rss"
    lr: float  # the lr actually used (after the linear scaling rule)
    total_batch: int
    world_size: int
    log_json: Path
    record_path: Optional[Path]


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class DistInfo:
    world_size: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: Optional[str] = None) -> tuple[DistInfo, bool]:
    """Read torchrun's environment, pick the device and start the process group if needed.

    Returns the info and whether this call created the process group (then the caller
    destroys it). One process without ``WORLD_SIZE`` is world size 1, no process group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    created = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kwargs)
        created = True
    return DistInfo(world, rank, local_rank, dev), created


def is_main_process() -> bool:
    """True in a single process and on rank 0 under torchrun (read from the environment)."""
    return int(os.environ.get("RANK", "0")) == 0


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (every device); deterministic mode also pins the kernels.

    Every rank gets the same seed, as MMAction2 does, so the model starts identical
    everywhere (DDP also broadcasts rank 0's weights).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this set before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        # warn_only: an op without a deterministic kernel warns (and the log says
        # deterministic=True only promises what torch can give) instead of stopping a run.
        torch.use_deterministic_algorithms(True, warn_only=True)


# --------------------------------------------------------------------------- data


def _loader(dataset, batch: int, sampler, num_workers: int, pin: bool, seed: int) -> DataLoader:
    """Batches ``(views, labels, indices, failures)`` (dataset.collate_views; training and
    validation raise on a decode failure, so ``failures`` stays empty)."""
    from .data.dataset import collate_views

    # The generator fixes the workers' base seed; items do not depend on it (the dataset
    # seeds each item itself), but it keeps the loader from drawing from, and so shifting,
    # the global torch RNG that dropout uses.
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin,
        drop_last=False,
        collate_fn=collate_views,
        generator=g,
        persistent_workers=False,
    )


def _resolve_data(entry: ZooEntry, data_root, ann_file, val_data_root, val_ann_file, info: DistInfo):
    """Fill in the synthetic set's paths for smoke entries; check that the files exist."""
    if entry.dataset == "synthetic" and (data_root is None or ann_file is None or val_ann_file is None):
        from .data.synthetic import ensure_synthetic, synthetic_paths

        # Rank 0 generates the set (once, into the cache); the others wait, then find it.
        if info.is_main:
            root = ensure_synthetic()
        _barrier(info)
        if not info.is_main:
            root = ensure_synthetic()
        fmt, res = entry.data.format, entry.data.resolution
        if data_root is None or ann_file is None:
            data_root, ann_file = synthetic_paths(root, fmt, res, "train")
        if val_ann_file is None:
            val_data_root, val_ann_file = synthetic_paths(root, fmt, res, "val")
    if data_root is None or ann_file is None:
        raise UserError(
            f"entry '{entry.name}' trains on {entry.dataset}: give --data-root and --ann "
            "(the training videos/frames and their list file)"
        )
    if val_ann_file is not None and val_data_root is None:
        val_data_root = data_root
    for what, p in (("--data-root", data_root), ("--ann", ann_file), ("--val-data-root", val_data_root), ("--val-ann", val_ann_file)):
        if p is not None and not Path(p).exists():
            raise FileNotFoundError(f"{what} {p}: no such file or directory")
    return Path(data_root), Path(ann_file), (Path(val_data_root) if val_ann_file else None), (Path(val_ann_file) if val_ann_file else None)


# --------------------------------------------------------------------------- model and init


def build_train_model(entry: ZooEntry, seed: int, init: Optional[str] = None) -> tuple[nn.Module, str]:
    """The entry's model, seeded, initialised as the recipe (or ``init``) says.

    ``init``: ``None`` uses ``entry.recipe.pretrained``; ``"none"`` trains from scratch; a
    file or URL is either a 2D ImageNet ResNet state_dict in torchvision's layout (inflated
    to 3D with I3D's rule) or an MMAction2 checkpoint (loaded strictly). Returns the model
    and a description of the init for the log.
    """
    from .models import build_model

    torch.manual_seed(seed)
    model = build_model(entry)
    source = entry.recipe.pretrained if init is None else init
    if source is None or str(source).lower() == "none":
        return model, "none (from scratch)"
    return model, _load_init(model, str(source))


def _load_init(model: nn.Module, source: str) -> str:
    from .checkpoints import inflate_2d_to_3d, load_checkpoint, read_checkpoint, resolve

    if source.startswith("torchvision://") and source not in TORCHVISION_URLS:
        raise UsageError(f"--init {source}: unknown torchvision model; known: {', '.join(TORCHVISION_URLS)}")
    path = resolve(TORCHVISION_URLS.get(source, source))  # downloads a URL into the cache once
    sd = read_checkpoint(path).state_dict
    if any(k.startswith(("backbone.", "cls_head.")) for k in sd):
        load_checkpoint(model, path, strict=True)
        return f"MMAction2 checkpoint {source}"
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
        rep = inflate_2d_to_3d(model, sd)
        return (f"2D ImageNet weights inflated from {source} ({len(rep.inflated)} tensors; "
                f"{len(rep.missing)} kept their init, {len(rep.mismatched)} mismatched)")
    raise UsageError(
        f"--init {path}: neither a 2D torchvision ResNet state_dict (conv1.weight, layer1.*) "
        "nor an MMAction2 checkpoint (backbone.*, cls_head.*)"
    )


def scaled_lr(entry: ZooEntry, total_batch: int) -> float:
    """The linear scaling rule: the recipe's lr times total_batch / base_batch_size."""
    r = entry.recipe
    if total_batch == r.base_batch_size:
        return r.lr
    return r.lr * total_batch / r.base_batch_size


# --------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    """This process's RNG states as tensors/ints only (loadable with weights_only=True)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _scheduler_state(sched) -> dict:
    sd = sched.state_dict()
    sd["milestones"] = {int(k): int(v) for k, v in sd["milestones"].items()}  # Counter -> plain dict
    return sd


def _load_scheduler_state(sched, sd: dict) -> None:
    sd = dict(sd)
    sd["milestones"] = Counter(sd["milestones"])
    sched.load_state_dict(sd)


def find_resume_checkpoint(work_dir: str | Path) -> Optional[Path]:
    """The newest complete checkpoint in ``work_dir`` (``epoch_N.pth``, largest N), or None.

    Checkpoints are written to a temporary name and renamed (checkpoints.save_checkpoint),
    so a file with the final name is complete; temporary files are ignored, and a file that
    still fails to load (e.g. truncated by a copy outside this program) is skipped with a
    warning in favour of the next older one.
    """
    found = _newest_checkpoint(Path(work_dir))
    return found[0] if found else None


def _newest_checkpoint(work_dir: Path) -> Optional[tuple[Path, dict]]:
    found = []
    for p in work_dir.glob("epoch_*.pth"):
        stem = p.name[len("epoch_") : -len(".pth")]
        if stem.isdigit():
            found.append((int(stem), p))
    for _, p in sorted(found, reverse=True):
        try:
            ckpt = _read_resume_file(p)
        except (OSError, RuntimeError, ValueError, KeyError, EOFError, UserError) as err:
            print(f"[i3dbench.train] skipping checkpoint {p}: {err}", file=sys.stderr)
            continue
        return p, ckpt
    return None


def _read_resume_file(path: Path) -> dict:
    # Our own files hold plain data and tensors only, so weights_only=True reads them.
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a broken file
        raise UserError(f"unreadable ({type(err).__name__}: {err})") from None
    missing = [k for k in ("state_dict", "optimizer", "scheduler", "rng", "train_state") if k not in (ckpt if isinstance(ckpt, dict) else {})]
    if missing:
        raise UserError(f"not a resumable i3dbench training checkpoint (no {', '.join(missing)})")
    return ckpt


def _atomic_symlink(target_name: str, link: Path) -> None:
    tmp = link.with_name(link.name + f".{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target_name, tmp)
    os.replace(tmp, link)  # rename is atomic: readers see the old or the new link


# --------------------------------------------------------------------------- distributed helpers


def _barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def _all_mean(values: list[float], info: DistInfo) -> list[float]:
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def _all_max(value: int, info: DistInfo) -> int:
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _gather_objects(obj, info: DistInfo) -> list:
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def _peak_memory_mb(info: DistInfo) -> int:
    """MMAction2's ``memory``: peak CUDA max_memory_allocated (MiB, int), or peak RSS on CPU."""
    if info.device.type == "cuda":
        mb = int(torch.cuda.max_memory_allocated(info.device) / 2**20)
    else:
        mb = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB
    return _all_max(mb, info)


# --------------------------------------------------------------------------- logging


class _Logger:
    """Rank 0 writes text lines (stdout + train.log) and log.json lines; other ranks are silent."""

    def __init__(self, work_dir: Path, info: DistInfo) -> None:
        self.on = info.is_main
        self.json_path = work_dir / LOG_JSON
        self.text_path = work_dir / TEXT_LOG

    def text(self, msg: str) -> None:
        if not self.on:
            return
        line = f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S} - {msg}"
        print(line, flush=True)
        with open(self.text_path, "a") as f:
            f.write(line + "\n")

    def json(self, obj: dict) -> None:
        if not self.on:
            return
        with open(self.json_path, "a") as f:
            f.write(json.dumps(obj) + "\n")

    def truncate_after(self, epoch: int) -> None:
        """On resume: keep the lines up to the resumed epoch, so the log has no repeated epochs."""
        if not self.on or not self.json_path.exists():
            return
        kept = [d for d in read_log_json(self.json_path) if "mode" not in d or d.get("epoch", 0) <= epoch]
        tmp = self.json_path.with_name(self.json_path.name + ".tmp")
        tmp.write_text("".join(json.dumps(d) + "\n" for d in kept))
        os.replace(tmp, self.json_path)


def read_log_json(path: str | Path) -> list[dict]:
    """The JSON objects of an MMAction2-format ``log.json``, one per non-empty line, in order.

    Works for the published logs and ours: the first object(s) are run metadata (no
    ``mode`` key); ``mode: train`` lines carry ``epoch``, ``iter``, ``lr``, ``loss``...;
    ``mode: val`` lines carry ``top1_acc``, ``top5_acc`` (fractions). A malformed line is an
    error naming the file and line.
    """
    path = Path(path)
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: line {n}: not JSON ({err.msg}); is this a .log.json file?") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}: line {n}: expected a JSON object, got {type(obj).__name__}")
            out.append(obj)
    return out


def _env_info(info: DistInfo) -> str:
    parts = [
        f"sys.platform: {sys.platform}",
        f"Python: {sys.version.split()[0]}",
        f"PyTorch: {torch.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
        f"device: {info.device}",
        f"host: {platform.node()}",
        f"CPU threads: {torch.get_num_threads()}",
    ]
    if info.device.type == "cuda":
        parts.append(f"GPU: {torch.cuda.get_device_name(info.device)}")
        parts.append(f"CUDA: {torch.version.cuda}, cuDNN: {torch.backends.cudnn.version()}")
    return "\n".join(parts)


def _fmt_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def _validate(model, loader, entry: ZooEntry, info: DistInfo, amp_ctx) -> dict:
    """Val top-1/top-5/mean class accuracy (fractions) over the whole val set, all ranks."""
    from .data.transforms import normalize
    from .metrics import mean_class_accuracy, top_k_accuracy

    model.eval()
    idx_all, scores_all, labels_all = [], [], []
    for views, labels, index, _failures in loader:
        b, v = views.shape[:2]
        x = normalize(views.flatten(0, 1), entry.data.mean, entry.data.std, device=info.device)
        with amp_ctx():
            logits = model(x)
        logits = logits.float().view(b, v, -1)
        # Several views per video are averaged as the test protocol says (prob or score).
        per_video = logits.softmax(-1).mean(1) if entry.test.average_clips == "prob" else logits.mean(1)
        idx_all.append(index)
        scores_all.append(per_video.cpu())
        labels_all.append(labels)
    local = (
        torch.cat(idx_all).numpy() if idx_all else np.zeros(0, np.int64),
        torch.cat(scores_all).numpy() if scores_all else np.zeros((0, entry.arch.num_classes), np.float32),
        torch.cat(labels_all).numpy() if labels_all else np.zeros(0, np.int64),
    )
    parts = _gather_objects(local, info)
    idx = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    # The distributed sampler pads the last shard with repeats; keep each video once.
    _, first = np.unique(idx, return_index=True)
    scores, labels = scores[first], labels[first]
    top1, top5 = top_k_accuracy(scores, labels, (1, 5))
    return {
        "top1_acc": top1,
        "top5_acc": top5,
        "mean_class_accuracy": mean_class_accuracy(scores, labels),
        "num_videos": len(labels),
    }


# --------------------------------------------------------------------------- training


def train(
    entry: ZooEntry | str,
    data_root: str | Path | None,
    ann_file: str | Path | None,
    work_dir: str | Path,
    *,
    resume: Optional[str] = None,
    val_ann_file: str | Path | None = None,
    val_data_root: str | Path | None = None,
    videos_per_gpu: Optional[int] = None,
    epochs: Optional[int] = None,
    lr: Optional[float] = None,
    amp: Optional[str] = None,
    init: Optional[str] = None,
    seed: int = 0,
    deterministic: bool = False,
    num_workers: int = 2,
    device: Optional[str] = None,
    max_iters: Optional[int] = None,
    log_interval: int = 20,
    decoder: Optional[str] = None,
    records_dir: str | Path | None = None,
    write_record_file: bool = True,
    zoo: str | Path | None = None,
) -> TrainResult:
    """Train ``entry`` with its published recipe; works as is under ``torchrun``.

    ``data_root``/``ann_file`` (and ``val_*``) may be None for smoke entries (synthetic
    set, generated into the cache if missing). ``resume``: None (fresh run; logs in
    ``work_dir`` are started over, and checkpoints of an earlier run there are an error),
    ``"auto"`` (newest complete checkpoint in ``work_dir``, or a fresh run when there is
    none), or a checkpoint path. ``videos_per_gpu``/``epochs``/
    ``lr`` override the recipe's scale; without ``lr`` the linear scaling rule applies to a
    total batch (``videos_per_gpu * world size``) other than ``recipe.base_batch_size``.
    ``amp``: None, ``"bf16"`` or ``"fp16"`` autocast. ``max_iters`` stops after that many
    optimizer steps in total (tests, quick checks). On rank 0 a ``kind=train`` record is
    written unless ``write_record_file`` is False. Returns a :class:`TrainResult` (on every
    rank; the figures are the same everywhere).
    """
    entry = get_entry(entry, zoo) if zoo is not None else get_entry(entry)
    if amp not in (None, "bf16", "fp16"):
        raise UserError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    info, created_pg = setup_distributed(device)
    try:
        return _train(
            entry, info, data_root, ann_file, Path(work_dir), resume, val_ann_file, val_data_root,
            videos_per_gpu, epochs, lr, amp, init, seed, deterministic, num_workers, max_iters,
            log_interval, decoder, records_dir, write_record_file,
        )
    finally:
        if created_pg:
            dist.destroy_process_group()


@dataclass
class _Progress:
    """Where a run is; saved in every checkpoint (``train_state``) and restored on resume."""

    epoch: int = 0  # epochs completed
    iter: int = 0  # optimizer steps completed
    wall_time_s: float = 0.0  # up to the last checkpoint, all sessions
    best: dict = field(default_factory=lambda: {"top1": None, "top5": None, "epoch": None})
    last_val: dict = field(default_factory=dict)  # the latest validation (fractions)


@dataclass
class _Run:
    """The pieces of one training run, so the loop's helpers take one argument."""

    entry: ZooEntry
    info: DistInfo
    work_dir: Path
    log: _Logger
    model: nn.Module  # unwrapped: what checkpoints hold
    ddp_model: nn.Module  # DDP-wrapped when distributed, else the model
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler
    amp: Optional[str]
    train_set: Any
    train_sampler: DistributedSampler
    val_loader: Optional[DataLoader]
    videos_per_gpu: int
    epochs: int
    iters_per_epoch: int
    max_iters: Optional[int]
    log_interval: int
    num_workers: int
    seed: int
    lr: float

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.info.device.type, dtype=AMP_DTYPES[self.amp])

    @property
    def total_iters(self) -> int:
        n = self.iters_per_epoch * self.epochs
        return n if self.max_iters is None else min(n, self.max_iters)


def _train(entry, info, data_root, ann_file, work_dir, resume, val_ann_file, val_data_root, videos_per_gpu,
           epochs, lr, amp, init, seed, deterministic, num_workers, max_iters, log_interval, decoder,
           records_dir, write_record_file) -> TrainResult:
    from .checkpoints import file_sha256

    recipe = entry.recipe
    vpg = int(videos_per_gpu or recipe.videos_per_gpu)
    total_batch = vpg * info.world_size
    base_lr = float(lr) if lr is not None else scaled_lr(entry, total_batch)
    if info.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
    _barrier(info)
    log = _Logger(work_dir, info)

    # The resume point is found before anything is written, so that a fresh run can clear the logs.
    resume_path, ckpt = _find_resume(resume, work_dir)
    if ckpt is None:
        stale = sorted(p.name for p in work_dir.glob("epoch_*.pth"))
        if stale:
            # A fresh run would mix its checkpoints with these, and a later --resume auto could
            # pick one of the old run's.
            raise UserError(f"--work-dir {work_dir} holds checkpoints of an earlier run ({', '.join(stale[:3])}"
                                  f"{', ...' if len(stale) > 3 else ''}): continue it with --resume auto, "
                                  "or train into another work dir")
        _barrier(info)  # every rank has looked before rank 0 clears the logs
        if info.is_main:
            for name in (LOG_JSON, TEXT_LOG, LATEST):
                with contextlib.suppress(FileNotFoundError):
                    (work_dir / name).unlink()
    data_root, ann_file, val_data_root, val_ann_file = _resolve_data(entry, data_root, ann_file, val_data_root, val_ann_file, info)

    set_random_seed(seed, deterministic)
    run, init_desc = _build_run(entry, info, work_dir, log, init if ckpt is None else "none", base_lr, amp, vpg,
                     int(epochs or recipe.epochs), data_root, ann_file, val_data_root, val_ann_file, decoder,
                     num_workers, seed, max_iters, log_interval)
    progress = _Progress()
    if ckpt is not None:
        progress = _restore(run, ckpt)
        log.truncate_after(progress.epoch)
    # The record's conditions (code version, time, ...) are those of the start of the training.
    started = _start_conditions(run, info, amp, total_batch, ann_file) if info.is_main and write_record_file else None

    memory_kind = "cuda_max_memory_allocated" if info.device.type == "cuda" else "cpu_peak_rss"
    lr_rule = _lr_rule(entry, base_lr, total_batch, lr is not None)
    ckpt_epoch = progress.epoch if ckpt is not None else 0
    if ckpt is not None:
        init_desc = f"resumed from {resume_path} (epoch {progress.epoch})"
    log.json({
        "env_info": _env_info(info), "seed": seed, "exp_name": entry.name, "config": entry.config,
        "entry": entry.name, "world_size": info.world_size, "videos_per_gpu": vpg, "total_batch": total_batch,
        "lr": base_lr, "lr_rule": lr_rule, "recipe": asdict(recipe), "epochs": run.epochs, "amp": amp or "fp32",
        "deterministic": deterministic, "init": init_desc, "memory_kind": memory_kind, "memory_unit": "MiB",
        "train_videos": len(run.train_set), "val_videos": len(run.val_loader.dataset) if run.val_loader else 0,
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
    })
    log.text(f"training {entry.name}: world size {info.world_size}, {vpg} videos/GPU, {lr_rule}; "
             f"{run.epochs} epochs x {run.iters_per_epoch} iters; amp={amp or 'fp32'}; init: {init_desc}; "
             f"memory = {memory_kind}")

    clock = _Clock(progress.iter, progress.wall_time_s)
    for epoch in range(progress.epoch, run.epochs):
        if max_iters is not None and progress.iter >= max_iters:
            break
        if not _train_epoch(run, epoch, progress, clock):
            break  # max_iters reached inside the epoch: no scheduler step, validation or checkpoint
        run.scheduler.step()
        progress.epoch = done = epoch + 1
        # Validation comes before the checkpoint: it draws no random numbers, and the
        # checkpoint then holds the RNG states the next epoch starts from.
        if run.val_loader is not None and (done % recipe.val_interval == 0 or done == run.epochs):
            _validate_and_log(run, progress)
        if done % recipe.checkpoint_interval == 0 or done == run.epochs:
            progress.wall_time_s = clock.wall_before + clock.elapsed()
            _save(run, progress)

    wall = clock.wall_before + clock.elapsed()
    peak = _peak_memory_mb(info)
    latest = work_dir / LATEST
    ckpt_path = latest if latest.exists() else None
    sha = file_sha256(latest.resolve()) if ckpt_path is not None else None
    val = progress.last_val
    result = TrainResult(
        work_dir=work_dir,
        checkpoint=ckpt_path,
        checkpoint_sha256=sha,
        epochs=progress.epoch,
        iters=progress.iter,
        final_top1=val["top1_acc"] * 100 if val else None,
        final_top5=val["top5_acc"] * 100 if val else None,
        best_top1=progress.best["top1"],
        best_top5=progress.best["top5"],
        best_epoch=progress.best["epoch"],
        wall_time_s=wall,
        peak_memory_mb=peak,
        memory_kind=memory_kind,
        lr=base_lr,
        total_batch=total_batch,
        world_size=info.world_size,
        log_json=work_dir / LOG_JSON,
        record_path=None,
    )
    log.text(f"done: {result.epochs} epochs, {result.iters} iters, wall {wall:.1f} s, peak memory {peak} MiB "
             f"({memory_kind}), final val top1 {result.final_top1}, checkpoint {ckpt_path} sha256 {sha}")
    if info.is_main and write_record_file:
        record = _write_train_record(entry, result, started, resume_path if ckpt is not None else None,
                                     ckpt_epoch, records_dir if records_dir is not None else work_dir / "records")
        result = replace(result, record_path=record)
        log.text(f"record: {result.record_path}")
    return result


def _find_resume(resume: Optional[str], work_dir: Path) -> tuple[Optional[Path], Optional[dict]]:
    """``(path, checkpoint)`` to resume from, or ``(None, None)`` for a fresh run."""
    if resume == "auto":
        return _newest_checkpoint(work_dir) or (None, None)
    if not resume:
        return None, None
    path = Path(resume)
    if not path.is_file():
        raise UsageError(f"--resume {resume}: no such checkpoint file")
    try:
        return path, _read_resume_file(path)
    except (ValueError, UserError) as err:
        # torch's weights-only refusal is paragraphs long; the class it refused is what matters
        refused = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(err))
        why = (f"it holds a {refused.group(1)} object, which a weights-only load refuses" if refused
               else str(err).splitlines()[0][:300])
        raise UsageError(f"--resume {path}: not a readable i3dbench training checkpoint: {why}") from None


def _build_run(entry, info, work_dir, log, init, lr, amp, vpg, epochs, data_root, ann_file, val_data_root,
               val_ann_file, decoder, num_workers, seed, max_iters, log_interval) -> tuple[_Run, str]:
    """Model (seeded, initialised), optimizer, scheduler, data; the model wrapped in DDP if distributed.

    Returns the run and a description of the model's initialisation for the log.
    """
    from .data.dataset import build_dataset

    recipe = entry.recipe
    model, init_desc = build_train_model(entry, seed, init)
    model.to(info.device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr,
                                momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(recipe.milestones), gamma=recipe.gamma)
    ddp_model = model
    if info.distributed:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None
        )
    # The same seed drives the data: the order of epoch e (sampler) and each item's draws.
    train_set = build_dataset(entry, "train", data_root, ann_file, decoder=decoder, seed=seed)
    train_sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                       seed=seed, drop_last=False)
    val_loader = None
    if val_ann_file is not None:
        val_set = build_dataset(entry, "val", val_data_root, val_ann_file, decoder=decoder)
        val_sampler = DistributedSampler(val_set, num_replicas=info.world_size, rank=info.rank, shuffle=False)
        val_loader = _loader(val_set, vpg, val_sampler, num_workers, info.device.type == "cuda", seed)
    run = _Run(
        entry=entry, info=info, work_dir=work_dir, log=log, model=model, ddp_model=ddp_model, optimizer=optimizer,
        scheduler=scheduler, scaler=torch.amp.GradScaler(info.device.type, enabled=amp == "fp16"), amp=amp,
        train_set=train_set, train_sampler=train_sampler, val_loader=val_loader, videos_per_gpu=vpg,
        epochs=epochs, iters_per_epoch=math.ceil(len(train_sampler) / vpg), max_iters=max_iters,
        log_interval=log_interval, num_workers=num_workers, seed=seed, lr=lr,
    )
    return run, init_desc


def _lr_rule(entry: ZooEntry, lr: float, total_batch: int, given: bool) -> str:
    r = entry.recipe
    if given:
        return f"lr {lr:g} given by the user (no scaling rule)"
    if total_batch == r.base_batch_size:
        return f"lr {lr:g} (the recipe's; total batch {total_batch} = its base batch)"
    return f"linear scaling rule: lr {r.lr:g} x total batch {total_batch} / {r.base_batch_size} = {lr:g}"


class _Clock:
    """Wall time of this session, plus what earlier sessions of a resumed run had spent."""

    def __init__(self, iters_before: int, wall_before: float) -> None:
        self.start = time.perf_counter()
        self.iters_before = iters_before
        self.wall_before = wall_before

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _train_epoch(run: _Run, epoch: int, progress: _Progress, clock: _Clock) -> bool:
    """One epoch of SGD steps; False when ``max_iters`` stopped it before its end."""
    from .data.transforms import normalize

    entry, info, recipe = run.entry, run.info, run.entry.recipe
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    run.ddp_model.train()
    run.train_sampler.set_epoch(epoch)
    run.train_set.set_epoch(epoch)
    loader = _loader(run.train_set, run.videos_per_gpu, run.train_sampler, run.num_workers,
                     info.device.type == "cuda", run.seed * 1000003 + epoch)
    window: dict[str, list[float]] = {k: [] for k in _WINDOW_KEYS}
    t_iter = time.perf_counter()
    for inner, (views, labels, _index, _failures) in enumerate(loader):
        data_time = time.perf_counter() - t_iter
        v = views.shape[1]
        x = normalize(views.flatten(0, 1), entry.data.mean, entry.data.std, device=info.device)
        y = labels.to(info.device).repeat_interleave(v)  # several clips of a video: one sample each
        with run.autocast():
            logits = run.ddp_model(x)
        loss = F.cross_entropy(logits.float(), y)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if recipe.grad_clip:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(params, max_norm=recipe.grad_clip, norm_type=2)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        progress.iter += 1

        with torch.no_grad():
            top = logits.detach().float().topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
        window["top1_acc"].append(top[:, 0].float().mean().item())
        window["top5_acc"].append(top.any(1).float().mean().item())
        window["loss_cls"].append(loss.item())
        window["data_time"].append(data_time)
        window["time"].append(time.perf_counter() - t_iter)

        stop = run.max_iters is not None and progress.iter >= run.max_iters
        if (inner + 1) % run.log_interval == 0 or inner + 1 == run.iters_per_epoch or stop:
            _log_train(run, window, epoch, inner, progress.iter, clock)
            window = {k: [] for k in _WINDOW_KEYS}
        if stop:
            return inner + 1 == run.iters_per_epoch
        t_iter = time.perf_counter()
    return True


def _validate_and_log(run: _Run, progress: _Progress) -> None:
    res = _validate(run.ddp_model, run.val_loader, run.entry, run.info, run.autocast)
    done = progress.epoch
    progress.last_val = {"epoch": done, **res}
    if progress.best["top1"] is None or res["top1_acc"] * 100 > progress.best["top1"]:
        progress.best = {"top1": res["top1_acc"] * 100, "top5": res["top5_acc"] * 100, "epoch": done}
    run.log.json({"mode": "val", "epoch": done, "iter": len(run.val_loader),
                  "lr": run.optimizer.param_groups[0]["lr"], "top1_acc": res["top1_acc"],
                  "top5_acc": res["top5_acc"], "mean_class_accuracy": res["mean_class_accuracy"]})
    run.log.text(f"Epoch(val) [{done}][{res['num_videos']} videos] top1_acc: {res['top1_acc']:.4f}, "
                 f"top5_acc: {res['top5_acc']:.4f}, mean_class_accuracy: {res['mean_class_accuracy']:.4f}")


def _save(run: _Run, progress: _Progress) -> None:
    """``epoch_N.pth`` with everything needed to resume, and ``latest.pth`` pointing at it (rank 0)."""
    from .checkpoints import save_checkpoint

    rngs = _gather_objects(_rng_state(), run.info)  # every rank's, so each resumes its own streams
    path = run.work_dir / f"epoch_{progress.epoch}.pth"
    if run.info.is_main:
        save_checkpoint(
            path,
            run.model,
            meta={"epoch": progress.epoch, "iter": progress.iter, "seed": run.seed, "exp_name": run.entry.name,
                  "config": run.entry.config},
            extra={
                "optimizer": run.optimizer.state_dict(),
                "scheduler": _scheduler_state(run.scheduler),
                **({"scaler": run.scaler.state_dict()} if run.scaler.is_enabled() else {}),
                "rng": rngs,
                "train_state": {**asdict(progress), "world_size": run.info.world_size,
                                "videos_per_gpu": run.videos_per_gpu, "lr": run.lr},
            },
        )
        _atomic_symlink(path.name, run.work_dir / LATEST)
        run.log.text(f"saved checkpoint {path}")
    _barrier(run.info)


def _restore(run: _Run, ckpt: dict) -> _Progress:
    """Load model, optimizer, scheduler, scaler and this rank's RNG states; return the progress."""
    run.model.load_state_dict(ckpt["state_dict"], strict=True)
    run.optimizer.load_state_dict(ckpt["optimizer"])
    _load_scheduler_state(run.scheduler, ckpt["scheduler"])
    if "scaler" in ckpt and run.scaler.is_enabled():
        run.scaler.load_state_dict(ckpt["scaler"])
    rngs, info = ckpt["rng"], run.info
    if len(rngs) != info.world_size:
        run.log.text(f"resume: the checkpoint has RNG states of {len(rngs)} ranks, this run has {info.world_size}; "
                     "ranks reuse them modulo: the run continues, but not bitwise as the original would have")
    _set_rng_state(rngs[info.rank % len(rngs)])
    known = {f.name for f in fields(_Progress)}
    return _Progress(**{k: v for k, v in ckpt["train_state"].items() if k in known})


_WINDOW_KEYS = ("loss_cls", "top1_acc", "top5_acc", "time", "data_time")


def _log_train(run: _Run, window: dict, epoch: int, inner: int, global_iter: int, clock: _Clock) -> None:
    """One MMAction2 train line: means over the window, averaged over ranks (as mmcv's log vars)."""
    means = dict(zip(_WINDOW_KEYS, _all_mean([float(np.mean(window[k])) for k in _WINDOW_KEYS], run.info)))
    mem = _peak_memory_mb(run.info)
    lr = run.optimizer.param_groups[0]["lr"]
    session_iters = max(global_iter - clock.iters_before, 1)
    eta = clock.elapsed() / session_iters * (run.total_iters - global_iter)
    run.log.json({"mode": "train", "epoch": epoch + 1, "iter": inner + 1, "lr": lr, "memory": mem,
                  "data_time": means["data_time"], "time": means["time"], "loss_cls": means["loss_cls"],
                  "loss": means["loss_cls"], "top1_acc": means["top1_acc"], "top5_acc": means["top5_acc"]})
    run.log.text(f"Epoch [{epoch + 1}][{inner + 1}/{run.iters_per_epoch}]\tlr: {lr:.3e}, eta: {_fmt_eta(eta)}, "
                 f"time: {means['time']:.3f}, data_time: {means['data_time']:.3f}, memory: {mem}, "
                 f"top1_acc: {means['top1_acc']:.4f}, top5_acc: {means['top5_acc']:.4f}, "
                 f"loss_cls: {means['loss_cls']:.4f}, loss: {means['loss_cls']:.4f}")


def _start_conditions(run: _Run, info: DistInfo, amp: Optional[str], total_batch: int, ann_file: Path) -> dict:
    from .evaluate import dataset_fingerprint
    from .records import collect_conditions

    cond = collect_conditions(str(info.device), precision=amp or "fp32", batch=total_batch,
                              decoder=run.train_set.decoder,
                              dataset_fingerprint=dataset_fingerprint(run.train_set, ann_file))
    cond["train_memory_kind"] = "cuda_max_memory_allocated" if info.device.type == "cuda" else "cpu_peak_rss"
    return cond


def _write_train_record(entry: ZooEntry, result: TrainResult, conditions: dict, resumed_from: Optional[Path],
                        resumed_epoch: int, records_dir) -> Path:
    """A ``kind=train`` record: final/best val accuracy (percent), wall time, memory, checkpoint.

    ``conditions`` were taken when the training started (its code version and time)."""
    from .records import make_record, write_record

    conditions = dict(conditions, checkpoint_sha256=result.checkpoint_sha256)
    metrics = {
        "top1": result.final_top1,
        "top5": result.final_top5,
        "best_top1": result.best_top1,
        "best_top5": result.best_top5,
        "best_epoch": result.best_epoch,
        "wall_time_s": result.wall_time_s,
        "peak_memory_mb": result.peak_memory_mb,
        "epochs": result.epochs,
        "iters": result.iters,
    }
    method = {"name": "train", "protocol": f"recipe-{entry.recipe.epochs}e", "val": "entry's val pipeline",
              "lr": result.lr, "world_size": result.world_size, "videos_per_gpu": result.total_batch // result.world_size}
    obtained = ({"how": "resumed", "from_checkpoint": str(resumed_from), "from_epoch": resumed_epoch}
                if resumed_from is not None else {"how": "computed"})
    extra = {
        # The file latest.pth points to: what `i3dbench eval --checkpoint` takes.
        "checkpoint": str(result.checkpoint.resolve()) if result.checkpoint else None,
        "checkpoint_sha256": result.checkpoint_sha256,
        "work_dir": str(result.work_dir.resolve()),
        "log_json": str(result.log_json.resolve()),
    }
    return write_record(make_record(entry.name, "train", metrics, conditions, method, obtained=obtained, extra=extra),
                        records_dir)
