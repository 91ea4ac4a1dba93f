"""Classification metrics with MMAction2's semantics, plus a bootstrap confidence interval.

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


def bootstrap_ci(
    values,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of per-item ``values``.

    Resamples items with replacement ``n_resamples`` times from a generator seeded with
    ``seed`` (same inputs and seed -> same interval), vectorised over resamples in chunks of
    ``chunk`` so memory stays ``chunk x len(values)``. Empty input gives ``(nan, nan)``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def accuracy_summary(pred_topk: np.ndarray, labels, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Top-1, top-5, mean class accuracy (percent) and 95% bootstrap CIs from ranked predictions.

    ``pred_topk`` is ``N x k`` (k >= 5 for top-5; fewer classes than 5 means top-5 is over
    all of them), best class first, as :func:`topk_classes` returns. Same seed, same CIs.
    """
    pred_topk = np.asarray(pred_topk, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("no predictions to score")
    k5 = min(5, pred_topk.shape[1])
    hit1 = topk_hits(pred_topk, labels, 1)
    hit5 = topk_hits(pred_topk, labels, k5)
    lo1, hi1 = bootstrap_ci(hit1, n_resamples=n_resamples, seed=seed)
    lo5, hi5 = bootstrap_ci(hit5, n_resamples=n_resamples, seed=seed + 1)
    return {
        "top1": 100.0 * float(hit1.mean()),
        "top5": 100.0 * float(hit5.mean()),
        "mean_class_accuracy": 100.0 * mean_class_accuracy_from_pred(pred_topk[:, 0], labels),
        "top1_ci": [100.0 * lo1, 100.0 * hi1],
        "top5_ci": [100.0 * lo5, 100.0 * hi5],
        "num_videos": len(labels),
    }


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
