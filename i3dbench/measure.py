"""Bench records: throughput (timing.py) and peak memory (memory.py) of an entry, as one record.

* :func:`bench` — what ``i3dbench bench`` runs: one entry, one protocol, on CUDA or CPU.
* :func:`measure_zoo_cpu` — what ``i3dbench run`` does for the full-size zoo on a CPU within a
  time budget: speed and memory depend on the architecture and input shapes only (not on the
  data variant or the weights), so entries are grouped (:func:`architecture_key`: the 16 K400
  entries make 5 groups) and each group is measured once. Every entry still gets its own
  record, and all of them carry the same ``measurement`` id with ``shared_by`` (the entries) and
  ``measured_entry``: tables mark them as shared, and the gate judges a shared measurement once.
* :func:`measure_loader` — the CPU-side rate of an entry's test pipeline (decode + views).

Speed does not depend on the weights: everything here runs with seeded random weights and
the record says ``weights: random``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .memory import TrainMemory, measure_train_memory, memory_kind, peak_of, tensor_bytes
from .records import collect_conditions, make_record, new_measurement_id, now_iso, write_record
from .timing import LoopBudget, ThroughputResult, measure_interleaved, measure_throughput, random_model, ratio_note
from .zoo import ZooEntry, get_entry


def inference_memory(tp: ThroughputResult) -> dict:
    """Peak memory of one more iteration of the loop ``tp`` timed, with everything it needs counted.

    The process's thread count is left as it was (a FastModel sets its own while it runs)."""
    model = getattr(tp.model, "module", tp.model)  # a FastModel holds the prepared module
    threads = torch.get_num_threads()
    try:
        return peak_of(lambda: tp.step(0), torch.device(tp.device), live=(model, list(tp.inputs)))
    finally:
        torch.set_num_threads(threads)


def bench_record(entry: ZooEntry, tp: ThroughputResult | None, started: str, *, inference_mem: dict | None = None,
                 train_mem: TrainMemory | None = None, measurement: dict | None = None,
                 extra: dict | None = None) -> dict:
    """The bench record of a throughput and/or memory measurement (see records.py for the schema)."""
    fast = tp.conditions if tp is not None else {}
    cond = collect_conditions(
        tp.device if tp is not None else "cpu",
        precision=fast.get("precision", "fp32"),
        memory_format=fast.get("memory_format", "contiguous"),
        compile=bool(fast.get("compile")),
        batch=None if tp is None else max(1, round(tp.videos_per_iteration)),
        views=entry.views_per_video,
        time=started,
    )
    if tp is not None:
        cond["num_threads"] = fast.get("threads") or cond["num_threads"]  # what the timed loop ran with
    for key in ("fold_bn", "folded_pairs", "autocast", "cudnn_benchmark", "compile_mode", "compile_error",
                "autotune", "fast_note", "inference_mode", "no_grad", "input_dtype", "normalize_on_device",
                "pinned_memory", "primed"):
        if key in fast:
            cond[key] = fast[key]
    metrics: dict = {}
    method: dict = {"name": "timed_loop", "protocol": "memory-only", "weights": "random"}
    ext: dict = {}
    if tp is not None:
        metrics.update(tp.metrics())
        method = tp.method()
        cond["views_per_forward"] = tp.views_per_forward
        cond["view_shape"] = list(tp.view_shape)
        ext.update(times_s=tp.times_s, warmup_times_s=tp.warmup_times_s, oom_backoffs=tp.oom_backoffs,
                   wall_s=tp.wall_s)
        if tp.reference_times_s:
            ext["reference_times_s"] = tp.reference_times_s
    if inference_mem is not None:
        metrics["inference_memory_mb"] = inference_mem.get("peak_mb")
        cond["inference_memory_kind"] = inference_mem["kind"]
        method["inference_memory"] = "peak of one more iteration of the timed loop, model and inputs included"
        ext["inference_memory"] = inference_mem
    if train_mem is not None:
        metrics["train_memory_mb"] = train_mem.peak_mb
        cond["train_memory_kind"] = train_mem.kind
        method["train_memory"] = (f"{train_mem.steps} fp32 SGD step(s) at batch {train_mem.batch} of "
                                  f"{'x'.join(map(str, train_mem.input_shape))}")
        ext["train_memory"] = {"batch": train_mem.batch, "steps": train_mem.steps,
                               "input": list(train_mem.input_shape), **train_mem.details}
    ext.update(extra or {})
    return make_record(entry.name, "bench", metrics, cond, method, extra=ext, measurement=measurement)


def bench(
    entry: ZooEntry | str,
    device: str = "cpu",
    protocol: str = "published",
    *,
    budget: LoopBudget | None = None,
    memory: bool = True,
    train_memory: bool = True,
    overrides: dict | None = None,
    batch_videos: int | None = None,
    views_per_forward: int | None = None,
    threads: int | None = None,
    records_dir: str | Path,
    progress: bool = True,
) -> Path:
    """Measure throughput (and the memory of one iteration, and of training at the recipe batch)
    of ``entry`` and write a ``bench`` record under ``records_dir``; returns its path."""
    entry = get_entry(entry)
    started = now_iso()
    model = random_model(entry, 0)
    tp = measure_throughput(entry, device=device, protocol=protocol, budget=budget, overrides=overrides,
                            batch_videos=batch_videos, views_per_forward=views_per_forward, threads=threads,
                            model=model, progress=progress)
    inf = inference_memory(tp) if memory else None
    tr = measure_train_memory(entry, device=device, model=model, threads=threads) if memory and train_memory else None
    return write_record(bench_record(entry, tp, started, inference_mem=inf, train_mem=tr), records_dir)


def bench_pair(entry: ZooEntry | str, device: str = "cpu", *, budget: LoopBudget | None = None,
               records_dir: str | Path, progress: bool = True, train_memory: bool = True,
               twin_dir: str | Path | None = None) -> list[Path]:
    """Both protocols of ``entry`` side by side (published, then fast), one record each; the fast
    record says how it compares with the published one measured moments before.

    ``twin_dir``: also measure each protocol a second time into this records folder, in the same
    loop, iterations taking turns (``timing.measure_interleaved``): a baseline for the gate taken
    under the same machine conditions. Returns the paths of ``records_dir``'s records."""
    entry = get_entry(entry)
    model = random_model(entry, 0)
    # Both protocols on the process's thread count: the fast protocol's autotune then chooses
    # precision and layout only, so two runs of this pair are measured the same way whatever
    # the machine's load (a 1-thread choice under load would make them incomparable).
    threads = torch.get_num_threads()
    paths, results = [], {}
    for protocol in ("published", "fast"):
        started = now_iso()
        if twin_dir is None:
            measured = {str(records_dir): measure_throughput(entry, device=device, protocol=protocol, budget=budget,
                                                             model=model, progress=progress, threads=threads)}
        else:  # one loop, iterations taking turns: the twin sees the same machine as the main record
            measured = measure_interleaved(entry, {str(records_dir): model, str(twin_dir): model}, device=device,
                                           protocol=protocol, budget=budget, threads=threads, progress=progress)
        for out, tp in measured.items():
            results[(protocol, out)] = tp
            inf = inference_memory(tp)
            tr = measure_train_memory(entry, device=device, model=model) if train_memory else None
            extra = {"vs_published": ratio_note(tp, results[("published", out)])} if protocol == "fast" else None
            path = write_record(bench_record(entry, tp, started, inference_mem=inf, train_mem=tr, extra=extra), out)
            if out == str(records_dir):
                paths.append(path)
    return paths


# --------------------------------------------------------------------------- the zoo on CPU


def architecture_key(entry: ZooEntry) -> tuple:
    """What speed and memory depend on: the network and the shapes it sees (not data or weights)."""
    return (entry.arch, entry.data.clip_len, entry.data.train_crop, entry.views_per_video, entry.test.crop_size,
            entry.test.average_clips, entry.recipe.videos_per_gpu)


def architecture_label(entry: ZooEntry) -> str:
    a = entry.arch
    nl = f"nl-{a.non_local_mode}" if a.non_local_mode else "plain"
    inflate = "inflate-all" if all(all(row) for row in a.inflate) else "inflate-i3d"
    return (f"r{a.depth}w{a.base_channels}-{nl}-{inflate}-t{a.conv1_stride_t}{a.pool1_stride_t}-"
            f"{entry.data.clip_len}f-{entry.views_per_video}v-{entry.test.crop_size}px")


def group_by_architecture(entries: Iterable[ZooEntry | str]) -> dict[tuple, list[ZooEntry]]:
    """Entries grouped by :func:`architecture_key`, in first-seen order."""
    groups: dict[tuple, list[ZooEntry]] = {}
    for e in entries:
        e = get_entry(e)
        groups.setdefault(architecture_key(e), []).append(e)
    return groups


ZOO_CPU_BUDGET = LoopBudget(warmup_iterations=1, warmup_s=0.0, min_iterations=5, min_seconds=5.0)


@dataclass
class _Group:
    members: list[ZooEntry]
    tp: ThroughputResult | None = None
    train: TrainMemory | None = None
    started: str = ""
    skipped: list[str] = None  # type: ignore[assignment]


def measure_zoo_cpu(
    entries: Iterable[ZooEntry | str],
    *,
    budget_s: float = 300.0,
    views_per_forward: int = 2,
    train_memory: bool = True,
    records_dir: str | Path,
    progress: bool = True,
) -> list[Path]:
    """CPU throughput (``fast`` protocol, an iteration = one forward of ``views_per_forward``
    views) and training-step memory for many entries within ``budget_s``; one record per entry,
    one measurement per architecture group (see the module docstring).

    Throughput for every group comes first, then training memory for as many groups as the
    remaining budget allows (each step's cost estimated from the previous one). What was
    skipped for lack of budget is written in the record (``extra["skipped"]``), never filled in.
    """
    from tqdm import tqdm

    t_start = time.perf_counter()
    groups = [_Group(members, skipped=[]) for members in group_by_architecture(entries).values()]
    bar = tqdm(total=len(groups) * (2 if train_memory else 1), desc="CPU bench (zoo): throughput", disable=not progress)
    cost: list[float] = []
    for g in groups:
        left = budget_s - (time.perf_counter() - t_start)
        est = cost[-1] if cost else 0.0  # the first group's cost includes the one-time autotune
        if left <= est:
            g.skipped.append(f"throughput: {left:.0f} s of the {budget_s:.0f} s budget left, ~{est:.0f} s needed")
        else:
            t0 = time.perf_counter()
            g.started = now_iso()
            # On the process's thread count (as bench_pair): comparable from run to run, and the
            # autotune (precision, layout) is shared by the groups of the same convolution widths.
            g.tp = measure_throughput(g.members[0], device="cpu", protocol="fast", budget=ZOO_CPU_BUDGET,
                                      views_per_forward=views_per_forward, progress=False,
                                      threads=torch.get_num_threads())
            cost.append(time.perf_counter() - t0)
        bar.update(1)
    if train_memory:
        bar.set_description("CPU bench (zoo): train memory")
        tr_cost: list[float] = []
        for g in groups:
            left = budget_s - (time.perf_counter() - t_start)
            # Before the first step only the forward cost is known: a train step is ~3x a forward
            # of 8 clips at (224/256)^2 the pixels.
            guess = (g.tp.stats.median_s / g.tp.views_per_iteration * 8 * 3 * (224 / 256) ** 2) if g.tp else 60.0
            est = tr_cost[-1] if tr_cost else guess
            if left <= est:
                g.skipped.append(f"train memory: {left:.0f} s of the {budget_s:.0f} s budget left, ~{est:.0f} s needed")
            else:
                t0 = time.perf_counter()
                g.started = g.started or now_iso()
                thr = g.tp.conditions.get("threads") if g.tp is not None else None
                g.train = measure_train_memory(g.members[0], device="cpu", threads=thr)
                tr_cost.append(time.perf_counter() - t0)
            bar.update(1)
    bar.close()

    paths = []
    for g in groups:
        shared = {"id": new_measurement_id(), "shared_by": [m.name for m in g.members],
                  "measured_entry": g.members[0].name, "group": architecture_label(g.members[0]),
                  "why": "speed and memory depend on architecture and input shapes only (not data variant or weights)"}
        extra = {"skipped": g.skipped, "budget_s": budget_s}
        for e in g.members:
            rec = bench_record(e, g.tp, g.started or now_iso(), train_mem=g.train, measurement=shared, extra=extra)
            paths.append(write_record(rec, records_dir))
    return paths


# --------------------------------------------------------------------------- the loader side


def measure_loader(
    entry: ZooEntry | str,
    data_root: str | Path,
    ann_file: str | Path,
    *,
    workers: int = 2,
    num_videos: int = 8,
    decoder: str | None = None,
    normalize: bool = False,
    progress: bool = True,
) -> dict:
    """CPU-side rate of the entry's test pipeline (decode + sample + views), videos/s.

    The end-to-end eval overlaps this with the model: its speed is the lower of this rate and
    the model's. Videos go through a DataLoader with ``workers`` processes (0: in this process)
    as uint8 views (``normalize=False``: normalising belongs on the device); the list is cycled
    when it has fewer than ``num_videos`` videos. The clock starts when the first
    ``max(workers, 1)`` videos have arrived (worker start-up and first decodes are not the
    steady state) and stops at the last one.
    """
    from tqdm import tqdm

    from .data.dataset import build_dataset, collate_views

    entry = get_entry(entry)
    ds = build_dataset(entry, "test", data_root, ann_file, decoder=decoder, normalize=normalize)
    lead = max(workers, 1)
    order = [i % len(ds) for i in range(num_videos + lead)]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, order), batch_size=1, num_workers=workers, collate_fn=collate_views,
        persistent_workers=False,
    )
    arrivals, nbytes = [], 0
    for views, _, _, failures in tqdm(loader, total=len(order), desc=f"loader x{workers}: decode+views",
                                      disable=not progress, leave=False):
        arrivals.append(time.perf_counter())
        if failures:
            raise RuntimeError(f"{len(failures)} video(s) failed to decode: {failures[0][0]}")
        nbytes = views.element_size() * views.numel()
    timed = arrivals[lead - 1 :]
    rate = (len(timed) - 1) / (timed[-1] - timed[0])
    return {
        "entry": entry.name,
        "video_per_s": rate,
        "videos_timed": len(timed) - 1,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "views_per_video": entry.views_per_video,
        "bytes_per_video": nbytes,
        "dtype": "float32" if normalize else "uint8",
        "decoder": getattr(ds.decoder, "name", str(ds.decoder)),
        "videos_listed": len(ds),
    }


__all__ = ["architecture_key", "architecture_label", "bench", "bench_pair", "bench_record", "group_by_architecture",
           "inference_memory", "measure_loader", "measure_zoo_cpu", "memory_kind", "tensor_bytes"]
