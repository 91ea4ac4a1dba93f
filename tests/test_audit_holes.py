"""The holes an audit found in the gate and the run key, each closed by a test that fails on its mutation.

* "slower beyond tolerance but not significant" is CANNOT JUDGE (mutation: turning it into ok,
  or into REGRESSED);
* the published-speed bound is the order-statistic bound of the median (mutation: the fastest
  iteration), and fewer than 6 timings cannot be judged (mutation: the fastest time silently);
* a baseline of another protocol is never used (mutation: the protocol dropped from the key);
* a checkpoint is keyed by its content (mutation: by its path);
* a given model is keyed by its code too (mutation: by its state_dict only);
* noise never hides an unambiguous change (mutation: "too noisy" checked before the interval).
"""

from __future__ import annotations

import pytest
import torch

from i3dbench.gate import CANNOT, REGRESSED
from test_gate import SMOKE, _gate, _times, bench_rec

K400 = "i3d_r50_32x2x1_100e_kinetics400_rgb"  # published 1.7 video/s, speed_min_ratio 1.0


def _speed(res):
    return next(c for c in res.checks if c.metric == "video_per_s")


def test_slower_beyond_tolerance_but_not_significant_is_cannot_judge_never_ok_nor_regressed(tmp_path):
    # x1.36 slower (limit x1.25 for the smoke entry), but 5 against 5 timings overlapping: Mann-Whitney p > 0.05.
    base = bench_rec(SMOKE, [0.10, 0.14, 0.10, 0.15, 0.10])
    new = bench_rec(SMOKE, [0.10, 0.136, 0.15, 0.16, 0.14])
    res = _gate(tmp_path, [new], [base])
    c = _speed(res)
    assert c.material and c.p is not None
    assert c.status == CANNOT and "not significantly" in c.why, (c.status, c.why, c.test)
    assert res.exit_code == 2


def test_published_speed_bound_is_the_order_statistic_not_the_fastest_time(tmp_path):
    # 9 timings (video/s = 1/t): the 95% order-statistic bound of the median time is the 2nd fastest,
    # 1/0.7 = 1.43 video/s < 1.7 needed: REGRESSED. The fastest alone (1/0.5 = 2.0) would pass.
    times = [0.5, 0.7, 0.7, 0.72, 0.75, 0.8, 0.8, 0.85, 0.9]
    rec = bench_rec(K400, times, protocol="published", device="cuda", train_mb=5000.0, kind="cuda_max_memory_allocated")
    res = _gate(tmp_path, [rec])
    c = _speed(res)
    assert c.status == REGRESSED, (c.status, c.allowed)
    assert "1.43" in c.allowed


def test_published_speed_with_fewer_than_6_timings_cannot_be_judged(tmp_path):
    rec = bench_rec(K400, [0.5, 0.5, 0.5, 0.5, 0.5], protocol="published", device="cuda", train_mb=5000.0,
                    kind="cuda_max_memory_allocated")  # 2 video/s: would pass on the fastest time
    res = _gate(tmp_path, [rec])
    c = _speed(res)
    assert c.status == CANNOT and "at least 6" in c.why
    assert res.exit_code == 2


def test_a_baseline_of_another_protocol_is_never_used(tmp_path):
    base = bench_rec(SMOKE, _times(0.1), protocol="published")
    new = bench_rec(SMOKE, _times(0.3), protocol="fast")  # 3x slower, but another protocol
    res = _gate(tmp_path, [new], [base])
    assert res.exit_code == 2
    assert not res.regressions
    assert any("no baseline record with this key" in c.why for c in res.checks)
    assert any("baseline row absent" in c.why for c in res.checks)


def test_noise_never_hides_an_unambiguous_change(tmp_path):
    base = bench_rec(SMOKE, _times(0.1, n=20, spread=0.05, seed=1))
    slow = bench_rec(SMOKE, _times(1.0, n=20, spread=0.5, seed=2))  # 10x slower, relative spread far above 0.25
    res = _gate(tmp_path, [slow], [base])
    c = _speed(res)
    assert c.status == REGRESSED, (c.status, c.why)
    assert res.exit_code == 1
    # the same spread around an unchanged median still cannot be judged
    noisy = bench_rec(SMOKE, _times(0.1, n=20, spread=0.6, seed=3))
    res = _gate(tmp_path / "noisy", [noisy], [base])
    assert _speed(res).status == CANNOT and "too noisy" in _speed(res).why


def _smoke_model():
    from i3dbench.models import build_model
    from i3dbench.zoo import load_zoos

    torch.manual_seed(0)
    return build_model(load_zoos()[SMOKE]).eval()


def test_a_checkpoint_is_keyed_by_its_content_not_its_path(tmp_path):
    from i3dbench.evaluate import resolve_weights
    from i3dbench.zoo import load_zoos

    entry = load_zoos()[SMOKE]
    path = tmp_path / "weights.pth"
    model = _smoke_model()
    torch.save({"state_dict": model.state_dict()}, path)
    first = resolve_weights(entry, str(path), None)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.save({"state_dict": model.state_dict()}, path)  # other weights, same path
    second = resolve_weights(entry, str(path), None)
    assert first.key != second.key and first.sha256 != second.sha256


def test_a_given_model_is_keyed_by_its_code_as_well_as_its_state(tmp_path):
    from i3dbench.evaluate import resolve_weights
    from i3dbench.zoo import load_zoos

    entry = load_zoos()[SMOKE]
    model = _smoke_model()
    cls = type(model)

    class Doubled(cls):  # same state_dict, another forward
        def forward(self, x):
            return 2 * super().forward(x)

    other = _smoke_model()
    other.__class__ = Doubled
    assert other.state_dict().keys() == model.state_dict().keys()
    a, b = resolve_weights(entry, None, model), resolve_weights(entry, None, other)
    assert a.key != b.key
    assert a.key == resolve_weights(entry, None, _smoke_model()).key  # the same code and state: the same key


@pytest.mark.parametrize("n,k", [(5, 0), (6, 1), (8, 1), (9, 2), (12, 3), (20, 6)])
def test_median_interval_rank_against_the_binomial_directly(n, k):
    from math import comb

    from i3dbench.stats import median_interval_rank

    assert median_interval_rank(n) == k
    tail = lambda j: sum(comb(n, i) for i in range(j)) / 2**n  # noqa: E731 - P(X <= j - 1)
    if k:
        assert tail(k) <= 0.025 < tail(k + 1)
    else:
        assert tail(1) > 0.025


def test_the_zoo_row_cites_the_verified_evaluation_not_a_newer_sweep_base(tmp_path):
    from i3dbench.records import load_records, write_record
    from i3dbench.tables import build_tables
    from i3dbench.zoo import load_zoos
    from test_gate import HITS, eval_rec

    verified = eval_rec(SMOKE, HITS, t="2024-06-11T00:00:00+00:00")
    verified["conditions"]["checkpoint_sha256"] = "a" * 64
    sweep_base = eval_rec(SMOKE, HITS[:-8] + [True] * 8, t="2024-06-11T01:00:00+00:00")  # newer, same protocol
    sweep_base["method"]["name"] = "sweep"
    sweep_base["extra"]["sweep"] = {"label": "base", "base": True}
    folder = tmp_path / "records"
    v_path = write_record(verified, folder)
    write_record(sweep_base, folder)
    entries = {SMOKE: load_zoos()[SMOKE]}
    row = build_tables(entries, load_records(folder)).accuracy[0]
    assert row["record"] == v_path.name

