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
    mean_class_accuracy,
    mean_class_accuracy_from_pred,
    parse_per_video,
    per_video_string,
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


def test_accuracy_summary_percent_and_ci():
    scores = np.array(CASES["mostly_correct"]["scores"])
    labels = np.array(CASES["mostly_correct"]["labels"])
    s = accuracy_summary(topk_classes(scores, 5), labels)
    t1, t5 = top_k_accuracy(scores, labels, (1, 5))
    assert s["top1"] == pytest.approx(100 * t1) and s["top5"] == pytest.approx(100 * t5)
    assert s["mean_class_accuracy"] == pytest.approx(100 * mean_class_accuracy(scores, labels))
    assert s["top1_interval"][0] <= s["top1"] <= s["top1_interval"][1]
    assert s["num_videos"] == len(labels)


def test_accuracy_intervals_are_exact_and_never_degenerate():
    # 64 of 64 right: the exact interval is [100 * 0.025**(1/64), 100], not [100, 100]
    # (the old bootstrap printed "100.00 ± 0.00"); 57 of 64 is asymmetric about 89.06.
    labels = np.zeros(64, dtype=np.int64)
    pred = np.zeros((64, 5), dtype=np.int64)
    s = accuracy_summary(pred, labels)
    assert s["top1"] == 100.0
    assert s["top1_interval"][1] == 100.0
    assert s["top1_interval"][0] == pytest.approx(100 * 0.025 ** (1 / 64), abs=1e-6)
    pred[:7, 0] = 1
    s = accuracy_summary(pred, labels)
    lo, hi = s["top1_interval"]
    assert s["top1"] == pytest.approx(89.0625)
    assert (s["top1"] - lo) > (hi - s["top1"]) + 1.0  # asymmetric: longer towards 50%


def test_per_video_strings_round_trip():
    text = per_video_string([True, False, None, True])
    assert text == "10-1"
    assert parse_per_video(text).tolist() == [1, 0, -1, 1]
    with pytest.raises(ValueError, match="other than"):
        parse_per_video("10x")


def test_average_views_matches_mmaction_average_clip():
    g = json.loads((GOLDEN / "average_clips.json").read_text())
    logits = torch.tensor(g["logits"])
    for mode in ("prob", "score"):
        ours = average_views(logits, g["num_views"], mode)
        torch.testing.assert_close(ours, torch.tensor(g[mode]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="whole number"):
        average_views(logits[:5], g["num_views"])
