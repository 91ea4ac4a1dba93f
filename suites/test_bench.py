"""test_bench[entry]: inference speed and the memory of inference and of a training step (heavy suite).

What runs where (everything with seeded random weights; speed and memory do not depend on them):

* Smoke entries, any device: :func:`i3dbench.measure.bench_pair` — the published protocol,
  then the fast one, side by side, each with the memory of one more iteration and of a
  training step at the recipe batch; one ``bench`` record each. --quick uses
  ``suite_support.QUICK_BUDGET`` loops, otherwise the device's default budget.
* Full-size entries on CUDA: the same pair, and the published-protocol record is judged
  against the published video/s and training memory with the gate's own functions
  (``gate.speed_vs_published``, ``gate.memory_checks``), so this suite and ``i3dbench gate``
  cannot disagree.
* Full-size entries on a CPU: once per architecture (``measure.group_by_architecture``: speed
  and memory depend on the network and its input shapes only) with
  :func:`i3dbench.measure.measure_zoo_cpu` and a time budget; every entry of the group gets
  its record of the one shared measurement. CPU figures are never compared with the
  published GPU figures. Skipped with --quick (minutes per architecture).

Pass: every number the gate reads is a positive finite number, each loop timed enough
iterations for the gate to judge it, and (CUDA, full-size) nothing regressed or undecidable
against the published numbers.
"""

from __future__ import annotations

import math

import pytest
import torch
from suite_support import (
    FULL_SIZE_CPU_GROUP_BUDGET_S,
    QUICK_BUDGET,
    read_record,
    selected_entries,
)

from i3dbench import gate, measure
from i3dbench.memory import memory_kind

pytestmark = [pytest.mark.heavy]
_GROUPS: dict = {}  # architecture key -> the entry whose test measured it (full-size entries on a CPU)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _problems(rec: dict, device: str, memory: bool = True) -> list[str]:
    """What would keep the gate from judging this bench record (empty: nothing)."""
    m, out = rec["metrics"], []
    wanted = ["video_per_s"] + (["inference_memory_mb", "train_memory_mb"] if memory else [])
    out += [f"{k} = {m.get(k)!r}" for k in wanted if not _positive(m.get(k))]
    if not isinstance(m.get("n_timed"), int) or m["n_timed"] < gate.MIN_TIMES:
        out.append(f"n_timed = {m.get('n_timed')!r} (the gate needs >= {gate.MIN_TIMES})")
    times = rec["extra"].get("times_s")
    if not isinstance(times, list) or len(times) != m.get("n_timed"):
        out.append("raw iteration times missing or not one per timed iteration")
    kind = memory_kind(torch.device(device))
    for what in ("inference", "train") if memory else ():
        if rec["conditions"].get(f"{what}_memory_kind") != kind:
            out.append(f"{what} memory kind {rec['conditions'].get(f'{what}_memory_kind')!r}, expected {kind}")
    return out


def _pair(entry, device, budget, run):
    return measure.bench_pair(entry, device, budget=budget, records_dir=run.records, progress=False)


def _check_pair(entry, device, paths) -> list[dict]:
    recs = [read_record(p) for p in paths]
    assert [r["method"]["protocol"] for r in recs] == ["published", "fast"]
    for r in recs:
        print(f"{entry.name} [{r['method']['protocol']}] {r['metrics'].get('video_per_s', math.nan):.3g} video/s "
              f"(spread {r['metrics'].get('spread', math.nan):.2f}, n={r['metrics'].get('n_timed')}), inference "
              f"{r['metrics'].get('inference_memory_mb')} MB, train {r['metrics'].get('train_memory_mb')} MB "
              f"[{r['conditions'].get('train_memory_kind')}]: {r['_file']}")
        bad = _problems(r, device)
        assert not bad, f"{entry.name} {r['method']['protocol']}: {'; '.join(bad)}"
    ratio = recs[1]["extra"].get("vs_published", {}).get("fast_over_published")
    assert _positive(ratio), f"the fast record does not say how it compares with published: {ratio!r}"
    return recs


def test_bench(zoo_entry, device, quick, run_dir, pytestconfig):
    e, dev = zoo_entry, torch.device(device)
    threads = torch.get_num_threads()
    if e.dataset == "synthetic":
        budget = QUICK_BUDGET if quick else None
        _check_pair(e, device, _pair(e, device, budget, run_dir))
        _check_threads_left(threads)
        return
    if quick:
        pytest.skip("--quick: a full-size entry's measurements take minutes")
    if dev.type == "cuda":
        recs = _check_pair(e, device, _pair(e, device, None, run_dir))
        _check_threads_left(threads)
        published = recs[0]
        checks = [gate.speed_vs_published(e, published, [e.name])] + gate.memory_checks(e, published, None, [e.name])
        print(gate.format_checks(checks))
        bad = [c for c in checks if c.status in (gate.REGRESSED, gate.CANNOT)]
        assert not bad, "against the published numbers:\n" + gate.format_checks(bad)
        return
    _bench_full_size_on_cpu(e, pytestconfig, run_dir)


def _check_threads_left(threads: int) -> None:
    # A measurement leaves the process as it found it (timing.measure_throughput says so): a
    # leaked thread count would silently change the conditions of every later measurement.
    now = torch.get_num_threads()
    assert now == threads, (f"the measurement left torch's intra-op thread count at {now} (it was {threads}): "
                            "later measurements in this process would run under other conditions")


def _bench_full_size_on_cpu(e, config, run_dir):
    key = measure.architecture_key(e)
    if key in _GROUPS:
        pytest.skip(f"CPU budget: same architecture and input shapes as {_GROUPS[key]}, measured once there; "
                    "its records name this entry too (a shared measurement)")
    _GROUPS[key] = e.name
    # The group: the session's selected full-size entries sharing e's architecture.
    members = [m for m in selected_entries(config).values()
               if m.dataset != "synthetic" and measure.architecture_key(m) == key]

    threads = torch.get_num_threads()
    paths = measure.measure_zoo_cpu(members, budget_s=FULL_SIZE_CPU_GROUP_BUDGET_S, records_dir=run_dir.records,
                                    progress=False)
    _check_threads_left(threads)
    recs = {r["entry"]: r for r in map(read_record, paths)}
    rec = recs[e.name]
    assert set(rec["measurement"].get("shared_by", [])) == {m.name for m in members}
    skipped = rec["extra"].get("skipped") or []
    print(f"{e.name} (+{len(members) - 1} sharing): {rec['metrics'].get('video_per_s', math.nan):.3g} video/s, "
          f"train {rec['metrics'].get('train_memory_mb')} MB" + (f"; skipped: {skipped}" if skipped else ""))
    assert not any(s.startswith("throughput") for s in skipped), skipped
    bad = _problems(rec, "cpu", memory=False)
    if not any(s.startswith("train memory") for s in skipped) and not _positive(rec["metrics"].get("train_memory_mb")):
        bad.append(f"train_memory_mb = {rec['metrics'].get('train_memory_mb')!r}")
    assert not bad, f"{e.name}: {'; '.join(bad)}"
