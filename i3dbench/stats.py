"""Statistics the regression gate and the protocol sweep stand on: pure functions, no scipy.

* Binomial proportion intervals: :func:`wilson_interval`, :func:`exact_interval`
  (Clopper–Pearson). Fractions in [0, 1]; callers scale to percent.
* Two classifiers on the same items: :func:`mcnemar_exact` (exact conditional McNemar test)
  and :func:`paired_difference_interval` (Newcombe's hybrid score interval, method 10).
* Two samples of timings: :func:`mann_whitney` (matches ``scipy.stats.mannwhitneyu`` with
  ``method="auto"``) and :func:`median_ratio_interval` (seeded percentile bootstrap).
* Paired rounds (two revisions measured side by side, one ratio per round): :func:`sign_test`
  (exact, one-sided) and :func:`median_interval` (distribution-free order-statistic interval of
  the median, the sign test inverted).
* Many comparisons at once: :func:`holm` (Holm–Bonferroni adjusted p-values).
* Timing summaries: :func:`spread` and :func:`too_noisy`.

scipy is only the development-time oracle: dev/make_golden_stats.py records its answers
in tests/golden/stats/, and tests/test_stats.py compares these functions with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

__all__ = [
    "wilson_interval",
    "exact_interval",
    "McNemarResult",
    "mcnemar_exact",
    "paired_difference_interval",
    "MannWhitneyResult",
    "mann_whitney",
    "median_ratio_interval",
    "SignTest",
    "sign_test",
    "median_interval",
    "median_interval_rank",
    "holm",
    "Spread",
    "spread",
    "too_noisy",
    "MAD_TO_SIGMA",
]

NAN = float("nan")

# 1 / Phi^-1(3/4) = 1.4826...: scales the median absolute deviation to the standard
# deviation for normal data (same constant as scipy's median_abs_deviation(scale="normal")).
MAD_TO_SIGMA = 1.0 / NormalDist().inv_cdf(0.75)


# --------------------------------------------------------------------------- helpers


def _confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return confidence


def _z_two_sided(confidence: float) -> float:
    """Normal quantile ``Phi^-1(1/2 + confidence/2)`` (statistics.NormalDist: Wichura's AS241)."""
    return NormalDist().inv_cdf(0.5 + 0.5 * _confidence(confidence))


def _normal_sf(z: float) -> float:
    """``P(Z > z)`` for a standard normal ``Z``; erfc keeps full relative precision in the tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _check_counts(k, n) -> tuple[int, int]:
    if int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be whole numbers, got k={k}, n={n}")
    k, n = int(k), int(n)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return k, n


# --------------------------------------------------------------------------- intervals


def wilson_interval(k, n, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (two-sided).

    Formula (Wilson 1927; as written in Newcombe 1998, Stat Med 17:857, method 3), with
    ``p = k/n`` and ``z = Phi^-1(1/2 + confidence/2)``::

        (2np + z^2 -/+ z sqrt(z^2 + 4np(1-p))) / (2(n + z^2))

    The lower end is exactly 0.0 when ``k == 0`` and the upper end exactly 1.0 when
    ``k == n`` (the formula gives these up to rounding); ``n == 0`` gives ``(nan, nan)``.
    Same numbers as ``scipy.stats.binomtest(k, n).proportion_ci(confidence, "wilson")``.
    """
    k, n = _check_counts(k, n)
    z = _z_two_sided(confidence)
    if n == 0:
        return (NAN, NAN)
    p = k / n
    denom = 2.0 * (n + z * z)
    center = (2.0 * n * p + z * z) / denom
    delta = z / denom * math.sqrt(4.0 * n * p * (1.0 - p) + z * z)
    low = 0.0 if k == 0 else center - delta
    high = 1.0 if k == n else center + delta
    return (low, high)


def _betainc_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (DLMF 8.17.22), evaluated by the modified Lentz method.

    Converges fast for ``x < (a + 1) / (a + b + 2)``; the caller uses the symmetry
    ``I_x(a, b) = 1 - I_{1-x}(b, a)`` otherwise.
    """
    tiny = 1e-300  # stands in for an exact zero denominator (Lentz's trick)
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        # even term d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))
        coef = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 + coef * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + coef / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        # odd term d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
        coef = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 + coef * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + coef / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-16:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``.

    ``x^a (1-x)^b / (a B(a, b))`` times the continued fraction (DLMF 8.17.22); the prefactor
    is computed in logs (math.lgamma) so large ``a, b`` do not overflow.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    return math.exp(log_front) / a * _betainc_cf(a, b, x)


def _beta_ppf(q: float, a: float, b: float) -> float:
    """The ``x`` in (0, 1) with ``I_x(a, b) = q``: Newton's method inside a bisection bracket.

    ``I_x`` increases in ``x`` with derivative the beta density, so every evaluation
    shrinks a bracket ``[lo, hi]`` around the root; a Newton step that would leave the
    bracket is replaced by bisection (the safeguarded Newton of Press et al., Numerical
    Recipes, 3rd ed., sec. 9.4). Stops when a step changes ``x`` by less than a relative
    1e-15 or the bracket cannot be split further.
    """
    lo, hi = 0.0, 1.0
    x = a / (a + b)  # the mean: a start inside (0, 1)
    log_b = _log_beta(a, b)
    for _ in range(2000):  # bisection alone needs at most ~1100 halvings to exhaust a double
        f = _betainc(a, b, x) - q
        if f == 0.0:
            return x
        if f < 0.0:
            lo = x
        else:
            hi = x
        density = math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - log_b)
        new = x - f / density if density > 0.0 else lo - 1.0
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
            if new <= lo or new >= hi:
                return x
        if abs(new - x) <= 1e-15 * x:
            return new
        x = new
    raise ArithmeticError(f"beta quantile did not converge (q={q}, a={a}, b={b})")


def exact_interval(k, n, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson ("exact") interval for a binomial proportion ``k / n`` (two-sided).

    Clopper & Pearson (1934), Biometrika 26:404: with ``alpha = (1 - confidence) / 2`` in
    each tail, the ends are beta quantiles (the binomial-beta identity, e.g. Brown, Cai &
    DasGupta 2001, Stat Sci 16:101, eq. 4)::

        low  = B^-1(alpha;     k,     n - k + 1)   (0.0 when k == 0)
        high = B^-1(1 - alpha; k + 1, n - k)       (1.0 when k == n)

    Computed as: the regularized incomplete beta by its continued fraction (DLMF 8.17.22,
    modified Lentz), inverted by Newton's method safeguarded by bisection; ``high`` is taken
    as ``1 - B^-1(alpha; n-k, k+1)``
    so both ends are solved in a small tail. Coverage is at least ``confidence`` for every
    true proportion. ``n == 0`` gives ``(nan, nan)``. Same numbers as
    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, "exact")``.
    """
    k, n = _check_counts(k, n)
    alpha = (1.0 - _confidence(confidence)) / 2.0
    if n == 0:
        return (NAN, NAN)
    low = 0.0 if k == 0 else _beta_ppf(alpha, k, n - k + 1)
    high = 1.0 if k == n else 1.0 - _beta_ppf(alpha, n - k, k + 1)
    return (low, high)


# --------------------------------------------------------------------------- paired 0/1 data


def _as_correct(v, name: str) -> np.ndarray:
    """Per-item correctness as a bool vector; only 0/1 (or bool) values are accepted."""
    arr = np.asarray(v)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of 0/1 per item, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1 (correct/wrong) values")
        arr = arr.astype(bool)
    return arr


def _paired_table(a, b) -> tuple[int, int, int, int]:
    """(both right, a right & b wrong, a wrong & b right, both wrong) as Python ints."""
    a = _as_correct(a, "a")
    b = _as_correct(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must score the same items: {a.size} vs {b.size} entries")
    both = int(np.count_nonzero(a & b))
    n01 = int(np.count_nonzero(a & ~b))
    n10 = int(np.count_nonzero(~a & b))
    neither = a.size - both - n01 - n10
    return both, n01, n10, neither


def _binom_half_cdf(k: int, n: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)``, exactly: integer sums, one rounding at the end."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    # Sum over the shorter tail; the other follows from the total 2^n.
    m = min(k, n - k - 1)
    term, total = 1, 1  # C(n, 0)
    for j in range(m):
        term = term * (n - j) // (j + 1)  # C(n, j + 1), exact
        total += term
    if k > m:
        total = 2**n - total  # sum_{j <= k} = 2^n - sum_{j <= n-k-1}
    return total / 2**n  # int / int: correctly rounded


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of two classifiers scored on the same items."""

    n: int  # items
    n01: int  # a right, b wrong
    n10: int  # a wrong, b right
    flips: int  # discordant items, n01 + n10
    p_two_sided: float  # H0: P(a right, b wrong) = P(a wrong, b right)
    p_b_worse: float  # one-sided, alternative: b is wrong more often than a


def mcnemar_exact(a, b) -> McNemarResult:
    """Exact (conditional) McNemar test on per-item 0/1 correctness vectors ``a`` and ``b``.

    Conditional on the ``flips = n01 + n10`` discordant items, ``n01 ~ Binomial(flips, 1/2)``
    under H0 (McNemar 1947; exact form e.g. Fagerland, Lydersen & Laake 2013, BMC Med Res
    Methodol 13:91, eq. 3). ``p_two_sided = min(1, 2 P(X <= min(n01, n10)))`` (1 when
    ``n01 == n10``); ``p_b_worse = P(X >= n01)``. With no discordant items both are 1.
    Same numbers as ``scipy.stats.binomtest(n01, flips)`` (two-sided; ``alternative=
    "greater"`` for the one-sided), computed here in exact integer arithmetic.
    """
    both, n01, n10, neither = _paired_table(a, b)
    flips = n01 + n10
    if n01 == n10:
        p_two = 1.0
    else:
        p_two = min(1.0, 2.0 * _binom_half_cdf(min(n01, n10), flips))
    # P(X >= n01) = P(X <= n10) by the symmetry of Binomial(flips, 1/2).
    p_worse = _binom_half_cdf(n10, flips)
    return McNemarResult(
        n=both + n01 + n10 + neither, n01=n01, n10=n10, flips=flips, p_two_sided=p_two, p_b_worse=p_worse
    )


def paired_difference_interval(a, b, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for ``acc(b) - acc(a)`` when ``a`` and ``b`` are scored on the same items.

    Newcombe's hybrid score interval for paired proportions, method 10 of Newcombe (1998),
    "Improved confidence intervals for the difference between binomial proportions based
    on paired data", Stat Med 17:2635, with the continuity-corrected correlation of
    Newcombe & Altman (Statistics with Confidence, 2nd ed., 2000, ch. 6) and Fagerland,
    Lydersen & Laake (Statistical Analysis of Contingency Tables, 2017, sec. 8.5). With
    ``p1 = acc(b)``, ``p2 = acc(a)`` and their Wilson intervals ``(l1, u1)``, ``(l2, u2)``::

        low  = (p1 - p2) - sqrt((p1-l1)^2 - 2 phi (p1-l1)(u2-p2) + (u2-p2)^2)
        high = (p1 - p2) + sqrt((u1-p1)^2 - 2 phi (u1-p1)(p2-l2) + (p2-l2)^2)

    where, over the 2x2 table (both right A, b only B, a only C, both wrong D; marginals
    e, f, g, h), ``phi = max(AD - BC - n/2, 0) / sqrt(efgh)`` if ``AD > BC``, else
    ``(AD - BC) / sqrt(efgh)``, and 0 when a marginal is empty. It needs no iteration,
    stays within [-1, 1], and is non-degenerate with 0 discordant items (then it is
    symmetric about 0). ``n == 0`` gives ``(nan, nan)``.
    """
    both, n01, n10, neither = _paired_table(a, b)
    n = both + n01 + n10 + neither
    _confidence(confidence)
    if n == 0:
        return (NAN, NAN)
    k1, k2 = both + n10, both + n01  # items b got right, items a got right
    p1, p2 = k1 / n, k2 / n
    l1, u1 = wilson_interval(k1, n, confidence)
    l2, u2 = wilson_interval(k2, n, confidence)
    marginals = (k1, n - k1, k2, n - k2)
    if min(marginals) == 0:
        phi = 0.0
    else:
        # Python ints: the product of four marginals overflows int64 from n ~ 55k.
        cross = both * neither - n10 * n01
        if cross > n / 2:
            corrected = cross - n / 2
        elif cross >= 0:
            corrected = 0.0
        else:
            corrected = cross
        phi = corrected / math.sqrt(k1 * (n - k1) * k2 * (n - k2))
    theta = p1 - p2
    dl1, du2 = p1 - l1, u2 - p2
    du1, dl2 = u1 - p1, p2 - l2
    # The radicands are >= 0 for |phi| <= 1; max() only absorbs rounding.
    delta = math.sqrt(max(0.0, dl1 * dl1 - 2.0 * phi * dl1 * du2 + du2 * du2))
    epsilon = math.sqrt(max(0.0, du1 * du1 - 2.0 * phi * du1 * dl2 + dl2 * dl2))
    return (theta - delta, theta + epsilon)


# --------------------------------------------------------------------------- timings: two samples


@dataclass(frozen=True)
class MannWhitneyResult:
    """Mann–Whitney U test of two independent samples."""

    u: float  # U of x: pairs (x_i, y_j) with x_i > y_j, ties counted 1/2 (scipy's statistic)
    pvalue: float
    method: str  # "exact" or "asymptotic"
    alternative: str


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..N with ties given their average rank, and the size of each group of equal values."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    # A group of t equal values starting after s smaller ones holds ranks s+1..s+t: mean s + (t+1)/2.
    starts = np.cumsum(counts) - counts
    return (starts + (counts + 1) / 2.0)[inverse], counts


@lru_cache(maxsize=64)
def _mwu_tail_counts(m: int, n: int) -> tuple[tuple[int, ...], int]:
    """``(T, C)``: ``T[u]`` = arrangements with ``U >= u``, ``C = C(m+n, m)``, exact integers.

    The null distribution of U (no ties) has generating function the Gaussian binomial
    coefficient ``[m+n choose m]_q = prod_{i=1..m} (1 - q^{n+i}) / (1 - q^i)`` (Mann &
    Whitney 1947; Andrews, The Theory of Partitions, 1976, thm. 3.1). Built factor by
    factor as a power series truncated at degree ``m n``, which stays exact because both
    multiplying by ``1 - q^s`` and dividing by ``1 - q^i`` only look at lower degrees.
    """
    m, n = min(m, n), max(m, n)
    size = m * n + 1
    c = np.zeros(size, dtype=object)
    c[:] = 0
    c[0] = 1
    for i in range(1, m + 1):
        s = n + i
        if s < size:
            c[s:] = c[s:] - c[: size - s]  # times (1 - q^s)
        # divided by (1 - q^i): c[k] += c[k - i], i.e. a running sum along each residue mod i
        pad = (-size) % i
        grid = np.concatenate([c, np.zeros(pad, dtype=object)]).reshape(-1, i)
        c = np.cumsum(grid, axis=0).reshape(-1)[:size]
    tails = np.cumsum(c[::-1])[::-1]
    return tuple(int(t) for t in tails), math.comb(m + n, m)


def _mwu_exact_sf(u: int, m: int, n: int) -> float:
    """``P(U >= u)`` under H0, no ties (the distribution is the same for either sample's U)."""
    if u <= 0:
        return 1.0
    if u > m * n:
        return 0.0
    tails, total = _mwu_tail_counts(min(m, n), max(m, n))
    return tails[u] / total  # int / int: correctly rounded


def mann_whitney(x, y, alternative: str = "two-sided") -> MannWhitneyResult:
    """Mann–Whitney U test that ``x`` and ``y`` come from the same distribution.

    ``alternative="greater"``: ``x`` tends to be larger than ``y`` (e.g. ``x`` = new
    timings, ``y`` = reference: "new is slower"); ``"less"``: smaller; ``"two-sided"``.

    Matches ``scipy.stats.mannwhitneyu(x, y, alternative=..., method="auto")`` (scipy 1.17;
    Mann & Whitney 1947): ``u`` is U of ``x`` = ``R_x - n_x (n_x + 1) / 2`` with average
    ranks for ties. Method "exact" when there are no ties and at least one sample has at
    most 8 values (scipy's rule): p from the exact null distribution of U. Otherwise
    "asymptotic": normal approximation with the tie-corrected variance
    ``n_x n_y / 12 ((N + 1) - sum(t^3 - t) / (N (N - 1)))`` and a 0.5 continuity
    correction. The two-sided p-value is twice the one-sided tail of ``max(U_x, U_y)``,
    capped at 1. Raises ValueError for empty samples, NaN, or an unknown alternative.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("x and y must each hold at least one value")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("x and y must not contain NaN")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    n1, n2 = x.size, y.size
    ranks, ties = _average_ranks(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    u2 = n1 * n2 - u1
    if alternative == "greater":
        u, factor = u1, 1.0
    elif alternative == "less":
        u, factor = u2, 1.0  # P(U1 <= u1) = P(U2 >= u2): one upper-tail function serves both
    else:
        u, factor = max(u1, u2), 2.0
    has_ties = bool((ties > 1).any())
    if not has_ties and min(n1, n2) <= 8:
        method = "exact"
        p = _mwu_exact_sf(int(round(u)), n1, n2)
    else:
        method = "asymptotic"
        n = n1 + n2
        tie_term = float((ties.astype(np.float64) ** 3 - ties).sum())
        sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
        # Continuity: the upper tail P(U >= u) is approximated at u - 1/2.
        numerator = u - n1 * n2 / 2.0 - 0.5
        # sigma == 0 only when every value is tied, and then u is the mean: z = -inf, p = 1.
        p = 1.0 if sigma == 0.0 else _normal_sf(numerator / sigma)
    return MannWhitneyResult(u=u1, pvalue=min(1.0, max(0.0, factor * p)), method=method, alternative=alternative)


def _positive_times(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"{name} must hold positive finite times")
    return arr


def median_ratio_interval(
    x, y, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval for ``median(y) / median(x)`` (e.g. new / reference time).

    Efron & Tibshirani (An Introduction to the Bootstrap, 1993, ch. 13): ``x`` and ``y``
    are resampled with replacement independently, ``n_boot`` times, from
    ``numpy.random.default_rng(seed)`` (all ``x`` indices drawn first, as one
    ``n_boot x len(x)`` array, then those of ``y``); the ends are the ``(1 -/+ confidence)/2``
    quantiles (numpy's default linear interpolation) of the ``n_boot`` ratios. The same
    inputs and seed give the same interval. Times must be positive and finite.
    """
    x = _positive_times(x, "x")
    y = _positive_times(y, "y")
    alpha = (1.0 - _confidence(confidence)) / 2.0
    n_boot = int(n_boot)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, x.size, size=(n_boot, x.size))
    iy = rng.integers(0, y.size, size=(n_boot, y.size))
    ratios = np.median(y[iy], axis=1) / np.median(x[ix], axis=1)
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return (float(low), float(high))


# --------------------------------------------------------------------------- paired rounds


@dataclass(frozen=True)
class SignTest:
    """Exact sign test of paired differences against 0 (zeros dropped)."""

    n: int  # non-zero differences
    above: int  # differences > 0
    below: int  # differences < 0
    p_greater: float  # one-sided, alternative: the median difference is > 0
    p_less: float  # one-sided, alternative: the median difference is < 0


def sign_test(differences) -> SignTest:
    """Exact sign test on paired differences (e.g. per-round log time ratios, head over base).

    Under H0 (median 0) the count of positive differences among the ``n`` non-zero ones is
    Binomial(n, 1/2) (Conover, Practical Nonparametric Statistics, 3rd ed., 1999, sec. 3.4):
    ``p_greater = P(X >= above)``, ``p_less = P(X >= below)``. With no non-zero difference both
    are 1. Same numbers as ``scipy.stats.binomtest(above, n, alternative="greater")``.
    """
    d = np.asarray(differences, dtype=np.float64).ravel()
    if not np.isfinite(d).all():
        raise ValueError("differences must be finite")
    above, below = int((d > 0).sum()), int((d < 0).sum())
    n = above + below
    # P(X >= k) = P(X <= n - k) by symmetry
    return SignTest(n=n, above=above, below=below, p_greater=_binom_half_cdf(n - above, n),
                    p_less=_binom_half_cdf(n - below, n))


def median_interval_rank(n: int, confidence: float = 0.95) -> int:
    """The largest ``k`` with ``P(Binomial(n, 1/2) <= k - 1) <= (1 - confidence) / 2``, or 0 when
    no ``k >= 1`` qualifies (too few values for an interval at this confidence: n < 6 at 95%).

    ``[x_(k), x_(n-k+1)]`` (1-based order statistics) then covers the median with probability
    ``1 - 2 P(X <= k - 1) >= confidence``, for any continuous distribution."""
    alpha = (1.0 - _confidence(confidence)) / 2.0
    k = 0
    while k + 1 <= (n + 1) // 2 and _binom_half_cdf(k, n) <= alpha:
        k += 1
    return k


def median_interval(values, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval of the median of ``values``: the order statistics
    ``[x_(k), x_(n-k+1)]`` with ``k = median_interval_rank(n, confidence)`` (the sign test
    inverted; e.g. Conover 1999, sec. 3.2, or Hollander & Wolfe, Nonparametric Statistical
    Methods, 2nd ed., sec. 3.6). None when there are too few values for that confidence."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    k = median_interval_rank(x.size, confidence)
    if k == 0:
        return None
    return (float(x[k - 1]), float(x[x.size - k]))


# --------------------------------------------------------------------------- multiple comparisons


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order.

    Holm (1979), Scand J Stat 6:65; adjusted form of Wright (1992), Biometrics 48:1005: with
    the ``m`` p-values sorted ascending, ``adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``.
    Rejecting every hypothesis with ``adj <= alpha`` is exactly Holm's step-down procedure at
    family-wise level ``alpha``. The result is monotone in the p-values and never below them.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


# --------------------------------------------------------------------------- timing summaries


@dataclass(frozen=True)
class Spread:
    """Robust summary of repeated timings of one thing."""

    n: int
    median: float
    iqr_rel: float  # (Q3 - Q1) / median, numpy's default (linear) quantiles
    mad_rel: float  # MAD_TO_SIGMA * median(|t - median|) / median: a robust coefficient of variation


def spread(times) -> Spread:
    """Median and relative spread of positive finite timings (ValueError otherwise).

    ``iqr_rel = (Q3 - Q1) / median``; ``mad_rel = 1.4826 * MAD / median`` with the exact
    constant ``1 / Phi^-1(3/4)`` (Hampel 1974), which for normal noise estimates the
    coefficient of variation; both ignore a few outliers (e.g. one slow warm-up run).
    """
    t = _positive_times(times, "times")
    median = float(np.median(t))
    q1, q3 = np.quantile(t, [0.25, 0.75])
    mad = float(np.median(np.abs(t - median)))
    return Spread(n=int(t.size), median=median, iqr_rel=float(q3 - q1) / median, mad_rel=MAD_TO_SIGMA * mad / median)


def too_noisy(times, max_rel_spread: float = 0.10, min_n: int = 5) -> str | None:
    """Why timings are too noisy to compare, or None when they are usable.

    Checked in this order, the first that applies is returned as a one-line reason:

    1. fewer than ``min_n`` timings;
    2. a timing that is not a positive finite number;
    3. ``spread(times).mad_rel > max_rel_spread``: the robust coefficient of variation
       (1.4826 MAD / median) is above the limit (0.10 = 10 % run-to-run noise).
    """
    if min_n < 1:
        raise ValueError(f"min_n must be at least 1, got {min_n}")
    if not max_rel_spread > 0:
        raise ValueError(f"max_rel_spread must be positive, got {max_rel_spread}")
    t = np.asarray(times, dtype=np.float64).ravel()
    if t.size < min_n:
        return f"only {t.size} timings, need at least {min_n}"
    bad = int(np.count_nonzero(~(np.isfinite(t) & (t > 0))))
    if bad:
        return f"{bad} of {t.size} timings are not positive finite numbers"
    s = spread(t)
    if s.mad_rel > max_rel_spread:
        return (
            f"relative spread 1.4826*MAD/median = {s.mad_rel:.3f} exceeds {max_rel_spread:.3f} "
            f"(n={s.n}, median {s.median:.6g})"
        )
    return None
