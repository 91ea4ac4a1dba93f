"""test_self_gate: unchanged code passes the real gate against a fresh baseline (heavy suite, --quick, runs last).

Everything the session recorded into ``<run>/records`` (the smoke entries' evaluations and
bench pairs; each test registers how to measure its records again) is measured again into
``<run>/baseline/`` — the timings right next to the session's own (test_bench measures each
loop twice, alternating: this machine's speed drifts between windows minutes apart), the
evaluations now — and the real command judges the session's records against it:

    i3dbench gate --records <run> --baseline <run>/baseline --zoo zoo/smoke.yaml

(in process, through ``i3dbench.cli.main``; ``--zoo`` is the session's manifest when one was
given). The code did not change between the two measurements, so the gate must exit 0:
a 1 is a false alarm, a 2 means something recorded could not be judged (too noisy, a
record without its counterpart, a partial evaluation). Its table is printed either way.

Only with --quick: re-measuring a full session (the full-size zoo) would double its hours;
``test_gate_power`` measures the gate's false-alarm rate there.
"""

from __future__ import annotations

import pytest
import torch

from i3dbench.runs import RunDir
from i3dbench.zoo import SMOKE_ZOO

pytestmark = [pytest.mark.heavy, pytest.mark.last]


def test_unchanged_code_passes_the_gate_against_a_fresh_baseline(pytestconfig, quick, run_dir, remeasure, capsys):
    if not quick:
        pytest.skip("the self-gate is part of --quick (a full session's fresh baseline would double its hours)")
    if not remeasure:
        pytest.skip("this session recorded nothing that can be measured again (no smoke entry selected)")
    baseline = RunDir(run_dir.path / "baseline")
    threads = torch.get_num_threads()
    # Timings first: test_bench ran right before this test (conftest orders it late), so each
    # timing is re-measured about as long after its first measurement as the bench tests took.
    for label, again, _ in sorted(remeasure, key=lambda r: not r[2]):
        print(f"baseline: {label}", flush=True)
        if again is None:  # measured already, right next to the session's measurement (test_bench)
            continue
        again(baseline)
        torch.set_num_threads(threads)  # as every test starts (conftest): the same conditions as the session's
    from i3dbench.cli import main

    argv = ["gate", "--records", str(run_dir.path), "--baseline", str(baseline.path),
            "--zoo", str(pytestconfig.getoption("--zoo") or SMOKE_ZOO)]
    capsys.readouterr()
    rc = main(argv)
    out = capsys.readouterr()
    with capsys.disabled():
        print(f"\n$ i3dbench {' '.join(argv)}\n{out.out}{out.err}(exit {rc})")
    assert rc == 0, f"unchanged code failed its own gate (exit {rc}):\n{out.out}{out.err}"
