"""`i3dbench run --plan`: what a run would evaluate and how long it would take, before paying for it.

For each input group (``loader.group_by_input``) it reports the entries, the number of listed
videos, and three costs per video, each *measured here by a short probe* or labelled with
where it comes from:

* ``decode_s`` — a loading process decoding the distinct frames a video's test clips need
  (``ClipDataset(handover="frames")``, the evaluation's own dataset): the median over
  ``probe_videos`` videos of the group's list, after one untimed warm-up decode;
* ``resize_s`` — the evaluating process resizing those frames to the protocol's short side
  (always on the CPU, see loader.py);
* ``device_s`` — on the device: cutting and normalising the views (``loader.views_from_decoded``
  minus its resize) once per normalisation, plus each entry's model: one forward of a whole
  video's views in one batch, as the evaluation forwards them (``evaluate._score``; seeded random
  weights: speed does not depend on them; after the first call and one warm-up, the median of
  3-10 calls; a first call slower than :data:`SLOW_FORWARD_S` is the measurement).
  Timing one view and multiplying by the views underestimates a CPU (30 views of a full-size I3D
  run slower per view than one). A Kinetics-400 group on a CPU, which ``run`` skips there, is probed
  with one view (what ``eval --views 1x1`` runs) times its views, labelled an estimate: its 30-view
  forward would cost tens of seconds per architecture. ``--model-s-per-video`` replaces the measured device time with a
  given one per entry and video, views included (e.g. a GPU number on a CPU machine), and the output
  says so;
* ``setup_s`` — once per group and rank: each entry's model built and its first forward, which
  pays for creating the kernels' primitives at the evaluation's shapes (measured with the probe);
  with workers, ``loader_start_s``: the loading processes started (measured once per plan).
* ``pipeline_s`` — given the run's ``workers``, a group the run evaluates on this device from a
  measured list also gets the evaluation's own loop timed with that many loading processes
  (:func:`probe_pipeline`: ``n`` and ``2n`` videos, the difference per video), which the projection
  uses for those workers: on a CPU, loading processes and the forward contend for the cores in a
  way no sum of costs measured apart predicts.

Projection (:func:`group_seconds`, :func:`project`): loading processes decode in parallel with
the evaluating process, which resizes, builds views and runs the models one video at a time::

    per video  = pipeline_s                                      the loop was timed with these workers
               = max(decode_s / workers, resize_s + device_s)    else: workers >= 1, a GPU device
               = decode_s + resize_s + device_s                  workers = 0 (all in one process), or a CPU
                                                                 device (its forward uses every core)
    group      = videos x per video / gpus + setup_s (+ loader_start_s with workers)   (ranks shard the videos)
    local      = sum of the groups                               (one after the other)
    slurm      = the longest node: groups longest first, each onto the least-loaded of `nodes`
                 nodes (one job per group; with nodes >= groups: the longest group)

It assumes decode time scales with the number of loading processes (enough cores, disk keeps up).
A Kinetics-400 group without a copy has no list to probe: its decode cost is an *estimate* from
the synthetic set of the same format and resolution (seconds per decoded frame x the distinct
frames the group's sampler picks from a ``KINETICS_FRAMES``-frame video) and is labelled so.

The plan has no side effects: when the synthetic set is not in the cache yet, it is not
generated there (that is ``run``'s job): the probe runs on a throwaway copy of a few videos in a
temporary folder, removed before the plan returns, and the videos are counted as the set
``run`` would generate lists them.
"""

from __future__ import annotations

import heapq
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Optional

from .errors import UsageError
from .zoo import ZooEntry

KINETICS_FRAMES = 300  # a 10 s Kinetics-400 clip at 30 fps: what an estimate without a copy assumes
SLOW_FORWARD_S = 2.0  # a first forward slower than this is the measurement (no warm-up, no 3-10 more calls)


@dataclass
class GroupCost:
    """One input group's size and per-video costs (seconds), each with how it was obtained."""

    label: str
    entries: list[str]
    videos: Optional[int]  # None: unknown (no list)
    decode_s: Optional[float]
    resize_s: Optional[float]
    device_s: Optional[float]
    basis: dict = field(default_factory=dict)  # "videos" / "decode" / "resize" / "device" / "setup" -> where from
    setup_s: float = 0.0  # once per group and rank: the entries' models built and their first forward
    # Loading processes overlap with the model (a GPU device); on a CPU device the model's forward uses
    # every core, so decoding in other processes takes its time from it: the costs add up.
    overlap: bool = True
    loader_start_s: float = 0.0  # once per group with workers >= 1: the loading processes started
    # The evaluation's own loop timed with ``pipeline_workers`` loading processes (probe_pipeline): where
    # measured, it is the per-video cost for that many workers (decode and forward contending included)
    pipeline_s: Optional[float] = None
    pipeline_workers: Optional[int] = None

    @property
    def complete(self) -> bool:
        return None not in (self.videos, self.decode_s, self.resize_s, self.device_s)


def per_video_seconds(c: GroupCost, workers: int) -> float:
    """Seconds per video of one rank (see the module docstring)."""
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    if c.pipeline_s is not None and workers == c.pipeline_workers:
        return c.pipeline_s
    main = c.resize_s + c.device_s
    return c.decode_s + main if workers == 0 or not c.overlap else max(c.decode_s / workers, main)


def group_seconds(c: GroupCost, workers: int, gpus: int = 1) -> float:
    """Wall seconds of one group's evaluation with ``workers`` loading processes per rank and ``gpus`` ranks."""
    return c.videos * per_video_seconds(c, workers) / max(1, gpus) + c.setup_s + (c.loader_start_s if workers else 0.0)


@dataclass
class Projection:
    launcher: str
    workers: int
    gpus_per_node: int
    nodes: int
    group_s: list  # seconds per group, in the order of the costs (None: not projected, see missing)
    total_s: float
    missing: list[str]  # groups left out: what they lack
    formula: str


def project(costs: list[GroupCost], *, workers: int, launcher: str = "local", nodes: int = 1,
            gpus_per_node: int = 1) -> Projection:
    """Projected wall time of evaluating ``costs`` (see the module docstring). Groups with an unknown
    number of videos or cost are left out and named in ``missing``."""
    if launcher not in ("local", "slurm"):
        raise UsageError(f"--launcher {launcher!r}: choose local or slurm")
    if nodes < 1:
        raise UsageError(f"--nodes must be >= 1, got {nodes}")
    gpus = max(1, gpus_per_node)
    # by position: two groups may share a label (input_label leaves out e.g. the JPEG backend)
    group_s = [group_seconds(c, workers, gpus) if c.complete else None for c in costs]
    known = [s for s in group_s if s is not None]
    missing = [f"{c.label}: {', '.join(k for k in ('videos', 'decode', 'resize', 'device') if c.basis.get(k, '').startswith('unknown'))}"
               for c in costs if not c.complete]
    per = ("max(decode_s / workers, resize_s + device_s)" if workers and all(c.overlap for c in costs) else
           "(decode_s + resize_s + device_s)" if not workers or not any(c.overlap for c in costs) else
           "max(decode_s / workers, resize_s + device_s) (GPU) or (decode_s + resize_s + device_s) (CPU)")
    looped = [c.pipeline_s is not None and c.pipeline_workers == workers for c in costs]
    if costs and all(looped):
        per = "the whole loop's measured s/video"
    elif any(looped):
        per = f"(the whole loop's measured s/video where timed with these workers, else {per})"
    if launcher == "local":
        total = sum(known)
        formula = (f"local = sum over groups of videos x {per}" + (f" / {gpus} GPUs" if gpus > 1 else "")
                   + " + setup_s" + (" + loader_start_s" if workers else ""))
    else:
        loads = [0.0] * nodes  # longest group first onto the least-loaded node
        for s in sorted(known, reverse=True):
            heapq.heapreplace(loads, loads[0] + s)
        total = max(loads, default=0.0)
        formula = (f"slurm = busiest of {nodes} node(s), one job per group (longest first onto the least-loaded node); "
                   f"group = videos x {per} / {gpus} GPU(s) per job + setup_s" + (" + loader_start_s" if workers else ""))
    return Projection(launcher, workers, gpus, nodes, group_s, total, missing, f"{formula}; workers = {workers}")


# --------------------------------------------------------------------------- probes


def _median_time(fn, min_reps: int = 3, max_reps: int = 10, min_total_s: float = 1.0) -> float:
    """Median seconds of ``fn()``: at least ``min_reps`` calls, more (up to ``max_reps``) until
    ``min_total_s`` have passed — on a shared machine one slow call must not set the number."""
    times: list[float] = []
    while len(times) < min_reps or (sum(times) < min_total_s and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def probe_input(entry: ZooEntry, data_root, ann_file, *, device: str = "cpu", videos: int = 3,
                decoder=None) -> dict:
    """decode_s, resize_s and the views part of device_s for ``entry``'s input, measured on up to
    ``videos`` videos of the list (median; one untimed warm-up decode first), plus what was measured."""
    import torch

    from .data import transforms as T
    from .data.dataset import build_dataset
    from .loader import views_from_decoded

    ds = build_dataset(entry, "test", data_root, ann_file, decoder=decoder, normalize=False, handover="frames")
    n = max(1, min(videos, len(ds)))
    ds.decode(0)  # warm-up: decoder start-up, file cache
    decode, resize, views, frames = [], [], [], []
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for i in range(n):
        t0 = time.perf_counter()
        item = ds.decode(i)
        t1 = time.perf_counter()
        T.resize_short(item.frames, entry.data.resize_short, entry.data.resize_backend)
        t2 = time.perf_counter()
        views_from_decoded(item, entry, device)  # resize again, then to the device, crops, normalise
        sync()
        t3 = time.perf_counter()
        decode.append(t1 - t0)
        resize.append(t2 - t1)
        views.append(max(0.0, (t3 - t2) - (t2 - t1)))
        frames.append(int(item.frames.shape[0]))
    return {"decode_s": statistics.median(decode), "resize_s": statistics.median(resize),
            "views_s": statistics.median(views), "videos": n, "frames_per_video": statistics.median(frames),
            "decoder": getattr(ds.decoder, "name", str(ds.decoder)), "listed": len(ds)}


def probe_pipeline(group: list[ZooEntry], data_root, ann_file, *, device: str = "cpu", workers: int = 2,
                   per_video_guess: float = 0.05, min_seconds: float = 1.0) -> tuple[float, int]:
    """``(seconds per video, videos)``: the evaluation's own loop (``evaluate._run_models``: the
    evaluation's dataset handing over decoded frames through a ``DataLoader`` with ``workers``
    loading processes, each video's views built once per normalisation, each entry's model, seeded
    random weights, forwarding a whole video's views), run over ``n`` and over ``2n`` videos of the
    list (cycled); the difference of the two wall times over ``n``. What both runs pay once (the
    loading processes' start, the loader's end) cancels; what remains is each video's cost while
    decoding and forwards share the machine. ``n``: enough videos for ``min_seconds`` at
    ``per_video_guess`` (3-64).

    Why: on a CPU the loading processes and the forward contend for the same cores. Measured on the
    2-core CI machine (``dev/plan_vs_eval.py``): with 2 loading processes the smoke rawframes row's
    forward took 0.025 s per video inside the evaluation against 0.013 s alone, and a plan summing
    costs measured apart read 0.69-0.70 of the evaluation's s/video."""
    import math

    import torch
    from torch.utils.data import DataLoader, Subset

    from .data.dataset import DecodedVideo, build_dataset
    from .evaluate import _collate
    from .loader import views_from_decoded
    from .timing import random_model

    ds = build_dataset(group[0], "test", data_root, ann_file, normalize=False, handover="frames")
    models = [(e, random_model(e).to(device).eval()) for e in group]
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def run(n: int) -> float:
        loader = DataLoader(Subset(ds, [i % len(ds) for i in range(n)]), batch_size=1, num_workers=workers,
                            collate_fn=_collate, pin_memory=str(device).startswith("cuda"), persistent_workers=False)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for batch in loader:
                for item, _, _ in batch:
                    if not isinstance(item, DecodedVideo):
                        continue  # a video that fails to decode costs the evaluation its decode only
                    views: dict = {}
                    for e, model in models:
                        norm = (tuple(e.data.mean), tuple(e.data.std))
                        if norm not in views:
                            views[norm] = views_from_decoded(item, e, device)
                        model(views[norm])
            sync()
        return time.perf_counter() - t0

    n = max(3, min(64, math.ceil(min_seconds / max(per_video_guess, 1e-6))))
    run(2)  # warm: the kernels' primitives at these shapes, the file cache
    once = run(n)
    twice = run(2 * n)
    return max(0.0, (twice - once) / n), n


def probe_loader_start(entry: ZooEntry, data_root, ann_file) -> float:
    """Seconds until a loading process (``DataLoader(num_workers=1)``, as the evaluation starts them,
    not persistent) hands over its first decoded video, beyond that video's decode in this process:
    what an evaluation with workers pays once (its processes start in parallel)."""
    import torch

    from .data.dataset import build_dataset
    from .evaluate import _collate

    ds = build_dataset(entry, "test", data_root, ann_file, normalize=False, handover="frames")
    ds.decode(0)  # warm: file cache, decoder start-up
    t0 = time.perf_counter()
    ds.decode(0)
    decode = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [0]), batch_size=1, num_workers=1,
                                         collate_fn=_collate, persistent_workers=False)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return max(0.0, time.perf_counter() - t0 - decode)


def frames_to_decode(entry: ZooEntry, total_frames: int) -> int:
    """How many distinct frames the entry's test sampler asks the decoder for on a video of ``total_frames``."""
    from .data.dataset import ClipDataset, _frames_to_decode

    ds = ClipDataset(entry, "test", [], ".", decoder=None, handover="frames", seed=0)
    wanted, _ = _frames_to_decode(ds._sample(total_frames, None).indices,
                                  contiguous_ok=entry.data.format != "rawframes")
    return len(wanted)


def probe_forward(entry: ZooEntry, device: str = "cpu", views: Optional[int] = None) -> tuple[float, float]:
    """``(seconds per video, setup seconds)`` of ``entry``'s model on ``device``: one forward of a
    whole video's test views in one batch (``entry.views_per_video`` views, as ``evaluate._score``
    forwards them; seeded random weights) after the first call and one warm-up, the median of 3-10
    calls (:func:`_median_time`); a first call slower than :data:`SLOW_FORWARD_S` is the measurement
    (one call per architecture keeps a CPU plan of the zoo to minutes). Setup: building the model plus
    the first call's time beyond a steady one (the kernels' primitives created for these shapes),
    which the evaluation pays once per entry. ``views``: forward that many views instead (the seconds
    are then those of ``views`` views, e.g. one view for ``eval --views 1x1``)."""
    import torch

    from .timing import random_model

    t0 = time.perf_counter()
    model = random_model(entry).to(device)
    build = time.perf_counter() - t0
    x = torch.randn(views or entry.views_per_video, 3, entry.data.clip_len, entry.test.crop_size,
                    entry.test.crop_size, device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def step():
        model(x)
        sync()

    with torch.inference_mode():
        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
        if first > SLOW_FORWARD_S:  # e.g. 30 full-size views on a CPU: creating primitives is small beside it
            return first, build
        else:
            step()  # a second call may still create primitives
            steady = _median_time(step)
    return steady, build + max(0.0, first - steady)


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    costs: list[GroupCost]
    device: str
    probe_videos: int
    notes: list[str] = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (group label, entries, why): a backend it needs is missing


def make_plan(entries: dict[str, ZooEntry], *, device: str = "cpu", k400=None, probe_videos: int = 3,
              model_s_per_video: Optional[float] = None, assume_videos: Optional[int] = None,
              progress: bool = False, workers: Optional[int] = None) -> Plan:
    """Probe every input group of ``entries`` (see the module docstring); nothing is evaluated.
    ``workers``: the loading processes the run will use; a group that the run evaluates on this device
    from a measured list then also gets its whole loop timed with them (:func:`probe_pipeline`)."""
    import sys

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    plan = Plan([], device, probe_videos)
    scratch: dict = {}  # a throwaway synthetic set, when the cache has none (see _synthetic_input)
    try:
        _plan_groups(plan, entries, device, k400, probe_videos, model_s_per_video, assume_videos, say, scratch,
                     workers)
    finally:
        if "dir" in scratch:
            import shutil

            shutil.rmtree(scratch["dir"], ignore_errors=True)
    return plan


def _synthetic_input(entry: ZooEntry, scratch: dict):
    """``(root, ann, videos)``: the synthetic val set in ``entry``'s format and resolution. The
    cache's own set when it is there (``videos`` None: its list counts); else a throwaway copy of
    3 videos in a temporary folder (``scratch["dir"]``, the caller removes it), with ``videos``
    what the set ``run`` generates would list: nothing is written into the cache."""
    import tempfile
    from pathlib import Path

    from .data.synthetic import CLASSES, DEFAULTS, generate_synthetic, synthetic_paths
    from .runner import smoke_data

    found = smoke_data(entry, "val", generate=False)
    if found is not None:
        return (*found, None)
    fmt, res = entry.data.format, entry.data.resolution
    if "dir" not in scratch:
        scratch["dir"] = Path(tempfile.mkdtemp(prefix="i3dbench-plan-"))
    where = scratch["dir"] / f"{fmt}-{res}"
    if not where.exists():
        generate_synthetic(where, seed=DEFAULTS["seed"], videos_per_class=1, val_videos_per_class=1,
                           num_frames=DEFAULTS["num_frames"], sizes=(res,), formats=(fmt,), classes=CLASSES[:3],
                           workers=1, progress=False)
    return (*synthetic_paths(where, fmt, res, "val"), DEFAULTS["val_videos_per_class"] * len(CLASSES))


def _plan_groups(plan: Plan, entries, device, k400, probe_videos, model_s_per_video, assume_videos, say,
                 scratch: dict, workers: Optional[int] = None) -> None:
    from .data.decoders import BackendUnavailable
    from .loader import group_by_input, input_label
    from .measure import architecture_key

    forward_cache: dict = {}  # architecture_key -> s per view (entries of one architecture run at one speed)
    for group in group_by_input(entries.values()):
        first = group[0]
        basis: dict = {}
        synthetic_videos = None
        if first.dataset == "synthetic":
            root, ann, synthetic_videos = _synthetic_input(first, scratch)
            where = "measured"
        elif k400 is not None and k400.for_entry(first) is not None:  # data.k400copy.K400Copy
            root, ann = k400.for_entry(first)
            where = "measured"
        else:  # the synthetic set in the group's format and resolution stands in for the copy
            root, ann, _ = _synthetic_input(first, scratch)
            where = "estimate"
        say(f"[plan] probing the input of {input_label(first)} ({where}) ...")
        try:
            probe = probe_input(first, root, ann, device=device, videos=probe_videos)
        except BackendUnavailable as err:  # e.g. the lazy rows' turbojpeg: the other groups are still planned
            plan.skipped.append((input_label(first), [e.name for e in group], str(err)))
            continue
        norms = {(tuple(e.data.mean), tuple(e.data.std)) for e in group}
        if where == "measured" and synthetic_videos is not None:
            videos = synthetic_videos
            basis["videos"] = (f"the synthetic val set `run` generates ({synthetic_videos} videos; not in the cache yet, "
                               f"probed on a throwaway copy)")
            decode_s, resize_s = probe["decode_s"], probe["resize_s"]
            basis["decode"] = (f"measured: median of {probe['videos']} synthetic videos ({probe['decoder']}, "
                               f"{probe['frames_per_video']:.0f} frames each), one process")
            basis["resize"] = "measured: resize of those frames, CPU"
        elif where == "measured":
            videos = probe["listed"]
            basis["videos"] = f"listed in {ann}"
            decode_s, resize_s = probe["decode_s"], probe["resize_s"]
            basis["decode"] = (f"measured: median of {probe['videos']} videos of the list ({probe['decoder']}, "
                               f"{probe['frames_per_video']:.0f} frames each), one process")
            basis["resize"] = "measured: resize of those frames, CPU"
        else:
            videos = assume_videos
            basis["videos"] = (f"given: --assume-videos {assume_videos}" if assume_videos else
                               "unknown: no Kinetics-400 list (set I3DBENCH_K400_ROOT / I3DBENCH_K400_ANN, or --assume-videos N)")
            need = frames_to_decode(first, KINETICS_FRAMES)
            scale = need / max(1.0, probe["frames_per_video"])
            decode_s, resize_s = probe["decode_s"] * scale, probe["resize_s"] * scale
            basis["decode"] = (f"estimate: no Kinetics-400 copy of this format; {probe['decode_s'] / max(1.0, probe['frames_per_video']) * 1e3:.2f} ms "
                               f"per frame measured on the synthetic {first.data.format} {first.data.resolution} set "
                               f"x {need} distinct frames the sampler picks from a {KINETICS_FRAMES}-frame video "
                               "(needs I3DBENCH_K400_ROOT / I3DBENCH_K400_ANN to measure)")
            basis["resize"] = "estimate: the same scaling of the measured resize"
        # `run` skips a Kinetics-400 group on a CPU (runner.eval_tasks): its 30-view forward (tens of seconds
        # per architecture here) is not probed, one view is (what `eval --views 1x1` runs), scaled and so labelled
        one_view = first.dataset != "synthetic" and not str(device).startswith("cuda")
        forwards, fwd_basis, setup = 0.0, [], 0.0
        for e in group:
            if model_s_per_video is not None:
                forwards += model_s_per_video
                continue
            key = (architecture_key(e), 1 if one_view else e.views_per_video, e.data.clip_len, e.test.crop_size, device)
            if key not in forward_cache:
                say(f"[plan] probing the model of {e.name} on {device} ...")
                forward_cache[key] = probe_forward(e, device, views=1 if one_view else None)
            measured, entry_setup = forward_cache[key]
            per_video = measured * e.views_per_video if one_view else measured
            forwards += per_video
            setup += entry_setup
            fwd_basis.append(f"{e.name} {measured:.3f} s/view x {e.views_per_video}" if one_view else
                             f"{e.name} {per_video:.3f} s for its {e.views_per_video} views")
        views_s = probe["views_s"] * len(norms)  # views are built once per normalisation (evaluate._score)
        if model_s_per_video is not None:
            # the given number is the target device's whole share (views + forward): on a GPU the
            # views are cut and normalised there, so this machine's CPU time for them does not apply
            views_s = 0.0
            basis["device"] = (f"given: --model-s-per-video {model_s_per_video:g} per entry (x {len(group)}), "
                               f"views and forward on the target device; measured here for comparison: views "
                               f"{probe['views_s']:.3f} s on {device}")
        elif one_view:
            basis["device"] = (f"estimate: run skips this group on {device}, so one view is probed, not a video's "
                               f"{first.views_per_video} in one forward (on a CPU that underestimates); one forward of "
                               f"one view x its views per entry ({'; '.join(fwd_basis)}) + views "
                               f"({probe['views_s']:.3f} s x {len(norms)} normalisation(s)); --model-s-per-video S "
                               "for a GPU's number")
            basis["setup"] = f"measured on {device}: each entry's model built and its first one-view forward"
        else:
            basis["device"] = (f"measured on {device}: one forward of a whole video's views per entry, as the "
                               f"evaluation batches them ({'; '.join(fwd_basis)}) + "
                               f"views ({probe['views_s']:.3f} s x {len(norms)} normalisation(s))")
            basis["setup"] = (f"measured on {device}: each entry's model built and its first forward beyond a "
                              "steady one, once per rank")
        if "loader_start" not in scratch:  # once per plan: the loading processes' start-up, on this machine
            scratch["loader_start"] = probe_loader_start(first, root, ann)
        basis["loader_start"] = "measured: a loading process started and its first video handed over, once per group"
        cost = GroupCost(input_label(first), [e.name for e in group], videos, decode_s, resize_s, forwards + views_s,
                         basis, setup, overlap=str(device).startswith("cuda") or model_s_per_video is not None,
                         loader_start_s=scratch["loader_start"])
        if workers is not None and where == "measured" and not one_view and model_s_per_video is None:
            say(f"[plan] timing the evaluation's loop of {input_label(first)} with {workers} loading process(es) ...")
            guess = per_video_seconds(cost, workers)
            cost.pipeline_s, n = probe_pipeline(group, root, ann, device=device, workers=workers, per_video_guess=guess)
            cost.pipeline_workers = workers
            basis["pipeline"] = (f"measured: the evaluation's loop (decode in {workers} loading process(es), views, "
                                 f"every entry's forward) over {n} and {2 * n} videos of the list, the difference per "
                                 f"video; the costs above, summed, would give {fmt_seconds(guess)}")
        plan.costs.append(cost)


def fmt_seconds(s: Optional[float]) -> str:
    if s is None:
        return "?"
    if s < 120:
        return f"{s:.3g} s"
    if s < 2 * 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def describe(plan: Plan, projection: Projection) -> str:
    """The text ``run --plan`` prints: one block per group, then the projection and its formula."""
    lines = [f"plan: {len(plan.costs)} input group(s); seconds per video probed on this machine "
             f"(device {plan.device}, {plan.probe_videos} video(s) per group); nothing was evaluated", ""]
    for c, group_s in zip(plan.costs, projection.group_s):
        lines.append(f"group {c.label}")
        lines.append(f"  entries ({len(c.entries)}): {', '.join(c.entries)}")
        lines.append(f"  videos: {c.videos if c.videos is not None else '?'} ({c.basis.get('videos')})")
        lines.append(f"  decode: {fmt_seconds(c.decode_s)}/video ({c.basis.get('decode')})")
        lines.append(f"  resize: {fmt_seconds(c.resize_s)}/video ({c.basis.get('resize')})")
        lines.append(f"  device: {fmt_seconds(c.device_s)}/video ({c.basis.get('device')})")
        if c.setup_s:
            lines.append(f"  setup: {fmt_seconds(c.setup_s)} once ({c.basis.get('setup')})")
        if c.loader_start_s and projection.workers:
            lines.append(f"  loader start: {fmt_seconds(c.loader_start_s)} once ({c.basis.get('loader_start')})")
        if c.pipeline_s is not None:
            lines.append(f"  whole loop: {fmt_seconds(c.pipeline_s)}/video with {c.pipeline_workers} loading process(es) "
                         f"({c.basis.get('pipeline')})" + ("" if projection.workers == c.pipeline_workers else
                                                          f"; not used: the projection has {projection.workers}"))
        if group_s is not None:
            lines.append(f"  projected: {fmt_seconds(group_s)} "
                         f"({fmt_seconds(per_video_seconds(c, projection.workers))}/video per rank)")
        if plan.device == "cpu" and not all(n.startswith("smoke_") for n in c.entries):
            lines.append("  run: skips this group on a CPU (a 30-view Kinetics-400 evaluation needs a GPU); to evaluate "
                         f"here anyway: i3dbench eval {c.entries[0]} --views 1x1 (1 view of 30: at most about "
                         f"{fmt_seconds(_one_view_seconds(c) * c.videos) if c.videos and _one_view_seconds(c) else '?'}"
                         " per entry; not comparable with the published numbers)")
        lines.append("")
    for label, names, why in plan.skipped:
        lines += [f"group {label}", f"  entries ({len(names)}): {', '.join(names)}",
                  f"  skipped: {why} (run fails these entries the same way; the other groups are planned)", ""]
    lines.append(f"projected wall time ({projection.launcher}): {fmt_seconds(projection.total_s)}"
                 + (" for the groups above that have a number" if projection.missing else ""))
    lines.append(f"  formula: {projection.formula}")
    lines += [f"  left out: {m}" for m in projection.missing]
    return "\n".join(lines)


def _one_view_seconds(c: GroupCost) -> Optional[float]:
    """At most the seconds per video of one entry of the group evaluated with one view (--views 1x1):
    the decode and resize as probed (for the protocol's 10 clips: an upper bound), the device time of
    one entry scaled from its 30 views (every Kinetics-400 row is 10x3) to one."""
    if c.device_s is None or c.decode_s is None or c.resize_s is None or not c.entries:
        return None
    return c.decode_s + c.resize_s + c.device_s / len(c.entries) / 30


def with_model_time(costs: list[GroupCost], model_s_per_video: float, views_s: float = 0.0) -> list[GroupCost]:
    """The costs with every entry's model time replaced by ``model_s_per_video`` (e.g. a GPU's) and the
    views' device time by ``views_s`` per video: what-if numbers for another machine, for :func:`project`."""
    return [replace(c, device_s=model_s_per_video * len(c.entries) + views_s,
                    basis={**c.basis, "device": f"given: {model_s_per_video:g} s/video per entry + {views_s:g} s views"})
            for c in costs]


__all__ = [
    "KINETICS_FRAMES",
    "GroupCost",
    "Plan",
    "Projection",
    "describe",
    "fmt_seconds",
    "frames_to_decode",
    "group_seconds",
    "make_plan",
    "per_video_seconds",
    "probe_forward",
    "probe_input",
    "project",
    "with_model_time",
]
