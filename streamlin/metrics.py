"""Streaming evaluation metrics with TF's keys and values.

Binary: weighted accuracy, precision, recall, means, and Keras' 200-threshold interpolated
ROC AUC and PR AUC (Davis-Goadrich). ``loss`` is the mean over batches of each batch's training
loss; ``average_loss`` the weighted mean per-example loss.
"""

from __future__ import annotations

import numpy as np

from streamlin.heads import Head, per_example_loss, sigmoid


class MetricKeys:
    LOSS = "loss"
    AVERAGE_LOSS = "average_loss"
    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"
    PREDICTION_MEAN = "prediction/mean"
    LABEL_MEAN = "label/mean"
    ACCURACY_BASELINE = "accuracy_baseline"
    AUC = "auc"
    AUC_PR = "auc_precision_recall"
    GLOBAL_STEP = "global_step"


NUM_THRESHOLDS = 200
_EPSILON = 1e-7
THRESHOLDS = np.array([0.0 - _EPSILON] + [(i + 1) / (NUM_THRESHOLDS - 1) for i in range(NUM_THRESHOLDS - 2)]
                      + [1.0 + _EPSILON], dtype=np.float32)


class StreamingMetrics:
    """Accumulates batches of (logits, labels, weights) into TF's evaluation values."""

    def __init__(self, head: Head):
        self.head = head
        self.batch_losses: list[float] = []
        self.weight_sum = 0.0
        self.loss_sum = 0.0
        self.correct = 0.0
        self.true_positive = self.false_positive = self.false_negative = 0.0
        self.prediction_sum = 0.0
        self.label_sum = 0.0
        # Weighted counts of examples whose prediction exceeds exactly k thresholds, by label.
        self.positive_hist = np.zeros(NUM_THRESHOLDS + 1, dtype=np.float64)
        self.negative_hist = np.zeros(NUM_THRESHOLDS + 1, dtype=np.float64)

    def update(self, logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, step_bounds: np.ndarray) -> None:
        """logits float64 (n, units); labels float64 (n,); weights float64 (n,); step_bounds int64 batch offsets."""
        per = per_example_loss(logits, labels, self.head.n_classes)
        weighted = per * weights
        for a, b in zip(step_bounds[:-1], step_bounds[1:]):
            if b > a:
                total = float(weighted[a:b].sum())
                self.batch_losses.append(total if self.head.reduce_sum else total / (b - a))
        self.weight_sum += float(weights.sum())
        self.loss_sum += float(weighted.sum())
        if self.head.n_classes == 2:
            z = logits[:, 0]
            predicted = (z > 0).astype(np.float64)
            probability = sigmoid(z)
            self.correct += float((weights * (predicted == labels)).sum())
            self.true_positive += float((weights * (predicted == 1) * (labels == 1)).sum())
            self.false_positive += float((weights * (predicted == 1) * (labels == 0)).sum())
            self.false_negative += float((weights * (predicted == 0) * (labels == 1)).sum())
            self.prediction_sum += float((weights * probability).sum())
            self.label_sum += float((weights * labels).sum())
            above = np.searchsorted(THRESHOLDS, probability.astype(np.float32), side="left")
            positive = labels != 0
            self.positive_hist += np.bincount(above[positive], weights=weights[positive], minlength=NUM_THRESHOLDS + 1)
            self.negative_hist += np.bincount(above[~positive], weights=weights[~positive], minlength=NUM_THRESHOLDS + 1)
        else:
            predicted = np.argmax(logits, axis=1)
            self.correct += float((weights * (predicted == labels)).sum())

    def result(self) -> dict[str, float]:
        def ratio(a: float, b: float) -> float:
            return a / b if b > 0 else 0.0

        out = {
            MetricKeys.LOSS: float(np.mean(self.batch_losses)) if self.batch_losses else 0.0,
            MetricKeys.AVERAGE_LOSS: ratio(self.loss_sum, self.weight_sum),
            MetricKeys.ACCURACY: ratio(self.correct, self.weight_sum),
        }
        if self.head.n_classes == 2:
            label_mean = ratio(self.label_sum, self.weight_sum)
            out.update({
                MetricKeys.PRECISION: ratio(self.true_positive, self.true_positive + self.false_positive),
                MetricKeys.RECALL: ratio(self.true_positive, self.true_positive + self.false_negative),
                MetricKeys.PREDICTION_MEAN: ratio(self.prediction_sum, self.weight_sum),
                MetricKeys.LABEL_MEAN: label_mean,
                MetricKeys.ACCURACY_BASELINE: max(label_mean, 1.0 - label_mean),
                MetricKeys.AUC: self._auc("ROC"),
                MetricKeys.AUC_PR: self._auc("PR"),
            })
        return out

    def _auc(self, curve: str) -> float:
        # tp[j]: weighted positives predicted above threshold j (count of thresholds passed > j).
        tp = np.cumsum(self.positive_hist[::-1])[::-1][1:]
        fp = np.cumsum(self.negative_hist[::-1])[::-1][1:]
        fn = self.positive_hist.sum() - tp
        tn = self.negative_hist.sum() - fp
        return keras_auc_from_counts(tp, fp, fn, tn, curve)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def keras_auc_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray, curve: str) -> float:
    """Keras ``AUC(num_thresholds=200, summation_method='interpolation')`` from confusion counts."""
    if curve == "ROC":
        recall = _divide(tp, tp + fn)
        fp_rate = _divide(fp, fp + tn)
        return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * (recall[:-1] + recall[1:]) / 2.0))
    dtp = tp[:-1] - tp[1:]
    predicted_positive = tp + fp
    dp = predicted_positive[:-1] - predicted_positive[1:]
    precision_slope = _divide(dtp, np.maximum(dp, 0))
    intercept = tp[1:] - precision_slope * predicted_positive[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_ratio = np.where((predicted_positive[:-1] > 0) & (predicted_positive[1:] > 0),
                              _divide(predicted_positive[:-1], np.maximum(predicted_positive[1:], 0)), 1.0)
        increments = _divide(precision_slope * (dtp + intercept * np.log(safe_ratio)), np.maximum(tp[1:] + fn[1:], 0))
    return float(np.sum(increments))
