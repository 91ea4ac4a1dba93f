"""test_gate_power: does the regression gate see planted bugs, and stay quiet on unchanged code? (heavy suite)

The acceptance benchmark of ``i3dbench.gate``, measured on this machine's CPU:

* **Speed.** ``TRIALS`` interleaved trials (2 with --quick) on the smoke entry, published
  protocol, CPU, the default CPU loop budget (``timing.CPU_BUDGET``). Each trial measures three
  models in ONE timed loop whose iterations take turns (``timing.measure_interleaved``; the
  order within a round rotates), into three records folders: a baseline, the unchanged model,
  and the model with a planted slowdown — so the machine's drift between windows (up to ~1.4x on
  this project's 2-core machine) lands on all three alike — then runs
  ``gate.run_gate(candidate, baseline=baseline)`` for the two candidates. The planted slowdown (:class:`Stretched`) makes the model's forward take
  exactly ``SLOWDOWN`` times its own time (it busy-waits on one core for the extra half), so
  an iteration — forward plus view averaging and the copy back — is at most 1.5x slower: the
  gate is credited with no more than the stated slowdown.
  Pass: detected (exit 1) in at least 90 % of the trials; unchanged code never fails the
  gate (exit 1 or 2 are both false alarms, exit 2 "cannot judge" is counted separately too).
  With --quick (2 trials, a smoke test of the mechanism on a CI runner, not the acceptance
  figure): the slowed model never passes (exit 0) and is detected at least once, unchanged
  code never exits 1; a "cannot judge" (a burst of other work on the runner) is reported.
* **Accuracy.** The smoke entry evaluated normally, and with a planted constant head (the
  classifier's weights zeroed after loading the checkpoint, as when a head silently fails to
  load: every video gets the same scores, the bias). The gate of the second against the
  first must exit 1 (the paired McNemar test on per-video correctness).

Counts, exit codes, p-values and median-time ratios go to ``<run>/perf/gate_power.json`` (with
the conditions and method) and a table to ``gate_power.md``; every record measured here stays
under ``<run>/perf/gate_power/`` (not in ``<run>/records``: they are the gate's test material,
not measurements of the zoo).
"""

from __future__ import annotations

import math
import os
import time

import pytest
import torch
from suite_support import perf_dir, write_perf
from torch import nn

from i3dbench import gate, measure
from i3dbench.records import collect_conditions, now_iso, write_record
from i3dbench.runs import RunDir
from i3dbench.timing import CPU_BUDGET, measure_interleaved, random_model

pytestmark = pytest.mark.heavy

ENTRY = "smoke_i3d_tiny_video"
TRIALS, QUICK_TRIALS = 10, 2
SLOWDOWN = 1.5
MIN_DETECTED_FRACTION = 0.9
ROLES = ("baseline", "unchanged", "slowed")


class Stretched(nn.Module):
    """``inner``, made ``factor`` times slower in wall time: after its forward it busy-waits until
    ``factor`` times the forward's own duration has passed (a CPU-bound slowdown, like extra
    compute, of exactly the stated size)."""

    def __init__(self, inner: nn.Module, factor: float):
        super().__init__()
        self.inner, self.factor = inner, float(factor)

    def forward(self, x):
        t0 = time.perf_counter()
        out = self.inner(x)
        end = t0 + self.factor * (time.perf_counter() - t0)
        while time.perf_counter() < end:
            pass
        return out


def _speed_check(result: gate.GateResult):
    return next((c for c in result.checks if c.metric == "video_per_s"), None)


def _gate_row(candidate, baseline) -> dict:
    res = gate.run_gate(candidate, baseline=baseline)
    c = _speed_check(res)
    return {"exit": res.exit_code, "status": c.status if c else None, "p": c.p if c else None,
            "change": c.change if c else None, "test": c.test if c else None, "why": (c.why if c else None) or None,
            "problems": res.problems}


def _speed_trials(entry, n: int, root) -> list[dict]:
    base_model = random_model(entry, 0)
    models = {"baseline": base_model, "unchanged": random_model(entry, 0), "slowed": Stretched(random_model(entry, 0),
                                                                                              SLOWDOWN)}
    rows = []
    for t in range(n):
        folder = root / f"trial-{t + 1:02d}"
        order = ROLES[t % 3:] + ROLES[:t % 3]
        row = {"trial": t + 1, "order": list(order), "measured": _measure_trial(entry, {r: models[r] for r in order},
                                                                                folder)}
        for role in ("unchanged", "slowed"):
            row[role] = _gate_row(folder / role, folder / "baseline")
            row[role]["time_ratio_vs_baseline"] = (row["measured"][role]["median_s"]
                                                   / row["measured"]["baseline"]["median_s"])
        print(f"trial {t + 1}/{n} ({' > '.join(order)}): unchanged exit {row['unchanged']['exit']} "
              f"({row['unchanged']['change']}), slowed exit {row['slowed']['exit']} ({row['slowed']['change']}, "
              f"p={row['slowed']['p']})", flush=True)
        rows.append(row)
    return rows


def _measure_trial(entry, models: dict, folder) -> dict:
    """One interleaved trial: the three roles' iterations take turns in one timed loop
    (``timing.measure_interleaved``), so the machine's drift between windows lands on all three."""
    load_before = os.getloadavg()[0]
    started = now_iso()
    results = measure_interleaved(entry, models, device="cpu", protocol="published", budget=CPU_BUDGET,
                                  progress=False)
    out = {}
    for role, tp in results.items():
        planted = {"slowed": f"planted: the model's forward stretched to x{SLOWDOWN} its own time (busy-wait)"}.get(role)
        rec = measure.bench_record(entry, tp, started, extra={"gate_power": {"role": role, "planted": planted}})
        path = write_record(rec, RunDir(folder / role).records)
        out[role] = {"record": path.name, "video_per_s": tp.video_per_s, "median_s": tp.stats.median_s,
                     "spread": tp.stats.spread, "n_timed": tp.stats.n, "threads": tp.conditions.get("threads"),
                     "loadavg_1min_before": load_before, "loadavg_1min_after": os.getloadavg()[0]}
    return out


def _constant_head(entry, root) -> dict:
    from i3dbench.checkpoints import load_checkpoint
    from i3dbench.evaluate import evaluate
    from i3dbench.models import build_model
    from i3dbench.runner import smoke_checkpoint, smoke_data

    data_root, ann = smoke_data(entry)
    ckpt = smoke_checkpoint(entry, train_if_missing=True)
    normal = evaluate(entry, data_root, ann, checkpoint=ckpt, device="cpu", out=RunDir(root / "normal"),
                      num_workers=1, fresh=True, progress=False)
    broken = build_model(entry).eval()
    load_checkpoint(broken, ckpt)
    with torch.no_grad():
        broken.cls_head.fc_cls.weight.zero_()  # the planted bug: scores = the bias, for every video
    const = evaluate(entry, data_root, ann, model=broken, device="cpu", out=RunDir(root / "constant"), num_workers=1,
                     fresh=True, progress=False)
    res = gate.run_gate(root / "constant", baseline=root / "normal")
    checks = {c.metric: {"status": c.status, "p": c.p, "change": c.change, "test": c.test} for c in res.checks}
    print(f"constant head: top-1 {const.metrics['top1']:.2f} vs {normal.metrics['top1']:.2f}: gate exit {res.exit_code}")
    return {"exit": res.exit_code, "top1_normal": normal.metrics["top1"], "top1_constant": const.metrics["top1"],
            "top5_normal": normal.metrics["top5"], "top5_constant": const.metrics["top5"], "checks": checks,
            "problems": res.problems}


def _summary(rows: list[dict], const: dict) -> dict:
    n = len(rows)
    return {
        "trials": n,
        "slowdown_detected": sum(r["slowed"]["exit"] == 1 for r in rows),
        "slowdown_cannot_judge": sum(r["slowed"]["exit"] == 2 for r in rows),
        "slowdown_passed": sum(r["slowed"]["exit"] == 0 for r in rows),
        "unchanged_false_alarms": sum(r["unchanged"]["exit"] != 0 for r in rows),
        "unchanged_regression_exits": sum(r["unchanged"]["exit"] == 1 for r in rows),
        "unchanged_cannot_judge": sum(r["unchanged"]["exit"] == 2 for r in rows),
        "required_detected": math.ceil(MIN_DETECTED_FRACTION * n),  # the acceptance (without --quick)
        "constant_head_exit": const["exit"],
        "slowed_time_ratios": [round(r["slowed"]["time_ratio_vs_baseline"], 4) for r in rows],
        "unchanged_time_ratios": [round(r["unchanged"]["time_ratio_vs_baseline"], 4) for r in rows],
        "slowed_p_values": [r["slowed"]["p"] for r in rows],
        "unchanged_p_values": [r["unchanged"]["p"] for r in rows],
    }


def _markdown(s: dict, rows: list[dict]) -> str:
    from tabulate import tabulate

    table = tabulate(
        [[r["trial"], " > ".join(r["order"]), r["unchanged"]["exit"], r["unchanged"]["change"], r["slowed"]["exit"],
          r["slowed"]["change"], f"{r['slowed']['p']:.3g}" if r["slowed"]["p"] is not None else "—"] for r in rows],
        headers=["trial", "order", "unchanged: exit", "unchanged: time ratio [95%]", "slowed: exit",
                 "slowed: time ratio [95%]", "slowed: p (raw)"], tablefmt="github")
    return (f"# Gate power ({s['trials']} interleaved trials, smoke entry, CPU, published protocol)\n\n"
            f"- planted x{SLOWDOWN} slowdown detected (exit 1): {s['slowdown_detected']}/{s['trials']} "
            f"(acceptance: {s['required_detected']}); cannot judge: {s['slowdown_cannot_judge']}; "
            f"passed: {s['slowdown_passed']}\n"
            f"- unchanged code, false alarms (exit != 0): {s['unchanged_false_alarms']}/{s['trials']} "
            f"(of which cannot judge, exit 2: {s['unchanged_cannot_judge']})\n"
            f"- planted constant head: gate exit {s['constant_head_exit']} (required 1)\n\n" + table + "\n")


def test_gate_power(quick, run_dir, capsys):
    from i3dbench.zoo import get_entry

    entry = get_entry(ENTRY)
    n = QUICK_TRIALS if quick else TRIALS
    root = perf_dir(run_dir) / "gate_power"
    conditions = collect_conditions("cpu", batch=1, views=entry.views_per_video)
    rows = _speed_trials(entry, n, root)
    const = _constant_head(entry, root / "constant_head")
    s = _summary(rows, const)
    method = {
        "name": "gate_power",
        "entry": ENTRY,
        "protocol": "published (timing.measure_interleaved), random weights, CPU",
        "budget": CPU_BUDGET.as_dict(),
        "trials": n,
        "interleaving": "each trial times baseline, unchanged and slowed in one loop whose iterations take turns "
                        "(order rotating per round and per trial), each into its own records folder",
        "planted_slowdown": f"forward stretched to x{SLOWDOWN} its own duration by a busy-wait (Stretched)",
        "planted_accuracy_bug": "classifier weights zeroed after loading the checkpoint: constant scores (the bias)",
        "judged_by": "gate.run_gate(candidate, baseline=baseline): exit 1 = regression, 2 = cannot judge",
        "false_alarm": "exit != 0 on the unchanged model",
        "time_ratio": "median iteration time of the candidate / of the trial's baseline",
        "load": "os.getloadavg()[0] before and after each timed loop (other work on the machine)",
        "pass": ("--quick: constant head exit 1, slowed never exit 0 and detected at least once, unchanged never "
                 "exit 1" if quick else
                 f">= {MIN_DETECTED_FRACTION:.0%} of trials detected, 0 false alarms, constant head exit 1"),
    }
    path = write_perf(run_dir, "gate_power", {"summary": s, "trials": rows, "constant_head": const},
                      conditions=conditions, method=method, markdown=_markdown(s, rows))
    with capsys.disabled():
        print("\n" + _markdown(s, rows) + f"\n(written to {path})")
    assert const["exit"] == 1, f"planted constant head not caught (exit {const['exit']}): {const}"
    if quick:
        assert s["slowdown_passed"] == 0 and s["slowdown_detected"] >= 1, f"planted slowdown missed: {s}"
        assert s["unchanged_regression_exits"] == 0, f"false regressions on unchanged code: {s}"
    else:
        assert s["slowdown_detected"] >= s["required_detected"], f"planted slowdown missed: {s}"
        assert s["unchanged_false_alarms"] == 0, f"false alarms on unchanged code: {s}"
