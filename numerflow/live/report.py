"""The live scores as text: the `numerflow-live-scores` artifact (a table per model, resolved
and pending rounds apart, with its chart), the figures `numerflow scores` and `numerflow
status` print, and the live cell of the run history table."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numerflow.live.compare import LIVE_SCORES, STATUS_WINDOW, RoundLive, WindowFigures, round_table, window
from numerflow.live.store import ModelHistory, load_history, stored_models

KEY_LABELS = {"corr": "CORR", "mmc": "MMC", "bmc": "BMC"}


def model_summary(history: ModelHistory, size: int = STATUS_WINDOW) -> dict[str, Any]:
    """A model's last resolved round and its mean CORR and MMC over its last `size` resolved rounds."""
    table = round_table(history)
    resolved = [e.round for e in table if e.final("corr") is not None]
    summary: dict[str, Any] = {
        "model": history.model,
        "fetched_at": history.fetched_at,
        "rounds": len(table),
        "pending_rounds": [e.round for e in table if e.final("corr") is None],
        "last_resolved_round": resolved[-1] if resolved else None,
    }
    for key in ("corr", "mmc"):
        figures = window(table, key, size)
        summary[key] = None if figures is None else _window_dict(figures)
    return summary


def _window_dict(figures: WindowFigures) -> dict[str, Any]:
    return {
        "mean": figures.mean,
        "resolved_rounds": len(figures.values),
        "validation_mean": figures.validation_mean,
        "validation_std": figures.validation_std,
    }


def live_status(work_dir: Path) -> dict[str, Any] | None:
    """`numerflow status`'s section: each stored model's figures (None: nothing fetched yet)."""
    section: dict[str, Any] = {}
    for model in stored_models(work_dir):
        try:
            section[model] = model_summary(load_history(work_dir, model))
        except ValueError as exc:  # a damaged history is reported, never fatal
            section[model] = {"error": str(exc)}
    return section or None


def status_lines(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return ["live scores: none fetched yet (the per-round flow or `numerflow scores` fetches them)"]
    lines = ["live scores (last resolved round; mean over the last 20 resolved rounds):"]
    for model, summary in section.items():
        lines.append(f"  {model}: {summary.get('error') or _summary_text(summary)}")
    return lines


def _summary_text(summary: dict[str, Any]) -> str:
    last = summary["last_resolved_round"]
    parts = [f"last resolved round {last}" if last is not None else "no resolved round yet"]
    for key in ("corr", "mmc"):
        figures = summary[key]
        if figures is not None:
            promised = figures["validation_mean"]
            parts.append(
                f"{KEY_LABELS[key]} {figures['mean']:+.4f} over {figures['resolved_rounds']} rounds"
                + (f" (validation {promised:+.4f})" if promised is not None else "")
            )
    pending = summary["pending_rounds"]
    if pending:
        parts.append(f"{len(pending)} pending")
    return ", ".join(parts)


def live_markdown(
    histories: list[ModelHistory],
    chart: Callable[[str, list[RoundLive]], bytes] | None,
    heading: str = "#",
) -> str:
    """The artifact (or, one heading level down, the run summary's section): per model its
    figures, its chart (when `chart` draws one) and its rounds, newest first, resolved rounds
    apart from pending ones."""
    lines = [
        f"{heading} Live Numerai scores next to validation",
        "",
        f"Numerai's live scores ({', '.join(f'{KEY_LABELS[k]} = `{n}`' for k, n in LIVE_SCORES.items())}), "
        "latest value per round; **final** once Numerai resolved the round, else the day it reached. "
        "Validation: the trained run's per-era mean ± one standard deviation.",
    ]
    if not histories:
        return "\n".join([*lines, "", "No live scores fetched yet."]) + "\n"
    for history in histories:
        table = round_table(history)
        lines += ["", f"{heading}# model {history.model}", "", f"- {_summary_text(model_summary(history))}"]
        if chart is not None and table:
            png = base64.b64encode(chart(history.model, table)).decode()
            lines += ["", f"![live scores chart of model {history.model}](data:image/png;base64,{png})"]
        for title, rounds in (
            ("Pending rounds (still scoring)", [e for e in table if e.final("corr") is None]),
            ("Resolved rounds", [e for e in table if e.final("corr") is not None]),
        ):
            lines += ["", f"{heading}## {title}", ""]
            lines += _round_rows(rounds) if rounds else ["none"]
    return "\n".join(lines) + "\n"


def _round_rows(rounds: list[RoundLive]) -> list[str]:
    lines = [
        "| round | trained run | live CORR | live MMC | live BMC | validation CORR | validation MMC |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in sorted(rounds, key=lambda e: e.round, reverse=True):
        v = entry.validation
        cells = [
            str(entry.round),
            entry.trained_run_id or "- (not in the ledger)",
            *(_live_cell(entry, key) for key in KEY_LABELS),
            _band(v.corr_mean, v.corr_std),
            _band(v.mmc_mean, v.mmc_std),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _live_cell(entry: RoundLive, key: str) -> str:
    live = entry.scores.get(key)
    if live is None or live.value is None:
        return "-"
    return f"**{live.value:+.4f}** final" if live.final else f"{live.value:+.4f} (day {live.day})"


def _band(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:+.4f}" + (f" ± {std:.4f}" if std is not None else "")


def run_live_cell(work_dir: Path, model: str, run_id: str) -> str:
    """The run history's live column: the mean final live CORR of the rounds this run submitted."""
    try:
        history = load_history(work_dir, model)
    except ValueError:
        return "unreadable live history"
    mine = [e for e in round_table(history) if e.trained_run_id == run_id]
    finals = [v for e in mine if (v := e.final("corr")) is not None]
    if not mine:
        return "-"
    pending = len(mine) - len(finals)
    text = f"{sum(finals) / len(finals):+.4f} ({len(finals)} resolved" if finals else "(0 resolved"
    return text + (f", {pending} pending)" if pending else ")")


def summary_section(work_dir: Path, models: list[str]) -> str | None:
    """The weekly run summary's live section for the models with a stored history, or None."""
    stored = [m for m in models if m in stored_models(work_dir)]
    histories = []
    for model in stored:
        try:
            histories.append(load_history(work_dir, model))
        except ValueError as exc:  # the summary is a report: a damaged history never fails the run
            return f"## Live Numerai scores\n\n{exc}\n"
    return live_markdown(histories, draw_chart, heading="##") if histories else None


def draw_chart(model: str, table: list[RoundLive]) -> bytes:
    from numerflow.live.chart import live_chart  # matplotlib is imported only to draw

    return live_chart(model, table)
