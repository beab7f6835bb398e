"""Scores of a binary change map against its truth, shared by the benchmarks (numpy only, so
that a benchmark can run where the project's geo libraries are missing)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) over the ``mask`` pixels, as int64."""
    p, t = pred[mask], truth[mask]
    return np.array([np.sum(p & t), np.sum(p & ~t), np.sum(~p & t), np.sum(~p & ~t)],
                    dtype=np.int64)


def scores(c: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 of the change class and Cohen's kappa from (tp, fp, fn, tn)."""
    tp, fp, fn, tn = (float(v) for v in c)
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    po = (tp + tn) / n if n else 0.0
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else 0.0
    kappa = (po - pe) / (1 - pe) if pe < 1 else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "kappa": kappa}
