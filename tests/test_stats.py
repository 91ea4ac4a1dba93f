"""i3dbench.stats: scipy's answers (golden fixtures from dev/make_golden_stats.py), direct
computations from the published definitions, and seeded simulations of the promised properties."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from i3dbench.stats import (
    MAD_TO_SIGMA,
    exact_interval,
    holm,
    mann_whitney,
    mcnemar_exact,
    median_ratio_interval,
    paired_difference_interval,
    spread,
    too_noisy,
    wilson_interval,
)

GOLDEN = json.loads((Path(__file__).parent / "golden" / "stats" / "scipy.json").read_text())

P_TOL = 1e-9  # p-values against scipy
CI_TOL = 1e-7  # interval ends against scipy


def close_p(got: float, want: float) -> bool:
    """Within 1e-9 absolute; in the far tails (below 1e-6) also within 1e-9 relative."""
    return abs(got - want) <= P_TOL and (want >= 1e-6 or abs(got - want) <= P_TOL * want)


def pairs(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors (a, b): ``both`` items both right, ``a_only`` a right and b wrong (n01), ..."""
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither, dtype=np.int8)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither, dtype=np.int8)
    return a, b


# --------------------------------------------------------------------------- fixtures


def test_golden_covers_the_edges():
    binomial = GOLDEN["binomial"]
    assert any(c["k"] == 0 for c in binomial) and any(c["k"] == c["n"] for c in binomial)
    assert max(c["n"] for c in binomial) >= 10_000
    mwu = GOLDEN["mann_whitney"]
    assert {c["method"] for c in mwu} == {"exact", "asymptotic"}
    sizes = {(len(c["x"]), len(c["y"])) for c in mwu}
    assert (40, 40) in sizes and (1, 1) in sizes and any(a != b for a, b in sizes)
    # Exact branch with one sample above 8 (scipy's rule: exact if min(n_x, n_y) <= 8, no ties).
    assert any(c["method"] == "exact" and max(len(c["x"]), len(c["y"])) > 8 for c in mwu)
    assert any(len(set(c["x"] + c["y"])) < len(c["x"]) + len(c["y"]) for c in mwu)  # ties
    assert any(min(c["pvalue"].values()) < 1e-6 for c in mwu)  # far tails


# --------------------------------------------------------------------------- binomial intervals


def test_wilson_interval_matches_scipy():
    for c in GOLDEN["binomial"]:
        got = wilson_interval(c["k"], c["n"], c["confidence"])
        assert got == pytest.approx(c["wilson"], abs=CI_TOL, rel=0), c


def test_exact_interval_matches_scipy():
    for c in GOLDEN["binomial"]:
        got = exact_interval(c["k"], c["n"], c["confidence"])
        assert got == pytest.approx(c["exact"], abs=CI_TOL, rel=0), c


@pytest.mark.parametrize("n", [1, 7, 64, 1_000_000])
def test_exact_interval_closed_forms_at_the_edges(n):
    # k = 0, 1, n-1, n have closed forms: the tail equations are (1-p)^n = a, 1-(1-p)^n = a, ...
    a = 0.025
    lo1 = -math.expm1(math.log1p(-a) / n)  # 1 - (1 - a)^(1/n)
    up0 = -math.expm1(math.log(a) / n)  # 1 - a^(1/n)
    assert exact_interval(0, n) == (0.0, pytest.approx(up0, rel=1e-9))
    assert exact_interval(n, n) == (pytest.approx(1 - up0, rel=1e-9), 1.0)
    if n > 1:
        assert exact_interval(1, n)[0] == pytest.approx(lo1, rel=1e-9)
        assert exact_interval(n - 1, n)[1] == pytest.approx(1 - lo1, rel=1e-9)


def test_exact_interval_solves_the_binomial_tail_equations():
    # Definition (Clopper & Pearson 1934): P(X >= k | low) = alpha/2 = P(X <= k | high), here
    # with exact rational binomial sums, independent of the incomplete beta function.
    n, half_alpha = 30, Fraction(1, 40)

    def tail_ge(k, p):
        p = Fraction(p)
        return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))

    for k in range(n + 1):
        low, high = exact_interval(k, n, 0.95)
        if k > 0:
            assert float(tail_ge(k, low) - half_alpha) == pytest.approx(0, abs=1e-13)
        if k < n:
            assert float(1 - tail_ge(k + 1, high) - half_alpha) == pytest.approx(0, abs=1e-13)


def test_intervals_degenerate_cases():
    for f in (wilson_interval, exact_interval):
        assert all(math.isnan(v) for v in f(0, 0))
        low, high = f(0, 10)
        assert low == 0.0 and 0 < high < 1
        low, high = f(10, 10)
        assert high == 1.0 and 0 < low < 1
        for bad in ((-1, 5), (6, 5), (1.5, 5)):
            with pytest.raises(ValueError):
                f(*bad)
        with pytest.raises(ValueError):
            f(3, 5, confidence=1.0)


def test_intervals_nest_and_contain_the_estimate():
    for f in (wilson_interval, exact_interval):
        for k in range(0, 21):
            narrow, wide = f(k, 20, 0.8), f(k, 20, 0.99)
            assert wide[0] <= narrow[0] <= k / 20 <= narrow[1] <= wide[1]


N_COV = 64
K = np.arange(N_COV + 1)


def binom_pmf(n: int, p: float) -> np.ndarray:
    return np.array([math.comb(n, int(k)) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])


def all_intervals(interval) -> np.ndarray:
    return np.array([interval(int(k), N_COV) for k in K])


def coverage(ends: np.ndarray, p: float) -> float:
    return float(binom_pmf(N_COV, p)[(ends[:, 0] <= p) & (p <= ends[:, 1])].sum())


def test_interval_coverage_computed_exactly():
    # Coverage as a sum of binomial probabilities over k, for 99 true proportions.
    ps = np.linspace(0.01, 0.99, 99)
    exact_ends, wilson_ends = all_intervals(exact_interval), all_intervals(wilson_interval)
    exact = np.array([coverage(exact_ends, p) for p in ps])
    wilson = np.array([coverage(wilson_ends, p) for p in ps])
    assert exact.min() >= 0.95  # Clopper–Pearson's guarantee
    assert 0.945 <= wilson.mean() <= 0.955  # Wilson: about nominal on average ...
    assert wilson.min() >= 0.92  # ... dipping below it at some p (0.932 at p = 0.89)


def test_interval_coverage_by_simulation():
    # 2000 seeded draws at n=64, p=0.89. The true coverages there are 0.9323 (Wilson) and
    # 0.9564 (exact); the simulated ones must agree with them within 4 standard errors.
    rng = np.random.default_rng(0)
    k = rng.binomial(N_COV, 0.89, size=2000)
    for interval, lo, hi in ((wilson_interval, 0.91, 0.97), (exact_interval, 0.935, 1.0)):
        ends = all_intervals(interval)
        covered = ((ends[k, 0] <= 0.89) & (0.89 <= ends[k, 1])).mean()
        true = coverage(ends, 0.89)
        assert abs(covered - true) <= 4 * math.sqrt(true * (1 - true) / 2000)
        assert lo <= covered <= hi


# --------------------------------------------------------------------------- McNemar


def test_mcnemar_matches_scipy():
    for c in GOLDEN["mcnemar"]:
        r = mcnemar_exact(*pairs(3, c["n01"], c["n10"], 2))
        assert (r.n01, r.n10, r.flips, r.n) == (c["n01"], c["n10"], c["n01"] + c["n10"], c["n01"] + c["n10"] + 5)
        assert close_p(r.p_two_sided, c["p_two_sided"]), (c, r)
        assert close_p(r.p_b_worse, c["p_b_worse"]), (c, r)


def test_mcnemar_equals_the_binomial_sums():
    # Direct: X ~ Bin(flips, 1/2), p_b_worse = P(X >= n01), two-sided doubles the smaller tail.
    for n01, n10 in itertools.product(range(0, 25, 3), range(0, 25, 4)):
        flips = n01 + n10
        if flips == 0:
            continue
        pmf = [Fraction(math.comb(flips, j), 2**flips) for j in range(flips + 1)]
        r = mcnemar_exact(*pairs(0, n01, n10, 0))
        assert r.p_b_worse == pytest.approx(float(sum(pmf[n01:])), rel=1e-15)
        small = min(n01, n10)
        assert r.p_two_sided == pytest.approx(min(1.0, float(2 * sum(pmf[: small + 1]))), rel=1e-15)


def test_mcnemar_orientation_and_no_flips():
    r = mcnemar_exact([1, 1, 1, 1, 1], [0, 0, 0, 0, 0])  # b lost 5 items that a had right
    assert (r.n01, r.n10, r.flips) == (5, 0, 5)
    assert r.p_b_worse == 1 / 32 and r.p_two_sided == 2 / 32
    assert mcnemar_exact([0] * 5, [1] * 5).p_b_worse == 1.0
    same = mcnemar_exact([1, 0, 1, 1], [True, False, True, True])
    assert (same.flips, same.p_two_sided, same.p_b_worse) == (0, 1.0, 1.0)
    empty = mcnemar_exact([], [])
    assert (empty.n, empty.p_two_sided, empty.p_b_worse) == (0, 1.0, 1.0)
    with pytest.raises(ValueError):
        mcnemar_exact([1, 0], [1, 0, 1])
    with pytest.raises(ValueError):
        mcnemar_exact([1, 2], [1, 0])


def test_mcnemar_pvalues_are_valid_under_the_null():
    # 1000 seeded experiments, 300 items, flips equally likely both ways: P(p <= alpha) must
    # not exceed alpha (beyond 3 SE of noise), nor be far below it (the exact test is
    # conservative, not useless).
    rng = np.random.default_rng(1)
    draws = 1000
    p = np.empty((draws, 2))
    for i in range(draws):
        a, b = pairs(*rng.multinomial(300, [0.7, 0.1, 0.1, 0.1]))
        r = mcnemar_exact(a, b)
        p[i] = r.p_two_sided, r.p_b_worse
    for alpha in (0.05, 0.1, 0.25, 0.5):
        se = math.sqrt(alpha * (1 - alpha) / draws)
        for column in (0, 1):
            frac = (p[:, column] <= alpha).mean()
            assert 0.6 * alpha <= frac <= alpha + 3 * se, (alpha, column, frac)


def test_mcnemar_detects_a_worse_model():
    rng = np.random.default_rng(2)
    # b loses 15% of the items and wins 5%: the one-sided test sees it in nearly every draw,
    # and the two-sided p-value is twice the one-sided one here.
    results = [mcnemar_exact(*pairs(*rng.multinomial(500, [0.7, 0.15, 0.05, 0.1]))) for _ in range(50)]
    assert np.mean([r.p_b_worse < 0.01 for r in results]) >= 0.9
    assert all(r.p_two_sided == 2 * r.p_b_worse for r in results)


# --------------------------------------------------------------------------- paired difference


def newcombe_method10(n11: int, n12: int, n21: int, n22: int, z: float) -> tuple[float, float]:
    """Independent transcription for a 2x2 table in Fagerland et al.'s notation (rows: first
    test +/-, columns: second test +/-): interval for pi_1+ - pi_+1."""
    n = n11 + n12 + n21 + n22

    def wilson(x):
        mid = (2 * x + z * z) / (2 * (n + z * z))
        half = z * math.sqrt(z * z + 4 * x * (1 - x / n)) / (2 * (n + z * z))
        return mid - half, mid + half

    p1, p2 = (n11 + n12) / n, (n11 + n21) / n
    l1, u1 = wilson(n11 + n12)
    l2, u2 = wilson(n11 + n21)
    row1, row2, col1, col2 = n11 + n12, n21 + n22, n11 + n21, n12 + n22
    if 0 in (row1, row2, col1, col2):
        psi = 0.0
    else:
        big_a = n11 * n22 - n12 * n21
        psi = (big_a - n / 2 if big_a > n / 2 else min(big_a, 0)) / math.sqrt(row1 * row2 * col1 * col2)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * psi * (p1 - l1) * (u2 - p2))
    upper = d + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * psi * (p2 - l2) * (u1 - p1))
    return lower, upper


def test_paired_difference_worked_example():
    # Cavo et al. (2012), complete response before/after consolidation, worked in Fagerland,
    # Lydersen & Laake (2017), ch. 8: table (59, 6 / 16, 80), Newcombe -0.0621 (-0.1186 to -0.0046).
    # Here b is the first (row) assessment and a the second, so acc(b) - acc(a) = pi_1+ - pi_+1.
    a, b = pairs(59, 16, 6, 80)
    low, high = paired_difference_interval(a, b)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)
    assert mcnemar_exact(a, b).p_two_sided == pytest.approx(0.052479, abs=5e-7)  # same source


def test_paired_difference_matches_independent_transcription():
    rng = np.random.default_rng(3)
    z95 = 1.959963984540054
    tables = [tuple(rng.multinomial(n, rng.dirichlet([1, 1, 1, 1]))) for n in (5, 12, 40, 200, 19796) for _ in range(40)]
    tables += [(10, 0, 0, 0), (0, 0, 0, 10), (7, 0, 0, 3), (0, 4, 0, 0), (0, 3, 5, 0), (1, 1, 7, 12)]
    for both, a_only, b_only, neither in tables:
        got = paired_difference_interval(*pairs(both, a_only, b_only, neither))
        # Rows: b right / wrong; columns: a right / wrong.
        want = newcombe_method10(both, b_only, a_only, neither, z95)
        assert got == pytest.approx(want, abs=1e-12), (both, a_only, b_only, neither)


def test_paired_difference_zero_discordant_and_bounds():
    low, high = paired_difference_interval(*pairs(90, 0, 0, 10))
    assert low < 0 < high and low == pytest.approx(-high, abs=1e-15)
    low, high = paired_difference_interval([1] * 20, [1] * 20)  # all right, no flips
    assert -0.2 < low < 0 < high < 0.2
    assert all(math.isnan(v) for v in paired_difference_interval([], []))
    # Every table with n <= 8: the interval stays in [-1, 1] and contains the estimate; the
    # roles of a and b swap to the mirrored interval.
    for n in range(1, 9):
        for both, a_only, b_only in itertools.product(range(n + 1), repeat=3):
            if both + a_only + b_only > n:
                continue
            a, b = pairs(both, a_only, b_only, n - both - a_only - b_only)
            low, high = paired_difference_interval(a, b)
            est = (b_only - a_only) / n
            assert -1 - 1e-12 <= low <= est <= high <= 1 + 1e-12
            back = paired_difference_interval(b, a)
            assert back == pytest.approx((-high, -low), abs=1e-12)


def test_paired_difference_coverage_by_simulation():
    rng = np.random.default_rng(4)
    probs = [0.80, 0.05, 0.08, 0.07]  # both, a only, b only, neither
    true = probs[2] - probs[1]
    covered = 0
    for _ in range(1000):
        low, high = paired_difference_interval(*pairs(*rng.multinomial(60, probs)))
        covered += low <= true <= high
    assert 0.93 <= covered / 1000 <= 0.985


# --------------------------------------------------------------------------- Mann-Whitney


def test_mann_whitney_matches_scipy():
    for c in GOLDEN["mann_whitney"]:
        for alternative, want in c["pvalue"].items():
            r = mann_whitney(c["x"], c["y"], alternative)
            assert (r.u, r.method, r.alternative) == (c["u"], c["method"], alternative), c["name"]
            assert close_p(r.pvalue, want), (c["name"], alternative, r.pvalue, want)


@pytest.mark.parametrize("n1, n2", [(1, 3), (3, 4), (4, 5), (2, 8), (6, 6)])
def test_mann_whitney_exact_equals_enumeration(n1, n2):
    # The exact p-value is the share of all C(n1+n2, n1) splits of the pooled values with a U
    # at least as extreme as the observed one.
    rng = np.random.default_rng(n1 * 10 + n2)
    pooled = rng.permutation(n1 + n2).astype(float)
    x, y = pooled[:n1], pooled[n1:]

    def u_of(idx):
        xs = pooled[list(idx)]
        ys = np.delete(pooled, list(idx))
        return float((xs[:, None] > ys[None, :]).sum())

    us = np.array([u_of(idx) for idx in itertools.combinations(range(n1 + n2), n1)])
    u = u_of(range(n1))
    r = mann_whitney(x, y, "greater")
    assert r.method == "exact" and r.u == u
    assert r.pvalue == pytest.approx((us >= u).mean(), rel=1e-12)
    assert mann_whitney(x, y, "less").pvalue == pytest.approx((us <= u).mean(), rel=1e-12)
    tail = max((us >= u).mean(), (us <= u).mean()) if u == n1 * n2 / 2 else min((us >= u).mean(), (us <= u).mean())
    assert mann_whitney(x, y).pvalue == pytest.approx(min(1.0, 2 * tail), rel=1e-12)


def test_mann_whitney_symmetry_and_errors():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=12), rng.normal(size=15)
    a, b = mann_whitney(x, y, "greater"), mann_whitney(y, x, "less")
    assert a.pvalue == b.pvalue and a.u + b.u == 12 * 15
    assert mann_whitney([3.0, 3.0], [3.0]).pvalue == 1.0  # everything tied
    for bad in (([], [1.0]), ([1.0], [np.nan])):
        with pytest.raises(ValueError):
            mann_whitney(*bad)
    with pytest.raises(ValueError):
        mann_whitney([1.0], [2.0], "bigger")


def test_mann_whitney_finds_a_planted_slowdown_and_holds_under_the_null():
    # Lognormal timings with 5% spread, 10 per side.
    rng = np.random.default_rng(6)
    slow = [mann_whitney(1.5 * rng.lognormal(0, 0.05, 10), rng.lognormal(0, 0.05, 10), "greater").pvalue for _ in range(50)]
    assert max(slow) < 0.01
    null = np.array([mann_whitney(rng.lognormal(0, 0.05, 10), rng.lognormal(0, 0.05, 10), "greater").pvalue for _ in range(500)])
    assert (null > 0.05).mean() >= 0.90


# --------------------------------------------------------------------------- median ratio bootstrap


@pytest.mark.parametrize("nx, ny", [(9, 11), (10, 10)])
def test_median_ratio_interval_is_a_seeded_percentile_bootstrap(nx, ny):
    rng = np.random.default_rng(7)
    x, y = rng.lognormal(0, 0.05, nx), 1.2 * rng.lognormal(0, 0.05, ny)
    got = median_ratio_interval(x, y, confidence=0.9, n_boot=300, seed=11)
    assert got == median_ratio_interval(x, y, confidence=0.9, n_boot=300, seed=11)
    assert got != median_ratio_interval(x, y, confidence=0.9, n_boot=300, seed=12)
    # Direct, one replicate at a time, with the documented draw order (x and y resampled
    # independently, also when they have the same size).
    draw = np.random.default_rng(11)
    ix, iy = draw.integers(0, nx, size=(300, nx)), draw.integers(0, ny, size=(300, ny))
    ratios = [np.median(y[iy[i]]) / np.median(x[ix[i]]) for i in range(300)]
    ratios.sort()
    # numpy's linear quantile at q: position q (N - 1) between order statistics.
    want = []
    for q in (0.05, 0.95):
        pos = q * (300 - 1)
        lo = int(math.floor(pos))
        want.append(ratios[lo] + (pos - lo) * (ratios[min(lo + 1, 299)] - ratios[lo]))
    assert got == pytest.approx(want, rel=1e-14)


def test_median_ratio_interval_sees_a_planted_slowdown():
    rng = np.random.default_rng(8)
    ref, new = rng.lognormal(0, 0.05, 10), 1.5 * rng.lognormal(0, 0.05, 10)
    low, high = median_ratio_interval(ref, new)
    assert 1.3 < low < 1.5 < high < 1.7
    low, high = median_ratio_interval(ref, ref * rng.lognormal(0, 0.05, 10))
    assert low < 1 < high
    narrow, wide = median_ratio_interval(ref, new, 0.5), median_ratio_interval(ref, new, 0.99)
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]
    for bad in (([], [1.0]), ([1.0, 0.0], [1.0]), ([1.0], [np.inf])):
        with pytest.raises(ValueError):
            median_ratio_interval(*bad)


# --------------------------------------------------------------------------- Holm


def holm_step_down_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm (1979): sort ascending, reject while p_(j) <= alpha / (m - j + 1), stop at the first miss."""
    order = np.argsort(p, kind="stable")
    reject = np.zeros(p.size, dtype=bool)
    for j, i in enumerate(order):
        if p[i] > alpha / (p.size - j):
            break
        reject[i] = True
    return reject


def test_holm_worked_example():
    got = holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    assert got.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert holm([0.5, 0.6, 0.9]).tolist() == [1.0, 1.0, 1.0]
    assert holm([]).size == 0
    assert holm([0.2]).tolist() == [0.2]
    for bad in ([0.1, np.nan], [1.2], [-0.1]):
        with pytest.raises(ValueError):
            holm(bad)


def test_holm_is_the_step_down_procedure():
    rng = np.random.default_rng(9)
    for _ in range(300):
        m = int(rng.integers(1, 12))
        p = np.round(rng.beta(0.3, 1.0, m), 3)  # rounded: ties happen
        adjusted = holm(p)
        assert (adjusted >= p).all() and (adjusted <= 1).all()
        order = np.argsort(p, kind="stable")
        assert (np.diff(adjusted[order]) >= 0).all()
        for alpha in (0.01, 0.05, 0.1, 0.2):
            assert ((adjusted <= alpha) == holm_step_down_rejects(p, alpha)).all(), (p, alpha)


# --------------------------------------------------------------------------- timing summaries


def test_spread_matches_scipy():
    for c in GOLDEN["spread"]:
        s = spread(c["times"])
        assert s.n == len(c["times"]) and s.median == c["median"]
        assert s.iqr_rel == pytest.approx(c["iqr_rel"], rel=1e-12, abs=1e-15)
        assert s.mad_rel == pytest.approx(c["mad_rel"], rel=1e-12, abs=1e-15)
    assert MAD_TO_SIGMA == pytest.approx(1.4826, abs=1e-4)


def test_spread_by_hand_and_errors():
    s = spread([0.9, 1.0, 1.1, 0.9, 1.1])  # median 1.0, |dev| 0.1 0 0.1 0.1 0.1 -> MAD 0.1
    assert s.median == 1.0 and s.mad_rel == pytest.approx(0.1 * MAD_TO_SIGMA)
    assert s.iqr_rel == pytest.approx(0.2)  # Q1 = 0.9, Q3 = 1.1
    for bad in ([], [1.0, -1.0], [1.0, np.nan], [0.0, 1.0]):
        with pytest.raises(ValueError):
            spread(bad)


def test_too_noisy_reasons():
    tight = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98]
    assert too_noisy(tight) is None
    assert "only 3 timings" in too_noisy(tight[:3])
    assert too_noisy(tight[:3], min_n=3) is None
    assert "not positive finite" in too_noisy(tight + [float("nan")])
    assert "not positive finite" in too_noisy(tight + [0.0])
    wobbly = [0.9, 1.0, 1.1, 0.9, 1.1]  # mad_rel = 0.148
    assert "0.148 exceeds 0.100" in too_noisy(wobbly)
    assert too_noisy(wobbly, max_rel_spread=0.15) is None
    # One slow warm-up run among 20 steady ones is not noise.
    assert too_noisy([1.0 + 0.001 * i for i in range(20)] + [10.0]) is None
    with pytest.raises(ValueError):
        too_noisy(tight, min_n=0)
