"""A submission file another program holds open (Excel locks a CSV it shows, and Windows then
refuses to replace it) never costs the round: the submission goes to a file beside it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numerflow.io
from numerflow.submit.file import file_sha256, make_submission
from numerflow.submit.live import LivePredictions

IDS = [f"n{i:015x}" for i in range(40)]


def _hold_open(monkeypatch: pytest.MonkeyPatch, held: Path) -> None:
    """os.replace onto `held` fails as Windows fails it while Excel has the file open."""
    real_replace = os.replace

    def replace(source: Path, target: Path) -> None:
        if Path(target) == held:
            error = PermissionError(errno.EACCES, "The process cannot access the file")
            error.winerror = 32  # type: ignore[attr-defined]  # ERROR_SHARING_VIOLATION
            raise error
        real_replace(source, target)

    monkeypatch.setattr(numerflow.io.os, "replace", replace)
    monkeypatch.setattr(numerflow.io.time, "sleep", lambda seconds: None)


def _predictions(folder: Path) -> LivePredictions:
    """A round's live file and the run's predictions of it."""
    live = LivePredictions(
        path=folder / "live_predictions.parquet", rows=len(IDS), live_file=folder / "live.parquet"
    )
    pd.DataFrame({"id": IDS}).to_parquet(live.live_file)
    scores = pd.DataFrame({"stack": np.linspace(0, 1, len(IDS))}, index=pd.Index(IDS, name="id"))
    scores.to_parquet(live.path)
    return live


def test_a_held_submission_file_does_not_lose_the_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = _predictions(tmp_path)
    target = tmp_path / "submissions" / "live_predictions.csv"
    target.parent.mkdir()
    target.write_text("last round's file, open in Excel\n")
    _hold_open(monkeypatch, target)

    record = make_submission(live, target)

    assert record.path != target and record.path.parent == target.parent
    assert record.path.name.startswith("live_predictions.") and record.path.suffix == ".csv"
    written = pd.read_csv(record.path)
    assert written["id"].tolist() == IDS and written["prediction"].is_monotonic_increasing
    assert record.sha256 == file_sha256(record.path)  # what is uploaded is what was recorded
    assert target.read_text() == "last round's file, open in Excel\n"
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, record.path.name])


def test_other_permission_errors_still_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: Path, target: Path) -> None:
        raise PermissionError(errno.EACCES, "read-only folder")  # no winerror: not a held file

    live = _predictions(tmp_path)
    monkeypatch.setattr(numerflow.io.os, "replace", refuse)
    with pytest.raises(PermissionError, match="read-only folder"):
        make_submission(live, tmp_path / "s.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.parquet", "live_predictions.parquet"]
