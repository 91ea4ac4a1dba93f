"""Write tests/golden/metrics/*.json: MMAction2's answers on small synthetic score matrices.

Run once (needs MMAction2, the development oracle):

    cd /work/main && python3 dev/make_golden_metrics.py

The tests (tests/test_metrics.py) never import mmaction; they compare i3dbench.metrics and
i3dbench.evaluate's clip averaging with what this script recorded.

Cases: continuous scores (no ties), integer scores with many ties, labels that leave some
classes absent while predictions hit them, k larger than the number of classes, a
400-class block like Kinetics. MMAction2 ranks classes with numpy's unstable default
argsort, so for a row where equal scores straddle the k-th place its top-k answer depends
on the numpy build and CPU; this script finds such rows (by checking every tie) and keeps
top-k expectations only for matrices where MMAction2's answer is fully determined. Mean
class accuracy uses argmax, which is deterministic, so it is recorded for every case.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from mmaction.evaluation import mean_class_accuracy, top_k_accuracy
from mmaction.models.heads import I3DHead

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "metrics"
TOPK = (1, 2, 5)


def order_dependent_rows(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Rows whose top-k hit depends on how a sort orders equal scores."""
    own = scores[np.arange(len(labels)), labels][:, None]
    greater = (scores > own).sum(1)
    equal = (scores == own).sum(1)  # includes the label itself
    # The label is surely in (greater + equal <= k) or surely out (greater >= k) otherwise.
    return (greater < k) & (greater + equal > k)


def make_cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    cases = {}
    # Continuous scores rounded to 4 decimals (exact JSON round trip), occasional ties only.
    s = np.round(rng.normal(size=(40, 10)), 4)
    cases["continuous"] = (s, rng.integers(0, 10, 40))
    # Few distinct values: many ties at the top (argmax picks the lowest index) and at k.
    s = rng.integers(0, 4, size=(60, 8)).astype(np.float64)
    cases["integer_ties"] = (s, rng.integers(0, 8, 60))
    # Labels cover only classes 0..3 of 12; predictions spread over all 12 classes.
    s = np.round(rng.random(size=(30, 12)), 3)
    cases["absent_classes"] = (s, rng.integers(0, 4, 30))
    # Labels 0..5 of 6 but scores favour the label: mostly correct, some classes never predicted.
    labels = rng.integers(0, 6, 36)
    s = np.round(rng.random(size=(36, 6)), 3)
    s[np.arange(36), labels] += np.where(rng.random(36) < 0.7, 1.0, 0.0)
    cases["mostly_correct"] = (s, labels)
    # Three classes: top-5 covers everything (k > num_classes).
    s = np.round(rng.random(size=(9, 3)), 3)
    cases["k_above_classes"] = (s, rng.integers(0, 3, 9))
    # Kinetics-sized rows: softmax-like probabilities over 400 classes.
    labels = rng.integers(0, 400, 12)
    logits = rng.normal(size=(12, 400)) * 3
    logits[np.arange(12), labels] += rng.choice([0.0, 4.0, 8.0], size=12)
    p = np.exp(logits - logits.max(1, keepdims=True))
    cases["k400_rows"] = (np.round(p / p.sum(1, keepdims=True), 6), labels)
    # Every row tied everywhere: argmax is class 0 for all.
    cases["all_equal"] = (np.zeros((7, 5)), np.array([0, 1, 2, 3, 4, 0, 0]))
    return cases


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    out = {"source": "mmaction.evaluation top_k_accuracy / mean_class_accuracy (MMAction2 1.2.0)", "topk": list(TOPK), "cases": {}}
    for name, (scores, labels) in make_cases(rng).items():
        labels = labels.astype(np.int64)
        case = {"scores": scores.tolist(), "labels": labels.tolist()}
        case["mean_class_accuracy"] = float(mean_class_accuracy(list(scores), labels.tolist()))
        dependent = np.zeros(len(labels), bool)
        for k in TOPK:
            dependent |= order_dependent_rows(scores, labels, k)
        case["order_dependent_rows"] = np.flatnonzero(dependent).tolist()
        if not dependent.any():
            case["top_k_accuracy"] = [float(a) for a in top_k_accuracy(list(scores), labels.tolist(), TOPK)]
        elif not dependent.all():
            # Also record the determined subset, so ties that do not straddle k are covered.
            keep = ~dependent
            case["determined_top_k_accuracy"] = [
                float(a) for a in top_k_accuracy(list(scores[keep]), labels[keep].tolist(), TOPK)
            ]
        out["cases"][name] = case
    (OUT / "accuracy.json").write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")

    # Clip averaging: MMAction2 BaseHead.average_clip on (videos * views) x classes logits.
    logits = torch.from_numpy(np.round(rng.normal(size=(4 * 6, 7)) * 2, 4)).float()
    avg = {"logits": logits.tolist(), "num_views": 6}
    for mode in ("prob", "score"):
        head = I3DHead(num_classes=7, in_channels=8, average_clips=mode)
        avg[mode] = head.average_clip(logits, num_segs=6).tolist()
    (OUT / "average_clips.json").write_text(json.dumps(avg, separators=(",", ":")) + "\n")
    for p in sorted(OUT.iterdir()):
        print(f"wrote {p} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
