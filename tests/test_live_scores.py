"""Live Numerai scores: read back through the real numerapi client from the loopback fake API,
kept per model under the work folder, shown next to validation, and the decay alert."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from numerflow.live.chart import live_chart, live_figure
from numerflow.live.compare import LIVE_SCORES, round_table, window
from numerflow.live.decay import DecayAlert, check_decay, decay_reason, open_incidents
from numerflow.live.fetch import fetch_scores, refresh
from numerflow.live.report import (
    live_markdown,
    live_status,
    model_summary,
    run_live_cell,
    status_lines,
    summary_section,
)
from numerflow.live.store import history_path, load_history
from numerflow.numerai import ledger
from numerflow.numerai.client import NumeraiClient, Timeouts
from numerflow.report.summary import markdown_summary
from numerflow.runs.manifest import Manifest, write_manifest
from tests.fake_numerai import FakeNumerai

CORR, MMC, BMC = LIVE_SCORES["corr"], LIVE_SCORES["mmc"], LIVE_SCORES["bmc"]
MODEL = "my_model"
RUN = "20261001T000000Z-aaaa"
VALIDATION = {"corr": (0.03, 0.02), "mmc": (0.01, 0.01)}  # mean, per-era std of the trained run


@pytest.fixture
def fake() -> Iterator[FakeNumerai]:
    server = FakeNumerai(models={MODEL: "model-1", "steady": "model-2"}).start()
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeNumerai) -> NumeraiClient:
    return NumeraiClient(api_url=fake.api_url, timeouts=Timeouts(1, 0.5), retry_budget_seconds=0.5,
                         retry_base_delay=0.01)  # fmt: skip


def _trained_run(work_dir: Path, model: str, rounds: range) -> None:
    """The trained run's manifest and ledger entries saying it submitted `rounds`."""
    (corr, corr_std), (mmc, mmc_std) = VALIDATION["corr"], VALIDATION["mmc"]
    figures = {"sharpe": 1.5, "max_drawdown": 0.1, "eras": 100}
    metrics = {
        "summary": {"validation": {"stack": {"mean": corr, "std": corr_std, **figures}}},
        "validation": {"mmc": {"summary": {"stack": {"mean": mmc, "std": mmc_std, **figures}}}},
    }
    manifest = Manifest(run_id=RUN, slot=model, submit_as=model, created_at="x", code_version="x",
                        data={"version": "v5.2"}, features=[], targets=[], params={},
                        device={"choice": "cpu", "reason": "x", "device_type": "cpu"}, folds=[],
                        metrics=metrics)  # fmt: skip
    write_manifest(work_dir / RUN / "slots" / model, manifest)
    for number in rounds:
        ledger.append(work_dir, round=number, model=model, trained_run_id=RUN, submission_id="s",
                      sha256="0", rows=1)  # fmt: skip


def _fetch(client: NumeraiClient, work_dir: Path, fake: FakeNumerai, model: str = MODEL):
    return fetch_scores(client, work_dir, model, fake.models[model], last_n_rounds=200)


def test_fetching_twice_stores_each_day_once_and_takes_the_newer_value(
    fake: FakeNumerai, client: NumeraiClient, tmp_path: Path
) -> None:
    fake.score_round(MODEL, 500, {CORR: 0.02, MMC: 0.01}, days=8)
    fake.score_round(MODEL, 501, {CORR: 0.01}, days=3)
    first = _fetch(client, tmp_path, fake)
    assert len(first.rows) == 8 + 8 + 3
    day8 = next(r for r in first.rows if (r.round, r.score, r.day) == (500, CORR, 8))

    fake.score_round(MODEL, 500, {CORR: 0.04, MMC: 0.01}, days=12)  # Numerai revised round 500
    second = _fetch(client, tmp_path, fake)
    keys = [r.key() for r in second.rows]
    assert len(keys) == len(set(keys)) == 12 + 12 + 3
    revised = next(r for r in second.rows if r.key() == day8.key())
    assert revised.value != day8.value and revised.value == pytest.approx(0.04 * (0.5 + 0.5 * 8 / 20))
    assert load_history(tmp_path, MODEL) == second  # what was returned is what is stored


def test_a_60_day_score_does_not_overwrite_the_20_day_final(
    fake: FakeNumerai, client: NumeraiClient, tmp_path: Path
) -> None:
    fake.score_round(MODEL, 600, {CORR: 0.025, "corr60": -0.3, MMC: 0.005}, days=45)
    history = _fetch(client, tmp_path, fake)
    last_row = max((r for r in history.rows if r.round == 600), key=lambda r: r.day)
    assert last_row.score == "corr60" and not last_row.resolved  # the round's last row is not CORR's

    [entry] = round_table(history)
    assert entry.scores["corr"].final and entry.scores["corr"].day == 20
    assert entry.final("corr") == pytest.approx(0.025)
    assert entry.final("mmc") == pytest.approx(0.005)


def test_artifact_and_chart_tell_resolved_and_pending_rounds_apart(
    fake: FakeNumerai, client: NumeraiClient, tmp_path: Path
) -> None:
    _trained_run(tmp_path, MODEL, range(700, 704))
    for number, days in ((700, 20), (701, 20), (702, 9), (703, 2)):
        fake.score_round(MODEL, number, {CORR: 0.02 + number % 10 / 100, MMC: 0.01, BMC: 0.002}, days)
    history = _fetch(client, tmp_path, fake)

    text = live_markdown([history], None)
    pending, resolved = text.split("Pending rounds")[1].split("Resolved rounds")
    assert "| 703 |" in pending and "| 702 |" in pending and "| 701 |" not in pending
    assert "| 701 |" in resolved and "| 700 |" in resolved and "| 702 |" not in resolved
    [row_701] = [line for line in resolved.splitlines() if line.startswith("| 701 |")]
    assert f"**{0.03:+.4f}** final" in row_701 and RUN in row_701 and f"{0.03:+.4f} ± {0.02:.4f}" in row_701
    [row_702] = [line for line in pending.splitlines() if line.startswith("| 702 |")]
    assert "(day 9)" in row_702

    figure = live_figure(MODEL, round_table(history))
    corr_axes = figure.axes[0]
    labels = [line.get_label() for line in corr_axes.get_lines()]
    assert "live CORR, resolved" in labels and "live CORR, pending" in labels
    solid = next(line for line in corr_axes.get_lines() if line.get_label() == "live CORR, resolved")
    dashed = next(line for line in corr_axes.get_lines() if line.get_label() == "live CORR, pending")
    assert list(solid.get_xdata()) == [700, 701] and list(dashed.get_xdata()) == [701, 702, 703]
    assert "2 resolved, 2 pending" in figure.get_suptitle()
    png = live_chart(MODEL, round_table(history))
    assert Image.open(io.BytesIO(png)).size[0] == 720 and len(png) < 100_000

    with_chart = live_markdown([history], live_chart)
    assert "![live scores chart of model my_model](data:image/png;base64," in with_chart
    assert run_live_cell(tmp_path, MODEL, RUN) == f"{(0.02 + 0.03) / 2:+.4f} (2 resolved, 2 pending)"

    section = summary_section(tmp_path, [MODEL, "never_submitted"])  # the next weekly run's summary
    assert section is not None and section.startswith("## Live Numerai scores next to validation")
    assert "### model my_model" in section and "#### Pending rounds" in section
    assert "data:image/png" in section
    summary = markdown_summary("run-2", "v5.2", {}, {}, None, live=section)
    assert section in summary
    assert summary_section(tmp_path, ["never_submitted"]) is None


def _clock() -> Iterator[datetime]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return (start + timedelta(days=n) for n in itertools.count())


@pytest.mark.slow  # 160 fetches through numerapi and the fake: 7.6 s on a loaded 2-core machine
def test_decay_alerts_once_per_incident_and_again_after_a_recovery(
    fake: FakeNumerai, client: NumeraiClient, tmp_path: Path
) -> None:
    """My_model's live CORR drops to zero after 20 good rounds; `steady` stays inside its band."""
    window_size, first = 20, 1000
    plan = [0.03] * 20 + [0.0] * 20 + [0.05] * 20 + [0.0] * 20  # decay, recovery, decay again
    _trained_run(tmp_path, MODEL, range(first, first + len(plan)))
    _trained_run(tmp_path, "steady", range(first, first + len(plan)))
    sent: list[DecayAlert] = []
    clock = _clock()
    opened: list[tuple[int, int]] = []  # (round, alerts so far) whenever an alert went out
    for offset, value in enumerate(plan):
        number = first + offset
        # resolved rounds, served from their final day: the earlier days are tested above
        fake.score_round(MODEL, number, {CORR: value}, days=20, first_day=20)
        fake.score_round("steady", number, {CORR: 0.03 + (0.01 if offset % 2 else -0.01)}, 20, first_day=20)
        for model in (MODEL, "steady"):
            # the newest round only: the stored history holds the older ones
            history = fetch_scores(client, tmp_path, model, fake.models[model], last_n_rounds=1)
            before = len(sent)
            check_decay(tmp_path, model, round_table(history), window_size, 2.0, sent.append,
                        lambda: next(clock))  # fmt: skip
            if len(sent) > before:
                opened.append((number, len(sent)))

    assert [(a.model, a.score) for a in sent] == [(MODEL, "CORR"), (MODEL, "CORR")]
    # a window of good rounds then k zeros decays once its mean drops below 0.03 - 2 * 0.02 / sqrt(20)
    threshold = 0.03 - 2 * 0.02 / window_size**0.5
    zeros_needed = [next(k for k in range(21) if good * (20 - k) / 20 < threshold) for good in (0.03, 0.05)]
    assert [number for number, _ in opened] == [first + 19 + zeros_needed[0], first + 59 + zeros_needed[1]]
    alert = sent[0]
    assert alert.opened_at.startswith("2026-12-")  # from the injected clock
    body = alert.body()
    assert MODEL in body and RUN in body and f"{alert.figures.mean:.4f}" in body and "0.0300" in body
    assert f"rounds {first + zeros_needed[0]}-{first + 19 + zeros_needed[0]}" in body
    assert open_incidents(tmp_path) == {f"{MODEL}/CORR": sent[1].opened_at}
    assert model_summary(load_history(tmp_path, MODEL))["last_resolved_round"] == first + len(plan) - 1
    assert {m: s.get("error") for m, s in live_status(tmp_path).items()} == {MODEL: None, "steady": None}


def test_a_window_negative_throughout_is_decay_even_without_validation_figures() -> None:
    from numerflow.live.compare import WindowFigures

    negative = WindowFigures(key="corr", rounds=list(range(5)), values=[-0.001] * 5, mean=-0.001,
                             validation_mean=None, validation_std=None)  # fmt: skip
    assert "negative in every one of the last 5" in decay_reason(negative, 5, 2.0)
    assert decay_reason(negative, 6, 2.0) is None  # not a full window yet
    mixed = negative.model_copy(update={"values": [-0.001] * 4 + [0.0]})
    assert decay_reason(mixed, 5, 2.0) is None


def test_a_failed_alert_is_sent_again_at_the_next_check(tmp_path: Path) -> None:
    history_rows = [{"roundNumber": n, "displayName": CORR, "day": 20, "value": -0.01, "resolved": True}
                    for n in range(3)]  # fmt: skip

    class Source:
        def submission_scores(self, model_id: str, last_n_rounds: int) -> list[dict]:
            return history_rows

    table = round_table(fetch_scores(Source(), tmp_path, MODEL, "id", 3))

    def broken(alert: DecayAlert) -> None:
        raise ConnectionError("webhook down")

    with pytest.raises(ConnectionError):
        check_decay(tmp_path, MODEL, table, 3, 2.0, broken, lambda: datetime.now(UTC))
    sent: list[DecayAlert] = []
    check_decay(tmp_path, MODEL, table, 3, 2.0, sent.append, lambda: datetime.now(UTC))
    assert len(sent) == 1


@pytest.mark.parametrize("fault", ["http-503", "timeout"])
def test_a_failing_api_leaves_the_stored_history_intact(
    fake: FakeNumerai, client: NumeraiClient, tmp_path: Path, fault: str
) -> None:
    fake.score_round(MODEL, 800, {CORR: 0.02}, days=20)
    fake.score_round("steady", 800, {CORR: 0.01}, days=20)
    histories, errors = refresh(client, tmp_path, dict(fake.models), 10)
    assert errors == {}
    stored = history_path(tmp_path, MODEL).read_bytes()

    fake.score_round(MODEL, 801, {CORR: 0.02}, days=5)
    if fault == "http-503":
        fake.fail_next("submissionScores", *[503] * 1000)
    else:
        fake.faults.hang_seconds["submissionScores"] = 1.0
    histories, errors = refresh(client, tmp_path, dict(fake.models), 10)
    assert set(errors) == {MODEL, "steady"} and "TransientError" in errors[MODEL]
    assert history_path(tmp_path, MODEL).read_bytes() == stored
    assert [e.round for e in round_table(histories[MODEL])] == [800]  # the stored history is shown
    assert not list(history_path(tmp_path, MODEL).parent.glob(".*.tmp"))  # no half-written file left


def test_status_figures_and_a_damaged_history(
    fake: FakeNumerai, client: NumeraiClient, tmp_path: Path
) -> None:
    values = [0.01 * (n % 4) for n in range(25)]
    for n, value in enumerate(values):
        fake.score_round(MODEL, 900 + n, {CORR: value, MMC: -value}, days=20)
    fake.score_round(MODEL, 925, {CORR: 0.5}, days=3)
    summary = model_summary(_fetch(client, tmp_path, fake))
    assert summary["last_resolved_round"] == 924 and summary["pending_rounds"] == [925]
    assert summary["corr"]["mean"] == pytest.approx(sum(values[-20:]) / 20)
    assert summary["mmc"]["mean"] == pytest.approx(-sum(values[-20:]) / 20)
    assert summary["corr"]["resolved_rounds"] == 20
    assert window(round_table(load_history(tmp_path, MODEL)), "corr", 5).rounds == list(range(920, 925))
    [line] = status_lines({MODEL: summary})[1:]
    assert f"last resolved round 924, CORR {sum(values[-20:]) / 20:+.4f} over 20 rounds" in line
    assert "1 pending" in line and "MMC" in line

    history_path(tmp_path, MODEL).write_text(json.dumps({"rows": "oops"}))
    with pytest.raises(ValueError, match="not a live-scores history"):
        load_history(tmp_path, MODEL)
    assert run_live_cell(tmp_path, MODEL, RUN) == "unreadable live history"


@pytest.mark.parametrize(("key", "value", "says"), [("alert_sigma", 0, "greater than 0"),
                                                     ("window", 1, "greater than or equal to 2"),
                                                     ("windows", 20, "unknown key")])  # fmt: skip
def test_live_settings_are_validated_naming_the_key(key: str, value: object, says: str) -> None:
    from numerflow.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=rf"scoring\.live\.{key}: .*{says}"):
        load_config(None, {f"training.scoring.live.{key}": value})
    assert load_config(None, {}).training.scoring.live.window == 20
