"""One model's live record as a picture: cumulative live CORR and MMC by round, resolved rounds
as filled dots on a solid line, pending rounds (still scoring) as open dots on a dashed one,
beside what validation promised: the cumulative validation mean and a band of one per-era
standard deviation (sqrt(n) wide after n rounds, as for a sum of n independent rounds).

Drawn with matplotlib's Agg canvas like the validation chart, into a small palette PNG.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from numerflow.live.compare import RoundLive
from numerflow.score.charts import DPI, PANEL_HEIGHT_IN, WIDTH_IN, png_bytes

PANELS = {"corr": "CORR", "mmc": "MMC"}
LIVE, EXPECTED = "#1565c0", "#616161"


def live_figure(model: str, table: list[RoundLive]) -> Figure:
    figure = Figure(figsize=(WIDTH_IN, PANEL_HEIGHT_IN * 1.3 * len(PANELS)), dpi=DPI, layout="constrained")
    axes = figure.subplots(len(PANELS), 1, sharex=True, squeeze=False)[:, 0]
    resolved = sum(1 for e in table if e.final("corr") is not None)
    figure.suptitle(
        f"model {model}: live scores by round ({resolved} resolved, {len(table) - resolved} pending)",
        fontsize=11,
    )
    for ax, (key, label) in zip(axes, PANELS.items(), strict=True):
        _panel(ax, key, label, table)
    axes[-1].set_xlabel("round")
    axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    return figure


def live_chart(model: str, table: list[RoundLive]) -> bytes:
    return png_bytes(live_figure(model, table))


def _panel(ax: Axes, key: str, label: str, table: list[RoundLive]) -> None:
    scored = [e for e in table if e.scores.get(key) is not None and e.scores[key].value is not None]
    ax.set_title(f"cumulative live {label}", fontsize=9, loc="left")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)
    if not scored:
        ax.text(0.5, 0.5, f"no live {label} yet", transform=ax.transAxes, ha="center", fontsize=9)
        return
    rounds = np.array([e.round for e in scored])
    total = np.cumsum([e.scores[key].value for e in scored])
    final = np.array([e.scores[key].final for e in scored])
    _expectation(ax, key, scored, rounds)
    last_final = int(np.flatnonzero(final).max()) if final.any() else -1
    if last_final >= 0:
        ax.plot(rounds[: last_final + 1], total[: last_final + 1], color=LIVE, linewidth=1.8,
                label=f"live {label}, resolved")  # fmt: skip
    if last_final < len(scored) - 1:
        start = max(last_final, 0)
        ax.plot(rounds[start:], total[start:], color=LIVE, linewidth=1.4, linestyle="--",
                label=f"live {label}, pending")  # fmt: skip
        ax.axvspan(rounds[last_final + 1] - 0.5, rounds[-1] + 0.5, color="#fff3e0", zorder=0)
    ax.scatter(rounds[final], total[final], color=LIVE, s=14, zorder=3)
    ax.scatter(rounds[~final], total[~final], facecolors="white", edgecolors=LIVE, s=18, zorder=3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _expectation(ax: Axes, key: str, scored: list[RoundLive], rounds: np.ndarray) -> None:
    means = [getattr(e.validation, f"{key}_mean") for e in scored]
    stds = [getattr(e.validation, f"{key}_std") for e in scored]
    if any(m is None for m in means):
        return  # a round without its trained run's figures: no honest expectation to draw
    expected = np.cumsum(means)
    ax.plot(rounds, expected, color=EXPECTED, linewidth=1.2, linestyle=":", label="validation mean")
    if all(s is not None and not math.isnan(s) for s in stds):
        spread = np.sqrt(np.cumsum(np.square(stds)))
        ax.fill_between(rounds, expected - spread, expected + spread, color=EXPECTED, alpha=0.15,
                        label="± 1 per-era std")  # fmt: skip
