"""`i3dbench run`: evaluate and measure whatever can run on this machine, then render results/.

Without a Kinetics-400 copy or a GPU (the embedded default) it
1. generates the synthetic set into the cache if missing,
2. trains each smoke entry unless its checkpoint is cached ($I3DBENCH_CACHE/smoke/<entry>),
3. evaluates the smoke entries on the synthetic val split,
4. measures throughput and memory of every entry with random weights on this device
   (the performance module picks a budget that keeps the whole run within minutes on a CPU),
5. renders results/ from all the records and says where the tables are.
With ``I3DBENCH_K400_ROOT`` + ``I3DBENCH_K400_ANN`` and a GPU it also evaluates every K400
entry whose data format matches the copy, with its published checkpoint.

Each step of each entry is independent: a failure is reported and the run goes on.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .zoo import ZooEntry, load_zoo, load_zoos

MIN_CPU_BENCH_S = 90.0


@dataclass
class RunSummary:
    out_dir: Path
    records: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (what, error)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def describe(self) -> str:
        lines = [f"wrote {len(self.records)} records in {self.elapsed_s:.0f} s"]
        lines += [f"  skipped {what}: {why}" for what, why in self.skipped]
        lines += [f"  FAILED {what}: {err}" for what, err in self.errors]
        lines.append(f"tables: {self.out_dir / 'README.md'} (CSV and figures next to it)")
        return "\n".join(lines)


def select_entries(entries: dict[str, ZooEntry], only: Optional[str]) -> dict[str, ZooEntry]:
    """Entries whose name matches one of the comma-separated names / shell patterns in ``only``."""
    if not only:
        return entries
    pats = [p.strip() for p in only.split(",") if p.strip()]
    chosen = {n: e for n, e in entries.items() if any(fnmatch.fnmatchcase(n, p) for p in pats)}
    if not chosen:
        raise KeyError(f"--only {only!r} matches no entry; run `i3dbench zoo list` to see them")
    return chosen


def cache_root() -> Path:
    return Path(os.environ.get("I3DBENCH_CACHE") or Path.home() / ".cache" / "i3dbench")


def smoke_data(entry: ZooEntry, split: str = "val") -> tuple[Path, Path]:
    """(data_root, ann_file) of the synthetic set in the entry's format/resolution (generated if missing)."""
    from .data.synthetic import ensure_synthetic, synthetic_paths

    return synthetic_paths(ensure_synthetic(), entry.data.format, entry.data.resolution, split)


def smoke_work_dir(entry: ZooEntry) -> Path:
    """``$I3DBENCH_CACHE/smoke/<entry>/<hash of the entry's settings>``: editing the manifest
    (recipe, architecture, data) gives a new folder, so a stale checkpoint is never reused."""
    settings = dataclasses.asdict(entry)
    settings.pop("notes", None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return cache_root() / "smoke" / entry.name / digest


def smoke_checkpoint(entry: ZooEntry, train_if_missing: bool = True, device: Optional[str] = None,
                     records_dir=None) -> Path:
    """The checkpoint of a smoke entry: the one the manifest ships (``checkpoint.url``, a file
    next to zoo/smoke.yaml produced by ``i3dbench train``, hash-checked), else the cached one,
    trained first with the entry's recipe if absent; training writes its ``train`` record
    under ``records_dir``."""
    if entry.checkpoint.url is not None:
        from .checkpoints import resolve

        return resolve(entry.checkpoint.url, sha256=entry.checkpoint.sha256_prefix)
    work_dir = smoke_work_dir(entry)
    # train.py names the checkpoint of epoch N epoch_N.pth; only the last epoch's is finished
    # (a run killed earlier leaves earlier ones, which train(resume="auto") continues from).
    final = work_dir / f"epoch_{entry.recipe.epochs}.pth"
    if final.exists():
        return final.resolve()
    if not train_if_missing:
        raise FileNotFoundError(f"no smoke checkpoint at {final}: run `i3dbench train {entry.name} --work-dir {work_dir}`")
    from .train import train

    result = train(entry, None, None, work_dir, resume="auto", device=device, records_dir=records_dir)
    if not final.exists():
        raise RuntimeError(f"training {entry.name} ended without {final} ({result.epochs} epochs done)")
    return final.resolve()


def k400_copy() -> Optional[tuple[Path, Path, str]]:
    """(root, ann, format) of the Kinetics-400 copy named by the environment, or None."""
    root, ann = os.environ.get("I3DBENCH_K400_ROOT"), os.environ.get("I3DBENCH_K400_ANN")
    if not root or not ann or not Path(root).is_dir() or not Path(ann).is_file():
        return None
    with open(ann) as f:
        first = f.readline().split()
    # "<file> <label>" is a video list; "<dir> <total_frames> <label>" a rawframe list.
    fmt = "rawframes" if len(first) >= 3 else "videos"
    return Path(root), Path(ann), fmt


def _attempt(summary: RunSummary, what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None with the error noted in ``summary``."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - one entry's failure must not stop the run
        summary.errors.append((what, f"{type(err).__name__}: {err}"))
        return None


def _measure(summary: RunSummary, entries: list[ZooEntry], device: str, records_dir: Path, start: float,
             time_budget_s: float) -> list[Path]:
    """Bench records for ``entries``: the full published + fast protocols on a GPU; on a CPU,
    the measure module's zoo sweep within what is left of ``time_budget_s``."""
    from . import measure

    if device.startswith("cuda"):
        paths = []
        for e in entries:
            for protocol in ("published", "fast"):
                p = _attempt(summary, f"bench {e.name} {protocol}", measure.bench, e, device=device,
                             protocol=protocol, records_dir=records_dir)
                if p is not None:
                    paths.append(p)
        return paths
    # Keep ~30 s for rendering and slack; the sweep itself skips (and records) what does not fit.
    # At least MIN_CPU_BENCH_S even when training ate the budget: a run without a single
    # speed number of the published zoo would have missed its point.
    budget = max(MIN_CPU_BENCH_S, time_budget_s - (time.monotonic() - start) - 30.0)
    # Cheap smoke entries first, so a short budget still measures them.
    ordered = sorted(entries, key=lambda e: e.dataset != "synthetic")
    return _attempt(summary, "bench (CPU sweep)", measure.measure_zoo_cpu, ordered, budget_s=budget,
                    records_dir=records_dir) or []


def run_all(
    zoo=None,
    only: Optional[str] = None,
    records_dir=None,
    out_dir="results",
    device: Optional[str] = None,
    readme=None,
    train_missing: bool = True,
    measure: bool = True,
    num_workers: int = 2,
    time_budget_s: float = 600.0,
) -> RunSummary:
    """Do everything this machine can (see the module docstring); returns what happened."""
    import torch

    from .evaluate import evaluate
    from .report import render_report

    start = time.monotonic()
    out_dir = Path(out_dir)
    records_dir = Path(records_dir) if records_dir is not None else out_dir / "records"
    entries = select_entries(load_zoo(zoo) if zoo is not None else load_zoos(), only)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    summary = RunSummary(out_dir=out_dir)
    k400 = k400_copy()

    for name, entry in entries.items():
        if entry.dataset == "synthetic":
            ckpt = _attempt(summary, f"train {name}", smoke_checkpoint, entry, train_missing, device, records_dir)
            if ckpt is None:
                continue
            data_root, ann = smoke_data(entry)
            res = _attempt(summary, f"eval {name}", evaluate, entry, data_root, ann, checkpoint=ckpt, device=device,
                           records_dir=records_dir, num_workers=num_workers)
        elif k400 is None:
            summary.skipped.append((f"eval {name}", "no Kinetics-400 copy (set I3DBENCH_K400_ROOT and I3DBENCH_K400_ANN)"))
            continue
        elif not device.startswith("cuda"):
            summary.skipped.append((f"eval {name}", "30-view Kinetics-400 evaluation needs a GPU"))
            continue
        elif entry.data.format != k400[2]:
            summary.skipped.append((f"eval {name}", f"the Kinetics-400 copy holds {k400[2]}, the entry reads {entry.data.format}"))
            continue
        else:
            res = _attempt(summary, f"eval {name}", evaluate, entry, k400[0], k400[1], device=device,
                           records_dir=records_dir, num_workers=max(num_workers, 4))
        if res is not None and res.record_path is not None:
            summary.records.append(res.record_path)

    if measure:
        summary.records += _measure(summary, list(entries.values()), device, records_dir, start, time_budget_s)

    report = _attempt(summary, "report", render_report, records_dir, out_dir, zoo=zoo, readme=readme)
    if report is None:
        summary.skipped.append(("report", "see the error above"))
    summary.elapsed_s = time.monotonic() - start
    return summary
