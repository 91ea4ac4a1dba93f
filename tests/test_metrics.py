"""i3dbench.metrics against MMAction2's answers (golden fixtures from dev/make_golden_metrics.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from i3dbench.metrics import (
    accuracy_summary,
    average_views,
    bootstrap_ci,
    mean_class_accuracy,
    mean_class_accuracy_from_pred,
    top_k_accuracy,
    topk_classes,
)

GOLDEN = Path(__file__).parent / "golden" / "metrics"
ACC = json.loads((GOLDEN / "accuracy.json").read_text())
CASES = ACC["cases"]
TOPK = tuple(ACC["topk"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_mean_class_accuracy_matches_mmaction(name):
    case = CASES[name]
    assert mean_class_accuracy(np.array(case["scores"]), case["labels"]) == case["mean_class_accuracy"]


@pytest.mark.parametrize("name", sorted(n for n in CASES if "top_k_accuracy" in CASES[n]))
def test_top_k_accuracy_matches_mmaction(name):
    case = CASES[name]
    assert top_k_accuracy(np.array(case["scores"]), case["labels"], TOPK) == case["top_k_accuracy"]


@pytest.mark.parametrize("name", sorted(n for n in CASES if "determined_top_k_accuracy" in CASES[n]))
def test_top_k_accuracy_matches_mmaction_on_determined_tie_rows(name):
    case = CASES[name]
    keep = np.setdiff1d(np.arange(len(case["labels"])), case["order_dependent_rows"])
    scores = np.array(case["scores"])[keep]
    labels = np.array(case["labels"])[keep]
    assert top_k_accuracy(scores, labels, TOPK) == case["determined_top_k_accuracy"]


def test_fixtures_cover_ties_and_absent_classes():
    # Guard the fixture itself: ties at the top and predicted-but-unlabelled classes exist.
    ties = np.array(CASES["integer_ties"]["scores"])
    assert ((ties == ties.max(1, keepdims=True)).sum(1) > 1).any()
    absent = CASES["absent_classes"]
    pred = np.array(absent["scores"]).argmax(1)
    assert set(pred.tolist()) - set(absent["labels"])


def test_ties_rank_lowest_class_first():
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]])
    assert topk_classes(scores, 4).tolist() == [[1, 2, 4, 0]]
    assert topk_classes(scores, 1)[0, 0] == scores.argmax()
    # Same ranking whatever the dtype and memory layout.
    assert topk_classes(np.asfortranarray(scores.astype(np.float32)), 4).tolist() == [[1, 2, 4, 0]]


def test_mean_class_accuracy_counts_predicted_unlabelled_class_as_zero():
    # Labels {0, 1}; class 2 predicted once: mean over {0, 1, 2} = (1 + 0.5 + 0) / 3.
    assert mean_class_accuracy_from_pred(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx(0.5)
    # Class 5 is neither predicted nor labelled: not in the mean.
    assert mean_class_accuracy_from_pred(np.array([0, 1]), np.array([0, 1])) == 1.0


def test_bootstrap_ci_is_seeded_and_sane():
    rng = np.random.default_rng(1)
    hits = rng.random(2000) < 0.7
    a = bootstrap_ci(hits, seed=3)
    assert a == bootstrap_ci(hits, seed=3)
    assert a != bootstrap_ci(hits, seed=4)
    p = hits.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / len(hits))  # normal approximation of the same interval
    assert a[0] < p < a[1]
    assert (a[1] - a[0]) / 2 == pytest.approx(half, rel=0.15)
    # The chunking does not change the answer.
    assert bootstrap_ci(hits, seed=3, chunk=7) == a
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([])))


def test_accuracy_summary_percent_and_ci():
    scores = np.array(CASES["mostly_correct"]["scores"])
    labels = np.array(CASES["mostly_correct"]["labels"])
    s = accuracy_summary(topk_classes(scores, 5), labels)
    t1, t5 = top_k_accuracy(scores, labels, (1, 5))
    assert s["top1"] == pytest.approx(100 * t1) and s["top5"] == pytest.approx(100 * t5)
    assert s["mean_class_accuracy"] == pytest.approx(100 * mean_class_accuracy(scores, labels))
    assert s["top1_ci"][0] <= s["top1"] <= s["top1_ci"][1]
    assert s["num_videos"] == len(labels)


def test_average_views_matches_mmaction_average_clip():
    g = json.loads((GOLDEN / "average_clips.json").read_text())
    logits = torch.tensor(g["logits"])
    for mode in ("prob", "score"):
        ours = average_views(logits, g["num_views"], mode)
        torch.testing.assert_close(ours, torch.tensor(g[mode]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="whole number"):
        average_views(logits[:5], g["num_views"])
