"""Model reports: weights by column (for ``streamlin inspect``) and a self-contained HTML page.

The page (``streamlin report``) draws its charts as inline SVG by hand, so it needs no plotting
library and opens anywhere: training loss and throughput from ``model_dir/train_log.jsonl``, every
metric recorded under each ``eval*/metrics.jsonl`` over the global step, weight histograms per
column and, given evaluation data, ROC, precision-recall and calibration curves.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamlin.errors import CheckpointError
from streamlin.feature_column.columns import (
    BucketizedColumn,
    IdentityCategoricalColumn,
    NumericColumn,
    VocabularyFileCategoricalColumn,
    VocabularyListCategoricalColumn,
    WeightedCategoricalColumn,
)

WEIGHTS_PREFIX = "linear/linear_model/"
BIAS = WEIGHTS_PREFIX + "bias_weights"
TRAIN_LOG = "train_log.jsonl"


# ------------------------------------------------------------------------------------------------
# weights of a model, by column
# ------------------------------------------------------------------------------------------------
@dataclass
class ModelWeights:
    """The variables of one checkpoint, and the column behind each weights variable (if known)."""

    source: str
    kind: str                                   # "streamlin" or "tensorflow"
    global_step: int
    variables: dict[str, np.ndarray]
    columns: dict[str, Any] = field(default_factory=dict)   # weights variable -> feature column
    class_names: tuple[str, ...] | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def weight_names(self) -> list[str]:
        return sorted(n for n in self.variables
                      if n.startswith(WEIGHTS_PREFIX) and (n.endswith("/weights") or n == BIAS))


def load_weights(path: str | os.PathLike, checkpoint: Any = None, columns: Sequence | None = None,
                 class_names: Sequence[str] | None = None) -> ModelWeights:
    """Variables of a streamlin model_dir/snapshot, or of a TF checkpoint/model_dir.

    ``columns`` label a TF checkpoint's rows (a streamlin snapshot carries its own).

    Raises
    ------
    CheckpointError
        Nothing readable at ``path``/``checkpoint``.
    """
    from streamlin.checkpoint import store
    from streamlin.tf_import import is_tf_checkpoint, read_tf_variables

    tf_target = checkpoint if checkpoint is not None and not _is_step(checkpoint) else (path if checkpoint is None else None)
    if checkpoint is not None and _is_step(checkpoint) and is_tf_checkpoint(path):
        tf_target = os.path.join(os.fspath(path), f"model.ckpt-{int(checkpoint)}")
    if tf_target is not None and is_tf_checkpoint(tf_target):
        variables, step, prefix = read_tf_variables(tf_target)
        weights = ModelWeights(prefix, "tensorflow", step, {k: np.asarray(v) for k, v in variables.items()},
                               class_names=tuple(class_names) if class_names else None)
        if columns:
            weights.columns = {f"{WEIGHTS_PREFIX}{c.name}/weights": c for c in columns}
        return weights
    if checkpoint is None and (Path(path) / "zarr.json").is_file():
        snapshot = str(path)
    else:
        snapshot = store.resolve(path, checkpoint)
    arrays, attrs = store.load_snapshot(snapshot)
    weights = ModelWeights(snapshot, "streamlin", int(attrs.get("step", 0)), arrays, attrs=attrs)
    try:
        from streamlin.feature_column.serialize import column_from_config

        built = [column_from_config(c, allow_unresolved=True) for c in attrs.get("feature_columns", [])]
        weights.columns = {f"{WEIGHTS_PREFIX}{c.name}/weights": c for c in built}
    except Exception:  # noqa: BLE001 - labels are a comfort; an unimportable normalizer must not stop inspect
        weights.columns = {}
    head = attrs.get("head") or {}
    n_classes = int(head.get("n_classes", 2))
    vocabulary = head.get("label_vocabulary")
    weights.class_names = tuple(vocabulary) if vocabulary else tuple(str(i) for i in range(n_classes))
    return weights


def _is_step(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _bucket_text(boundaries: Sequence[float], bucket: int) -> str:
    def show(x: float) -> str:
        return f"{x:g}"

    if bucket == 0:
        return f"< {show(boundaries[0])}"
    if bucket >= len(boundaries):
        return f">= {show(boundaries[-1])}"
    return f"[{show(boundaries[bucket - 1])}, {show(boundaries[bucket])})"


def row_label(column: Any, row: int) -> str:
    """What row ``row`` of ``column``'s weights stands for (a vocabulary entry, a bucket, ...)."""
    if isinstance(column, WeightedCategoricalColumn):
        return row_label(column.categorical_column, row)
    if isinstance(column, NumericColumn):
        return column.key if column.dimension == 1 else f"{column.key}[{row}]"
    if isinstance(column, BucketizedColumn):
        per_dim = len(column.boundaries) + 1
        dim, bucket = divmod(row, per_dim)
        prefix = "" if column.source_column.dimension == 1 else f"[{dim}] "
        return prefix + _bucket_text(column.boundaries, bucket)
    if isinstance(column, (VocabularyListCategoricalColumn, VocabularyFileCategoricalColumn)):
        vocabulary = column.vocabulary
        return repr(vocabulary[row]) if row < len(vocabulary) else f"OOV bucket {row - len(vocabulary)}"
    if isinstance(column, IdentityCategoricalColumn):
        return str(row)
    return f"bucket {row}"


def column_summary(weights: ModelWeights, name: str, top: int = 5) -> dict:
    """Shape, non-zero rows, range and the ``top`` rows by largest |weight| of one variable."""
    value = np.asarray(weights.variables[name], dtype=np.float64)
    matrix = value.reshape(value.shape[0], -1) if value.ndim >= 1 and name != BIAS else value.reshape(1, -1)
    nonzero_rows = int(np.count_nonzero(np.any(matrix != 0, axis=1)))
    column = weights.columns.get(name)
    strength = np.abs(matrix).max(axis=1) if matrix.size else np.zeros(0)
    order = np.argsort(-strength, kind="stable")[:top]
    tops = []
    for row in order:
        if strength[row] == 0:
            break
        tops.append({"row": int(row), "label": row_label(column, int(row)) if column is not None else f"row {row}",
                     "weights": [float(x) for x in matrix[row]]})
    return {"variable": name, "column": column.name if column is not None else name[len(WEIGHTS_PREFIX):].rsplit("/", 1)[0],
            "shape": list(value.shape), "rows": int(matrix.shape[0]), "nonzero_rows": nonzero_rows,
            "min": float(matrix.min()) if matrix.size else 0.0, "max": float(matrix.max()) if matrix.size else 0.0,
            "l1": float(np.abs(matrix).sum()), "top": tops}


def summarize(weights: ModelWeights, top: int = 5) -> dict:
    """A JSON-ready description of every variable (what ``streamlin inspect --json`` prints)."""
    others = sorted(n for n in weights.variables if n not in weights.weight_names)
    initial = (weights.attrs.get("optimizer") or {}).get("initial_accumulator_value")
    slots, scalars = [], {}
    for name in others:
        value = np.asarray(weights.variables[name])
        if value.ndim == 0:
            scalars[name] = value.item()
            continue
        fill = (float(initial) if initial is not None else _mode(value)) if name.endswith("/accumulator") else 0.0
        slots.append({"variable": name, "shape": list(value.shape), "size": int(value.size),
                      "changed": int(np.count_nonzero(value != np.float32(fill)))})
    return {"source": weights.source, "kind": weights.kind, "global_step": weights.global_step,
            "class_names": list(weights.class_names) if weights.class_names else None,
            "columns": [column_summary(weights, n, top) for n in weights.weight_names],
            "slots": slots, "scalars": scalars}


def _mode(value: np.ndarray) -> float:
    """The most common value: what an untouched accumulator holds when its initial value is unknown."""
    values, counts = np.unique(np.asarray(value).ravel(), return_counts=True)
    return float(values[np.argmax(counts)]) if len(values) else 0.0


def format_summary(summary: dict, top: int = 5, show_slots: bool = False) -> str:
    """Plain-text tables of :func:`summarize` output."""
    lines = [f"{summary['source']} ({summary['kind']} checkpoint, global_step {summary['global_step']:,})", ""]
    rows = [("variable", "shape", "non-zero rows", "min", "max")]
    for c in summary["columns"]:
        share = c["nonzero_rows"] / c["rows"] if c["rows"] else 0.0
        rows.append((c["variable"], "x".join(map(str, c["shape"])) or "scalar",
                     f"{c['nonzero_rows']:,}/{c['rows']:,} ({share:.0%})", f"{c['min']:+.4g}", f"{c['max']:+.4g}"))
    if show_slots:
        for o in summary["slots"]:
            rows.append((o["variable"], "x".join(map(str, o["shape"])), f"{o['changed']:,}/{o['size']:,} changed", "", ""))
    lines.extend(_table(rows))
    if summary["slots"] and not show_slots:
        changed = sum(o["changed"] for o in summary["slots"])
        size = sum(o["size"] for o in summary["slots"])
        kinds = sorted({o["variable"].rsplit("/", 1)[-1] for o in summary["slots"]})
        lines.append(f"optimizer slots: {len(summary['slots'])} variables ({', '.join(kinds)}), {changed:,} of {size:,}"
                     " values changed from their initial value (--slots lists them)")
    scalars = summary["scalars"]
    if scalars:
        shown = ", ".join(f"{name.rsplit('/', 1)[-1]} {value:g}" for name, value in scalars.items()
                          if name != "global_step")
        if shown:
            lines.append(f"hyper-parameters: {shown}")
    classes = summary.get("class_names")
    lines.append("")
    lines.append(f"top {top} weights per column (by |weight|)"
                 + (f"; classes {', '.join(classes)}" if classes and len(classes) > 2 else ""))
    for c in summary["columns"]:
        if c["variable"] == BIAS:
            lines.append(f"  bias: {', '.join(f'{w:+.4f}' for w in (c['top'][0]['weights'] if c['top'] else [0.0]))}")
            continue
        shown = []
        for t in c["top"]:
            w = t["weights"]
            shown.append(f"{t['label']} {w[0]:+.4f}" if len(w) == 1 else f"{t['label']} [{', '.join(f'{x:+.3f}' for x in w)}]")
        lines.append(f"  {c['column']}: {', '.join(shown) if shown else '(all zero)'}")
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, row in enumerate(rows):
        out.append("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


# ------------------------------------------------------------------------------------------------
# curves from predictions
# ------------------------------------------------------------------------------------------------
def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false positive rates, true positive rates, AUC) over every distinct threshold.

    scores float64 (n,); labels float64 (n,) in [0, 1] (soft labels count fractionally).
    """
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) else np.zeros(0, dtype=np.int64)
    ends = np.append(distinct, len(s) - 1) if len(s) else distinct
    tps = np.cumsum(y)[ends] if len(s) else np.zeros(0)
    fps = (ends + 1) - tps
    positives, negatives = float(y.sum()), float(len(y) - y.sum())
    tpr = np.concatenate([[0.0], tps / positives if positives else np.zeros_like(tps)])
    fpr = np.concatenate([[0.0], fps / negatives if negatives else np.zeros_like(fps)])
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    return fpr, tpr, auc


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(recall, precision, average precision) over every distinct threshold."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    if not len(s):
        return np.zeros(1), np.ones(1), 0.0
    ends = np.append(np.flatnonzero(np.diff(s)), len(s) - 1)
    tps = np.cumsum(y)[ends]
    predicted = ends + 1
    positives = float(y.sum())
    recall = tps / positives if positives else np.zeros_like(tps)
    precision = tps / predicted
    average_precision = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    return np.concatenate([[0.0], recall]), np.concatenate([[precision[0]], precision]), average_precision


def calibration(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted, observed rate, count) per equal-width probability bin (empty bins dropped)."""
    index = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    predicted = np.bincount(index, weights=scores, minlength=bins)
    observed = np.bincount(index, weights=labels, minlength=bins)
    keep = counts > 0
    return predicted[keep] / counts[keep], observed[keep] / counts[keep], counts[keep]


def _thin(xs: np.ndarray, ys: np.ndarray, limit: int = 400) -> tuple[np.ndarray, np.ndarray]:
    if len(xs) <= limit:
        return xs, ys
    keep = np.unique(np.linspace(0, len(xs) - 1, limit).astype(np.int64))
    return xs[keep], ys[keep]


# ------------------------------------------------------------------------------------------------
# SVG charts, by hand
# ------------------------------------------------------------------------------------------------
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def _tick_text(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:g}G"
    if magnitude >= 1e6:
        return f"{value / 1e6:g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:.6g}"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


_CLIP_IDS = itertools.count()


@dataclass
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    markers: bool | None = None
    dashed: bool = False


class Chart:
    """A line chart as an SVG string: axes with round ticks, a legend, optional y = x diagonal."""

    def __init__(self, title: str, x_label: str, y_label: str, width: int = 460, height: int = 300,
                 x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None,
                 diagonal: bool = False, note: str | None = None):
        self.title, self.x_label, self.y_label = title, x_label, y_label
        self.width, self.height = width, height
        self.x_range, self.y_range = x_range, y_range
        self.diagonal, self.note = diagonal, note
        self.left, self.right, self.top, self.bottom = 62, 16, 34, 46
        self.clip_id = f"clip{next(_CLIP_IDS)}"

    def _bounds(self, series: Sequence[Series]) -> tuple[list[float], list[float]]:
        xs = np.concatenate([np.asarray(s.xs, dtype=np.float64) for s in series]) if series else np.zeros(0)
        ys = np.concatenate([np.asarray(s.ys, dtype=np.float64) for s in series]) if series else np.zeros(0)
        xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
        x_lo, x_hi = self.x_range or ((float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0))
        y_lo, y_hi = self.y_range or ((float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0))
        if self.y_range is None and y_hi == y_lo:
            pad = max(abs(y_lo) * 0.05, 1e-3)
            y_lo, y_hi = y_lo - pad, y_hi + pad
        elif self.y_range is None and y_hi > y_lo:
            pad = (y_hi - y_lo) * 0.05
            y_lo, y_hi = (y_lo - pad if y_lo - pad >= 0 or y_lo < 0 else 0.0), (y_hi + pad if y_hi + pad <= 0 or y_hi > 0 else 0.0)
        x_ticks = nice_ticks(x_lo, x_hi) if self.x_range is None else nice_ticks(*self.x_range)
        y_ticks = nice_ticks(y_lo, y_hi) if self.y_range is None else nice_ticks(*self.y_range)
        if self.x_range is not None:
            x_ticks = [t for t in x_ticks if self.x_range[0] - 1e-12 <= t <= self.x_range[1] + 1e-12]
        if self.y_range is not None:
            y_ticks = [t for t in y_ticks if self.y_range[0] - 1e-12 <= t <= self.y_range[1] + 1e-12]
        return x_ticks, y_ticks

    def _legend(self, series: Sequence[Series]) -> tuple[list[str], int]:
        """SVG items of a legend in rows under the title, and the height it takes."""
        items, x, row = [], self.left, 0
        right = self.width - self.right
        for k, s in enumerate(series):
            if not s.name:
                continue
            width = 22 + 6 * len(s.name)
            if x + width > right and x > self.left:
                x, row = self.left, row + 1
            y = 34 + 13 * row
            color = PALETTE[k % len(PALETTE)]
            items.append(f'<line x1="{x}" y1="{y - 3}" x2="{x + 14}" y2="{y - 3}" stroke="{color}" stroke-width="2.5"/>'
                         f'<text x="{x + 18}" y="{y}" font-size="10">{_esc(s.name)}</text>')
            x += width + 8
        return items, (13 * (row + 1) + 2 if items else 0)

    def svg(self, series: Sequence[Series]) -> str:
        legend, legend_height = self._legend(series)
        self.top = 34 + legend_height
        x_ticks, y_ticks = self._bounds(series)
        x0, x1 = (self.x_range or (x_ticks[0], x_ticks[-1]))
        y0, y1 = (self.y_range or (y_ticks[0], y_ticks[-1]))
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y1 = y0 + 1
        plot_w = self.width - self.left - self.right
        plot_h = self.height - self.top - self.bottom

        def px(x: float) -> float:
            return self.left + (x - x0) / (x1 - x0) * plot_w

        def py(y: float) -> float:
            return self.top + plot_h - (y - y0) / (y1 - y0) * plot_h

        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}"'
               f' viewBox="0 0 {self.width} {self.height}" role="img" aria-label="{_esc(self.title)}">',
               f'<rect width="{self.width}" height="{self.height}" fill="#fff"/>',
               f'<text x="{self.width / 2:.1f}" y="20" text-anchor="middle" font-size="14" font-weight="600">'
               f'{_esc(self.title)}</text>', *legend]
        for t in x_ticks:
            x = px(t)
            out.append(f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{self.top + plot_h}" stroke="#eee"/>')
            out.append(f'<text x="{x:.1f}" y="{self.top + plot_h + 15}" text-anchor="middle" font-size="10"'
                       f' fill="#444">{_esc(_tick_text(t))}</text>')
        for t in y_ticks:
            y = py(t)
            out.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{self.left - 6}" y="{y + 3:.1f}" text-anchor="end" font-size="10" fill="#444">'
                       f'{_esc(_tick_text(t))}</text>')
        out.append(f'<rect x="{self.left}" y="{self.top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{self.left + plot_w / 2:.1f}" y="{self.height - 8}" text-anchor="middle" font-size="11">'
                   f'{_esc(self.x_label)}</text>')
        out.append(f'<text transform="translate(14 {self.top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle"'
                   f' font-size="11">{_esc(self.y_label)}</text>')
        out.append(f'<clipPath id="{self.clip_id}"><rect x="{self.left}" y="{self.top}" width="{plot_w}" height="{plot_h}"/>'
                   '</clipPath>')
        if self.diagonal:
            lo, hi = max(x0, y0), min(x1, y1)
            out.append(f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" stroke="#aaa"'
                       ' stroke-dasharray="4 3"/>')
        for k, s in enumerate(series):
            color = PALETTE[k % len(PALETTE)]
            pts = [(px(float(x)), py(float(y))) for x, y in zip(s.xs, s.ys) if math.isfinite(x) and math.isfinite(y)]
            if not pts:
                continue
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            if len(pts) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash}'
                           f' clip-path="url(#{self.clip_id})"/>')
            if s.markers or (s.markers is None and len(pts) <= 40):
                out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{color}"/>' for x, y in pts)
        if self.note:
            out.append(f'<text x="{self.left + 8}" y="{self.top + plot_h - 8}" font-size="10" fill="#333">'
                       f'{_esc(self.note)}</text>')
        out.append("</svg>")
        return "".join(out)


def histogram_svg(title: str, values: np.ndarray, bins: int = 40, note: str | None = None,
                  width: int = 460, height: int = 240) -> str:
    """Bars of a histogram of ``values`` (float64) as an SVG string."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    chart = Chart(title, "weight", "rows", width, height, note=note)
    if values.size == 0:
        return chart.svg([])
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    x_ticks = nice_ticks(lo, hi)
    y_ticks = nice_ticks(0, float(counts.max()))
    chart.x_range = (x_ticks[0], x_ticks[-1])
    chart.y_range = (0.0, y_ticks[-1])
    svg = chart.svg([])
    plot_w = width - chart.left - chart.right
    plot_h = height - chart.top - chart.bottom
    x0, x1 = chart.x_range
    y1 = chart.y_range[1]
    bars = []
    for count, a, b in zip(counts, edges[:-1], edges[1:]):
        if not count:
            continue
        xa = chart.left + (a - x0) / (x1 - x0) * plot_w
        xb = chart.left + (b - x0) / (x1 - x0) * plot_w
        h = count / y1 * plot_h
        bars.append(f'<rect x="{xa:.1f}" y="{chart.top + plot_h - h:.1f}" width="{max(xb - xa - 0.6, 0.6):.1f}"'
                    f' height="{h:.1f}" fill="{PALETTE[0]}" fill-opacity="0.75"><title>[{a:.4g}, {b:.4g}): {count}</title></rect>')
    return svg.replace("</svg>", "".join(bars) + "</svg>")


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON-lines file; damaged lines are skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def eval_histories(model_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """eval dir name -> metric -> [(global_step, value)], the last record per step, by step."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for directory in sorted(p for p in model_dir.glob("eval*") if p.is_dir()):
        by_step: dict[int, dict] = {}
        for record in read_jsonl(directory / "metrics.jsonl"):
            metrics = record.get("metrics")
            if isinstance(metrics, dict) and isinstance(record.get("global_step"), int):
                by_step[record["global_step"]] = metrics
        if not by_step:
            continue
        metrics_names = sorted({k for m in by_step.values() for k in m if k != "global_step"})
        out[directory.name] = {k: [(s, float(m[k])) for s, m in sorted(by_step.items()) if k in m]
                               for k in metrics_names}
    return out


@dataclass
class Predictions:
    """Scores and labels of an evaluation data set, for the curves."""

    probabilities: np.ndarray   # float64 (n, n_classes)
    labels: np.ndarray          # float64 (n,): binary in [0, 1], else class ids
    class_names: tuple[str, ...]
    source: str
    truncated: bool = False


def collect_predictions(spec, data: Any, checkpoint: Any = None, max_rows: int = 1_000_000,
                        model_dir: str | None = None) -> Predictions:
    """Run the model of ``spec`` over ``data``; keep probabilities and encoded labels."""
    from streamlin.heads import Head

    if spec.label_key is None:
        raise CheckpointError("the model_dir has no streamlin.toml naming the label; pass --spec for --data.")
    estimator = spec.estimator(model_dir)
    head = Head(spec.n_classes, spec.label_vocabulary, spec.loss_reduction)
    predict_fn = spec.input_fn(data, for_training=False, batch_size=8192)
    label_fn = spec.input_fn(data, for_training=False, batch_size=8192)
    probabilities, labels, total = [], [], 0
    stream = estimator.predict(predict_fn, predict_keys=["probabilities"], checkpoint_path=checkpoint,
                               yield_single_examples=False)
    for batch in stream:
        p = np.asarray(batch["probabilities"], dtype=np.float64)
        probabilities.append(p)
        total += len(p)
        if total >= max_rows:
            break
    truncated = total >= max_rows
    seen = 0
    for chunk in label_fn.chunks(columns=[], chunk_rows=65536):
        if chunk.labels is None:
            raise CheckpointError(f"--data has no label column {spec.label_key!r}; curves need labels.")
        encoded = head.encode_labels(chunk.labels, chunk.locate, spec.label_key)
        labels.append(encoded)
        seen += len(encoded)
        if seen >= total:
            break
    probs = np.concatenate(probabilities) if probabilities else np.zeros((0, spec.n_classes))
    ys = np.concatenate(labels)[: len(probs)] if labels else np.zeros(0)
    names = head.class_names
    kind, files = spec.files(data)
    source = files[0] if len(files) == 1 else f"{len(files)} {kind} files"
    return Predictions(probs[: len(ys)], ys, names, source, truncated)


_PREFERRED = ("average_loss", "loss", "auc", "auc_precision_recall", "accuracy", "precision", "recall",
              "accuracy_baseline", "prediction/mean", "label/mean")


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section><h2>{_esc(title)}</h2>{note_html}<div class="grid">{body}</div></section>'


def _figure(svg: str, caption: str = "") -> str:
    return f'<figure>{svg}{f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""}</figure>'


def build_report(model_dir: str | os.PathLike, *, predictions: Predictions | None = None,
                 checkpoint: Any = None, spec=None, title: str | None = None) -> str:
    """The HTML text of a report on ``model_dir``."""
    root = Path(model_dir)
    from streamlin.checkpoint import store

    snapshots = store.list_snapshots(root)
    weights = load_weights(root, checkpoint)
    attrs = weights.attrs
    parts: list[str] = []

    # -- summary -----------------------------------------------------------------------------------
    head = attrs.get("head") or {}
    optimizer = attrs.get("optimizer") or {}
    summary_rows = [
        ("model_dir", str(root.resolve())),
        ("checkpoint", f"{weights.source} (global_step {weights.global_step:,})"),
        ("snapshots kept", ", ".join(str(s.step) for s in snapshots) or "none"),
        ("head", f"{head.get('n_classes', 2)} classes" + (f" {head['label_vocabulary']}" if head.get("label_vocabulary") else "")
         + f", loss_reduction {head.get('loss_reduction', '?')}"),
        ("optimizer", ", ".join(f"{k}={v}" for k, v in optimizer.items() if k != "class" and v is not None)
         and f"{optimizer.get('class')}(" + ", ".join(f"{k}={v}" for k, v in optimizer.items()
                                                     if k != "class" and v is not None) + ")"),
        ("columns", str(len(attrs.get("feature_columns", [])))),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S")),
    ]
    if spec is not None and getattr(spec, "label_key", None):
        summary_rows.insert(3, ("label", spec.label_key))
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in summary_rows)
    parts.append(f'<section><h2>Model</h2><table class="kv">{table}</table></section>')

    # -- training ----------------------------------------------------------------------------------
    log = [r for r in read_jsonl(root / TRAIN_LOG) if "loss" in r and "step" in r]
    if log:
        steps = [r["step"] for r in log]
        figures = [_figure(Chart("Training loss", "global step", "loss (mean per step)").svg(
            [Series("", steps, [r["loss"] for r in log])]))]
        if any("rows_per_sec" in r for r in log):
            figures.append(_figure(Chart("Throughput", "global step", "rows/s").svg(
                [Series("", steps, [r.get("rows_per_sec", float("nan")) for r in log])])))
        parts.append(_section("Training", "".join(figures),
                              f"{len(log)} records from {TRAIN_LOG}, logged every log_step_count_steps."))
    else:
        parts.append(_section("Training", "", f"No {TRAIN_LOG} in the model_dir: train with the streamlin command"
                                              " line to record the training loss."))

    # -- evaluations ---------------------------------------------------------------------------------
    histories = eval_histories(root)
    if histories:
        names = sorted({m for h in histories.values() for m in h},
                       key=lambda m: (_PREFERRED.index(m) if m in _PREFERRED else len(_PREFERRED), m))
        figures = []
        for metric in names:
            series = [Series(eval_name if len(histories) > 1 else "", [s for s, _ in h[metric]], [v for _, v in h[metric]])
                      for eval_name, h in histories.items() if metric in h]
            figures.append(_figure(Chart(metric, "global step", metric, width=380, height=250).svg(series)))
        latest_rows = []
        for eval_name, h in histories.items():
            cells = "".join(f"<td>{h[m][-1][1]:.4f}</td>" if m in h else "<td></td>" for m in names)
            latest_rows.append(f"<tr><th>{_esc(eval_name)}</th>{cells}</tr>")
        header = "".join(f"<th>{_esc(m)}</th>" for m in names)
        table = f'<table class="metrics"><tr><th>eval dir (latest)</th>{header}</tr>{"".join(latest_rows)}</table>'
        parts.append(f"<section><h2>Evaluation</h2>{table}<div class=\"grid\">{''.join(figures)}</div></section>")
    else:
        parts.append(_section("Evaluation", "", "No eval*/metrics.jsonl yet: run streamlin evaluate."))

    # -- curves ------------------------------------------------------------------------------------
    if predictions is not None:
        parts.append(_curves_section(predictions))

    # -- weights -----------------------------------------------------------------------------------
    figures = []
    for name in weights.weight_names:
        if name == BIAS:
            continue
        value = np.asarray(weights.variables[name], dtype=np.float64)
        nonzero = value[value != 0]
        summary = column_summary(weights, name, top=3)
        tops = "; ".join(f"{t['label']} {t['weights'][0]:+.3f}" for t in summary["top"][:3])
        note = f"{np.count_nonzero(np.any(value.reshape(value.shape[0], -1) != 0, axis=1)):,} of {value.shape[0]:,} rows non-zero"
        figures.append(_figure(histogram_svg(summary["column"], nonzero, width=380, height=220),
                               f"{note}; top: {tops}" if tops else f"{note}: all weights are zero"))
    bias = weights.variables.get(BIAS)
    bias_text = ", ".join(f"{b:+.4f}" for b in np.ravel(bias)) if bias is not None else "?"
    parts.append(_section("Weights per column", "".join(figures),
                          f"Histograms of the non-zero weights of each column (every class pooled). Bias: {_esc(bias_text)}."))

    heading = title or f"streamlin report: {root.name}"
    return _page(heading, "".join(parts))


def _curves_section(p: Predictions) -> str:
    figures = []
    n = len(p.labels)
    if len(p.class_names) == 2:
        scores, y = p.probabilities[:, 1], p.labels
        targets = [(f"{p.class_names[1]}", scores, y)]
    else:
        targets = [(name, p.probabilities[:, k], (p.labels == k).astype(np.float64))
                   for k, name in enumerate(p.class_names[:10])]
    roc_series, pr_series, notes_roc, notes_pr = [], [], [], []
    for name, scores, y in targets:
        fpr, tpr, auc = roc_curve(scores, y)
        recall, precision, ap = pr_curve(scores, y)
        label = name if len(targets) > 1 else ""
        roc_series.append(Series(label, *_thin(fpr, tpr), markers=False))
        pr_series.append(Series(label, *_thin(recall, precision), markers=False))
        notes_roc.append(f"AUC {auc:.4f}" if len(targets) == 1 else f"{name}: {auc:.3f}")
        notes_pr.append(f"AP {ap:.4f}" if len(targets) == 1 else f"{name}: {ap:.3f}")
    figures.append(_figure(Chart("ROC", "false positive rate", "true positive rate", x_range=(0, 1), y_range=(0, 1),
                                 diagonal=True, note=notes_roc[0] if len(targets) == 1 else None).svg(roc_series),
                           "" if len(targets) == 1 else "AUC one-vs-rest: " + ", ".join(notes_roc)))
    figures.append(_figure(Chart("Precision-recall", "recall", "precision", x_range=(0, 1), y_range=(0, 1),
                                 note=notes_pr[0] if len(targets) == 1 else None).svg(pr_series),
                           "" if len(targets) == 1 else "average precision: " + ", ".join(notes_pr)))
    if len(p.class_names) == 2:
        predicted, observed, counts = calibration(p.probabilities[:, 1], np.clip(p.labels, 0, 1))
        caption = f"P({p.class_names[1]}) in 10 bins; rows per bin: " + ", ".join(f"{int(c):,}" for c in counts)
    else:
        confidence = p.probabilities.max(axis=1)
        correct = (p.probabilities.argmax(axis=1) == p.labels).astype(np.float64)
        predicted, observed, counts = calibration(confidence, correct)
        caption = "top-class probability vs accuracy in 10 bins"
    figures.append(_figure(Chart("Calibration", "mean predicted probability", "observed frequency", x_range=(0, 1),
                                 y_range=(0, 1), diagonal=True).svg([Series("", predicted, observed, markers=True)]),
                           caption))
    note = f"{n:,} rows of {_esc(p.source)}" + (" (truncated)" if p.truncated else "") + "; unweighted."
    return _section("Curves on evaluation data", "".join(figures), note)


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;
background:#fafafa}h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px}.grid{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;background:#fff;border:1px solid #e3e3e3;
border-radius:4px;padding:4px}figcaption{font-size:11px;color:#555;max-width:460px;padding:2px 6px 4px}
.note{font-size:12px;color:#555;margin:4px 0 10px}table{border-collapse:collapse;font-size:12px;background:#fff}
th,td{border:1px solid #e3e3e3;padding:3px 8px;text-align:left}table.metrics td{text-align:right}
table.kv th{background:#f3f3f3;width:130px}
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
            f'<body><h1>{_esc(title)}</h1>{body}</body></html>\n')


def write_report(model_dir: str | os.PathLike, output: str | os.PathLike, **options: Any) -> str:
    """Write :func:`build_report`'s page to ``output``; returns its path."""
    text = build_report(model_dir, **options)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


__all__ = ["ModelWeights", "load_weights", "summarize", "format_summary", "row_label", "roc_curve", "pr_curve",
           "calibration", "Chart", "Series", "histogram_svg", "build_report", "write_report", "collect_predictions",
           "Predictions", "eval_histories", "read_jsonl", "nice_ticks"]
