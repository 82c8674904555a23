from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools.submissions import validate_submission_numerai

from numerflow.submit.file import SubmissionError, build_submission, validate_submission, write_submission

IDS = np.array([f"n{i:015x}" for i in range(50)])


def _valid() -> pd.DataFrame:
    return build_submission(IDS, np.random.default_rng(0).normal(size=len(IDS)))


def test_built_submission_is_valid_and_open_interval() -> None:
    submission = _valid()
    assert list(submission.columns) == ["id", "prediction"]
    assert submission["prediction"].between(0, 1, inclusive="neither").all()
    validate_submission(IDS, submission)
    validate_submission_numerai(pd.Series(IDS), submission)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (
            lambda s: s.assign(prediction=s["prediction"].where(s.index != 3)),
            "must not contain NaNs",
        ),
        (lambda s: s.iloc[:-1], "invalid_submission_ids"),
        (lambda s: s.assign(prediction=s["prediction"] + 1.5), "between 0 and 1"),
        (lambda s: s.assign(prediction=-s["prediction"]), "between 0 and 1"),
        (lambda s: s.assign(prediction=0.5), "non-zero standard deviation"),
        (lambda s: s.rename(columns={"prediction": "pred"}), "invalid_submission_headers"),
        (lambda s: s.assign(id=s["id"].where(s.index != 0)), "missing ids"),
        (
            lambda s: pd.concat([s, pd.DataFrame({"id": ["nbogus"], "prediction": [0.5]})]),
            "not in the live",
        ),
    ],
)
def test_invalid_submissions_are_rejected_and_not_written(spoil, reason, tmp_path: Path) -> None:
    target = tmp_path / "submission.csv"
    with pytest.raises(SubmissionError, match=reason):
        write_submission(IDS, spoil(_valid()).reset_index(drop=True), target)
    assert not target.exists()


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "submission.csv"
    write_submission(IDS, _valid(), target)
    before = target.read_bytes()

    original = pd.DataFrame.to_csv

    def crash_halfway(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        original(self.iloc[: len(self) // 2], path, **kwargs)  # half the rows reach the disk ...
        raise OSError("disk full")  # ... then the write dies

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_halfway)
    other = build_submission(IDS, np.arange(len(IDS), dtype=float))
    with pytest.raises(OSError, match="disk full"):
        write_submission(IDS, other, target)
    assert target.read_bytes() == before  # the previous complete file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temp file left behind

    fresh = tmp_path / "new" / "submission.csv"
    with pytest.raises(OSError):
        write_submission(IDS, other, fresh)
    assert not fresh.exists()
