"""Classification metrics with MMAction2's semantics, exact intervals, and per-video hit strings.

MMAction2 (``mmaction.evaluation.functional.accuracy``) defines:

* ``top_k_accuracy(scores, labels, topk)``: a video counts as a hit when its label is among
  the ``k`` highest-scoring classes; the result is a fraction in [0, 1].
* ``mean_class_accuracy(scores, labels)``: the prediction is ``argmax`` (lowest class index
  among equal maxima); the confusion matrix is built over the classes that occur in the
  labels *or* the predictions, so a class that is predicted but never a label counts as a
  class with accuracy 0 in the mean, while a class neither predicted nor labelled is left out.

One point MMAction2 leaves open: it ranks classes with numpy's default (unstable) argsort,
so when equal scores straddle the k-th place, which class gets in depends on the numpy
build and CPU. Here the ranking is fully defined — descending score, then ascending class
index — so the top-1 class is always ``argmax`` and results are the same on every machine.
Wherever MMAction2's own answer does not depend on that accident (checked by the golden
fixtures in tests/golden/metrics/), the two agree exactly.

Accuracies are fractions here, as in MMAction2; records and reports show percentages.
"""

from __future__ import annotations

import numpy as np


def topk_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best classes of each row, best first: ``N x k`` int64.

    Ranking: descending score, ties broken by ascending class index (so column 0 is
    ``scores.argmax(1)``). ``k`` larger than the number of classes is clipped.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be N x num_classes, got shape {scores.shape}")
    k = min(int(k), scores.shape[1])
    # A stable sort of the negated scores gives descending order with ties in index order;
    # negation is exact for floats, so no two distinct scores can become equal.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)


def topk_hits(pred_topk: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per row: is the label among the first ``k`` columns of ``pred_topk``?"""
    pred_topk = np.asarray(pred_topk)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1, 1)
    if pred_topk.shape[1] < k:
        raise ValueError(f"top-{k} needs at least {k} predicted classes per row, got {pred_topk.shape[1]}")
    return (pred_topk[:, :k] == labels).any(axis=1)


def top_k_accuracy(scores: np.ndarray, labels, topk=(1,)) -> list[float]:
    """Fraction of rows whose label is among the ``k`` best classes, for each ``k`` in ``topk``."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(scores):
        raise ValueError(f"{len(scores)} score rows but {len(labels)} labels")
    ranked = topk_classes(scores, max(topk))
    # k above the number of classes means every class: MMAction2's slice [-k:] does the same.
    return [float(topk_hits(ranked, labels, min(k, ranked.shape[1])).mean()) for k in topk]


def mean_class_accuracy_from_pred(pred: np.ndarray, labels) -> float:
    """MMAction2's mean class accuracy given the predicted class of each row.

    Classes are those present in ``labels`` or ``pred``; a class present only in ``pred``
    has accuracy 0 and still counts in the mean.
    """
    pred = np.asarray(pred, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.shape} predictions but {labels.shape} labels")
    classes = np.union1d(pred, labels)
    n = len(classes)
    count = np.bincount(np.searchsorted(classes, labels), minlength=n)
    hits = np.bincount(np.searchsorted(classes, labels[pred == labels]), minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(count > 0, hits / np.maximum(count, 1), 0.0)
    return float(per_class.mean())


def mean_class_accuracy(scores: np.ndarray, labels) -> float:
    """MMAction2's mean class accuracy on a score matrix (prediction = argmax of each row)."""
    return mean_class_accuracy_from_pred(np.asarray(scores).argmax(axis=1), labels)


def accuracy_summary(pred_topk: np.ndarray, labels, confidence: float = 0.95) -> dict:
    """Top-1, top-5, mean class accuracy (percent) and exact 95% intervals from ranked predictions.

    ``pred_topk`` is ``N x k`` (k >= 5 for top-5; fewer classes than 5 means top-5 is over
    all of them), best class first, as :func:`topk_classes` returns. The intervals are exact
    (Clopper-Pearson) binomial intervals of the hit proportion: never degenerate (100% of 64
    videos gives [94.4, 100]), asymmetric where the proportion is near 0 or 100.
    """
    from .stats import exact_interval

    pred_topk = np.asarray(pred_topk, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("no predictions to score")
    n = len(labels)
    k5 = min(5, pred_topk.shape[1])
    hit1 = topk_hits(pred_topk, labels, 1)
    hit5 = topk_hits(pred_topk, labels, k5)
    lo1, hi1 = exact_interval(int(hit1.sum()), n, confidence)
    lo5, hi5 = exact_interval(int(hit5.sum()), n, confidence)
    return {
        "top1": 100.0 * float(hit1.mean()),
        "top5": 100.0 * float(hit5.mean()),
        "mean_class_accuracy": 100.0 * mean_class_accuracy_from_pred(pred_topk[:, 0], labels),
        "top1_interval": [100.0 * lo1, 100.0 * hi1],
        "top5_interval": [100.0 * lo5, 100.0 * hi5],
        "num_videos": n,
    }


def per_video_string(hits) -> str:
    """``"1"`` hit, ``"0"`` miss, ``"-"`` not evaluated (None), one character per video in list order."""
    return "".join("-" if h is None else ("1" if h else "0") for h in hits)


def parse_per_video(text: str) -> np.ndarray:
    """Inverse of :func:`per_video_string`: int8 array with 1, 0 and -1 for not evaluated."""
    lut = {"1": 1, "0": 0, "-": -1}
    try:
        return np.array([lut[c] for c in text], dtype=np.int8)
    except KeyError as err:
        raise ValueError(f"per-video string has a character other than 1, 0, -: {err}") from None


def average_views(logits, num_views: int, mode: str = "prob"):
    """Average per-view class scores into per-video scores, as MMAction2's ``average_clip``.

    ``logits``: torch tensor ``(videos * num_views) x C``, views of a video consecutive.
    ``mode``: ``"prob"`` (softmax per view, then mean) or ``"score"`` (mean of the raw
    scores). Returns ``videos x C`` float32 (computed in float32 whatever the input precision,
    so reduced-precision inference does not also reduce the averaging).
    """
    import torch

    if mode not in ("prob", "score"):
        raise ValueError(f"average_clips must be 'prob' or 'score', got {mode!r}")
    if logits.shape[0] % num_views:
        raise ValueError(f"{logits.shape[0]} rows are not a whole number of videos of {num_views} views")
    x = logits.float().reshape(logits.shape[0] // num_views, num_views, -1)
    if mode == "prob":
        x = torch.softmax(x, dim=2)
    return x.mean(dim=1)
