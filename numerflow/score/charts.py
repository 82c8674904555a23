"""The validation record of one slot as a picture: cumulative CORR (and MMC and BMC where they
were computed) per era for the stack and every base model, and the stack's CORR era by era.

Drawn with matplotlib's Agg canvas (no display, no global pyplot state, safe in worker
threads) into a small PNG: it goes beside the slot's manifest and, as a data URI, into the run
summary artifact, so it is kept to a few tens of KiB.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from numerflow.score.results import STACK, Evaluation
from numerflow.score.validation import LEAD_METRICS

WIDTH_IN, PANEL_HEIGHT_IN, DPI = 9.0, 2.3, 80  # 720 px wide, 184 px per panel
COLOURS = 64  # a palette PNG: a third of the bytes of full colour, no visible difference
POSITIVE, NEGATIVE = "#2e7d32", "#c62828"
STACK_STYLE = {"color": "black", "linewidth": 3.0, "alpha": 0.6, "zorder": 2}
BASE_STYLE = {"linewidth": 1.2, "zorder": 3}


def validation_figure(evaluation: Evaluation, title: str) -> Figure:
    """Cumulative validation CORR per model, the stack's per-era CORR as bars, then cumulative
    MMC and BMC per model, each only when it was computed. Eras share the x axis."""
    corr = era_frame(evaluation.per_era["validation"])
    panels: list[tuple[str, pd.DataFrame]] = [("cumulative CORR", corr)]
    for name, label in LEAD_METRICS.items():
        metric = evaluation.validation_metrics.get(name)
        if metric is not None and not metric.not_computed and metric.per_era:
            against = f" ({metric.against})" if metric.against else ""
            panels.append((f"cumulative {label}{against}", era_frame(metric.per_era)))

    figure = Figure(figsize=(WIDTH_IN, PANEL_HEIGHT_IN * (len(panels) + 1)), dpi=DPI, layout="constrained")
    axes = figure.subplots(len(panels) + 1, 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(title, fontsize=11)
    _cumulative(axes[0], *panels[0])
    _bars(axes[1], corr[STACK])
    for ax, (label, frame) in zip(axes[2:], panels[1:], strict=True):
        _cumulative(ax, label, frame)
    axes[-1].set_xlabel("validation era")
    axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    return figure


def validation_chart(evaluation: Evaluation, slot: str, run_id: str) -> bytes:
    """The slot's validation chart as PNG bytes."""
    return png_bytes(validation_figure(evaluation, f"slot {slot}: validation record of run {run_id}"))


def png_bytes(figure: Figure) -> bytes:
    """The figure drawn on an Agg canvas as a small palette PNG."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB").quantize(colors=COLOURS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def era_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of era -> score per model as a frame indexed by era number, the stack first."""
    if not rows:
        raise ValueError("no per-era scores to chart: the evaluation scored no validation era")
    frame = pd.DataFrame(rows)
    frame.index = frame.pop("era").astype(int)
    return frame[[STACK, *(c for c in frame.columns if c != STACK)]].sort_index()


def _cumulative(ax: Axes, label: str, frame: pd.DataFrame) -> None:
    for model, scores in frame.cumsum().items():
        # the stack wide and black underneath, so base models that track it stay visible on top
        style = STACK_STYLE if model == STACK else BASE_STYLE
        ax.plot(scores.index, scores.to_numpy(), label=model, **style)
    _frame_axes(ax, label)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _bars(ax: Axes, scores: pd.Series) -> None:
    colours = [POSITIVE if value >= 0 else NEGATIVE for value in scores.fillna(0)]
    ax.bar(scores.index, scores.to_numpy(), width=0.9, color=colours)
    _frame_axes(ax, "stack CORR per era")


def _frame_axes(ax: Axes, label: str) -> None:
    ax.set_title(label, fontsize=9, loc="left")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)
