"""Per-label overlap: Dice and IoU (Jaccard), per case and pooled over cases (by summing the
true-positive, false-positive and false-negative voxel counts, so that large and small cases
weigh by their size, as a pixel-level score over a whole test set does)."""
from typing import Dict, Iterable, Sequence

import numpy as np


def counts(pred: np.ndarray, ref: np.ndarray, values: Sequence[int]) -> Dict[int, dict]:
    """{value: {tp, fp, fn}} for each label value (arrays of the same shape)."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    out = {}
    for v in values:
        p, r = pred == v, ref == v
        tp = int(np.count_nonzero(p & r))
        out[int(v)] = {"tp": tp, "fp": int(np.count_nonzero(p)) - tp, "fn": int(np.count_nonzero(r)) - tp}
    return out


def scores(c: dict) -> dict:
    """Dice and IoU from counts; both 1.0 when prediction and reference are empty."""
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    if tp + fp + fn == 0:
        return {"dice": 1.0, "iou": 1.0}
    return {"dice": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn)}


def pooled(per_case: Iterable[Dict[int, dict]]) -> Dict[int, dict]:
    """Sum the counts of several cases label by label, then score them."""
    total: Dict[int, dict] = {}
    for case in per_case:
        for v, c in case.items():
            t = total.setdefault(v, {"tp": 0, "fp": 0, "fn": 0})
            for k in t:
                t[k] += c[k]
    return {v: dict(c, **scores(c)) for v, c in total.items()}
