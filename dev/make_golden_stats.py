"""Write tests/golden/stats/scipy.json: scipy's answers for i3dbench.stats to be checked against.

Run once, with a Python that has scipy (the development oracle; i3dbench never imports it)
and numpy:

    python dev/make_golden_stats.py

Recorded, with scipy's version:

* ``binomial``: ``binomtest(k, n).proportion_ci(confidence, method)`` for "exact"
  (Clopper–Pearson) and "wilson", over n = 1 .. 19796 (the Kinetics-400 validation size)
  including k = 0, 1, n - 1, n, at confidences 0.8, 0.9, 0.95, 0.99 (0.95, 0.99 from n = 1000).
* ``mcnemar``: ``binomtest(n01, n01 + n10)`` two-sided and with ``alternative="greater"``
  (the exact McNemar test is a binomial test on the discordant pairs).
* ``mann_whitney``: ``mannwhitneyu(x, y, alternative=..., method="auto")`` for n_x, n_y in
  1..40, equal and unequal, continuous data (exact branch where scipy takes it) and data with
  many ties (asymptotic branch), all three alternatives; plus which branch scipy chose.
* ``spread``: ``iqr(t) / median`` and ``median_abs_deviation(t, scale="normal") / median``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy
from scipy import stats
from scipy.stats._mannwhitneyu import _mwu_choose_method  # which branch "auto" takes

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "stats" / "scipy.json"


def binomial_cases() -> list[dict]:
    cases = []
    for n in (1, 2, 3, 5, 10, 20, 40, 64, 100, 250, 1000, 19796):
        ks = sorted({0, 1, 2, n // 4, n // 2, (9 * n) // 10, n - 2, n - 1, n} & set(range(n + 1)))
        for k in ks:
            # Large n: two levels only, each exact end there costs the tests ~10 ms.
            for confidence in (0.8, 0.9, 0.95, 0.99) if n < 1000 else (0.95, 0.99):
                res = stats.binomtest(k, n)
                exact = res.proportion_ci(confidence_level=confidence, method="exact")
                wilson = res.proportion_ci(confidence_level=confidence, method="wilson")
                cases.append(
                    {
                        "k": k,
                        "n": n,
                        "confidence": confidence,
                        "exact": [float(exact.low), float(exact.high)],
                        "wilson": [float(wilson.low), float(wilson.high)],
                    }
                )
    return cases


def mcnemar_cases() -> list[dict]:
    pairs = [(n01, n10) for n01 in range(0, 13) for n10 in range(0, 13) if n01 + n10 > 0]
    pairs += [(6, 16), (16, 6), (30, 31), (45, 70), (100, 140), (140, 100), (1000, 1100), (2500, 2400)]
    cases = []
    for n01, n10 in pairs:
        flips = n01 + n10
        cases.append(
            {
                "n01": n01,
                "n10": n10,
                "p_two_sided": float(stats.binomtest(n01, flips).pvalue),
                "p_b_worse": float(stats.binomtest(n01, flips, alternative="greater").pvalue),
            }
        )
    return cases


SIZES = [
    (1, 1), (1, 2), (2, 1), (1, 40), (40, 1), (2, 3), (3, 3), (4, 7), (5, 8), (7, 7), (8, 8),
    (8, 9), (9, 8), (8, 40), (40, 8), (3, 39), (9, 9), (10, 10), (12, 5), (13, 25), (20, 20),
    (33, 17), (39, 2), (40, 40),
]  # fmt: skip


def mann_whitney_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for n1, n2 in SIZES:
        data = {
            # Continuous, rounded to 6 decimals (exact JSON round trip); ties are improbable
            # and the generator is seeded, so each case's branch is fixed and recorded.
            "continuous": (np.round(rng.normal(size=n1), 6), np.round(rng.normal(size=n2), 6)),
            # Shifted: small p-values, also in the exact branch's far tail.
            "shifted": (np.round(rng.normal(1.5, size=n1), 6), np.round(rng.normal(size=n2), 6)),
            # Few distinct values: many ties, asymptotic branch with the tie correction.
            "ties": (rng.integers(0, 4, n1).astype(float), rng.integers(0, 4, n2).astype(float)),
        }
        if n1 + n2 <= 6:
            data["all_tied"] = (np.full(n1, 2.0), np.full(n2, 2.0))
        for kind, (x, y) in data.items():
            ties = len(np.unique(np.concatenate([x, y]))) < n1 + n2
            results = {
                alternative: stats.mannwhitneyu(x, y, alternative=alternative, method="auto")
                for alternative in ("two-sided", "greater", "less")
            }
            cases.append(
                {
                    "name": f"{kind}_{n1}x{n2}",
                    "x": x.tolist(),
                    "y": y.tolist(),
                    "method": _mwu_choose_method(n1, n2, ties),
                    "u": float(results["two-sided"].statistic),  # U of x, the same for every alternative
                    "pvalue": {alt: float(res.pvalue) for alt, res in results.items()},
                }
            )
    return cases


def spread_cases(rng: np.random.Generator) -> list[dict]:
    samples = [
        [1.0],
        [2.0, 3.0],
        [10.0, 10.0, 10.0, 10.0, 10.0],
        np.round(rng.lognormal(0.0, 0.05, 7), 6).tolist(),
        np.round(rng.lognormal(2.0, 0.3, 20), 6).tolist(),
        np.round(rng.lognormal(-3.0, 0.02, 31), 8).tolist() + [0.5],  # one far outlier
    ]
    cases = []
    for t in samples:
        arr = np.asarray(t)
        med = float(np.median(arr))
        cases.append(
            {
                "times": list(t),
                "median": med,
                "iqr_rel": float(stats.iqr(arr)) / med,
                "mad_rel": float(stats.median_abs_deviation(arr, scale="normal")) / med,
            }
        )
    return cases


def main() -> None:
    rng = np.random.default_rng(20240611)
    golden = {
        "scipy_version": scipy.__version__,
        "binomial": binomial_cases(),
        "mcnemar": mcnemar_cases(),
        "mann_whitney": mann_whitney_cases(rng),
        "spread": spread_cases(rng),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: small diffs when a case changes.
    lines = [f'{{"scipy_version": {json.dumps(golden.pop("scipy_version"))}']
    for key, cases in golden.items():
        body = ",\n  ".join(json.dumps(case) for case in cases)
        lines.append(f' "{key}": [\n  {body}\n ]')
    OUT.write_text(",\n".join(lines) + "\n}\n")
    json.loads(OUT.read_text())  # the hand-joined text must stay valid JSON
    counts = {key: len(v) for key, v in golden.items()}
    methods = [c["method"] for c in golden["mann_whitney"]]
    print(f"wrote {OUT}: {counts}; mann_whitney exact {methods.count('exact')}, asymptotic {methods.count('asymptotic')}")


if __name__ == "__main__":
    main()
