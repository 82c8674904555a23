"""One upload per (round, model) against the loopback fake Numerai API, with the real numerapi
client: failed PUTs, lost answers to create, killed processes and concurrent triggers."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from filelock import SoftFileLease

from numerflow.numerai import ledger
from numerflow.numerai.client import NumeraiClient, Timeouts
from numerflow.numerai.locks import LockLost, check_still_held
from numerflow.numerai.uploads import UploadOutcome, UploadRequest, upload_once
from tests.fake_numerai import FakeNumerai

ROUND = 1001
RUN_ID = "run-a"


@pytest.fixture
def fake() -> Iterator[FakeNumerai]:
    server = FakeNumerai().start()
    yield server
    server.stop()


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    path = tmp_path / "live_predictions.csv"
    path.write_text("id,prediction\nn1,0.25\nn2,0.75\n")
    return path


def client_for(
    api_url: str, secret: str = "SECRET-KEY", read: float = 2.0, budget: float = 10.0
) -> NumeraiClient:
    return NumeraiClient(
        "PUBLIC-ID",
        secret,
        api_url=api_url,
        timeouts=Timeouts(connect=1.0, read=read),
        retry_budget_seconds=budget,
        retry_base_delay=0.05,
    )


def request_for(fake: FakeNumerai, path: Path, model: str = "my_model") -> UploadRequest:
    return UploadRequest(ROUND, model, fake.models.get(model, "not-on-this-account"), RUN_ID, path, rows=2)


def upload(fake: FakeNumerai, path: Path, work: Path, force: bool = False, **client: float) -> UploadOutcome:
    return upload_once(client_for(fake.api_url, **client), work, request_for(fake, path), force)


def test_one_upload_records_what_numerai_holds(fake: FakeNumerai, submission: Path, tmp_path: Path) -> None:
    work = tmp_path / "runs"
    first = upload(fake, submission, work)
    [held] = fake.submissions_for(ROUND)
    assert first.status == "uploaded" and first.submission_id == held["id"]
    assert held["body"] == submission.read_bytes()
    [entry] = ledger.entries(work)
    assert (entry.submission_id, entry.server_filename) == (held["id"], held["filename"])
    assert entry.attempts == {"upload-url": 1, "put": 1, "create": 1} and entry.recovered is None

    again = upload(fake, submission, work)
    assert again.status == "skipped" and again.submission_id == held["id"]
    assert len(fake.submissions_for(ROUND)) == 1
    forced = upload(fake, submission, work, force=True)
    assert forced.status == "uploaded" and len(fake.submissions_for(ROUND)) == 2
    assert [e.forced for e in ledger.entries(work)] == [False, True]


def test_put_answering_503_twice_then_200_submits(
    fake: FakeNumerai, submission: Path, tmp_path: Path
) -> None:
    fake.fail_next("put", 503, 503)
    outcome = upload(fake, submission, tmp_path)
    assert outcome.status == "uploaded", outcome.detail
    assert fake.counts["put"] == 3 and fake.counts["create_submission"] == 1
    [held] = fake.submissions_for(ROUND)
    assert held["body"] == submission.read_bytes()
    [entry] = ledger.entries(tmp_path)
    assert entry.attempts["put"] == 3 and entry.submission_id == held["id"]
    put_results = [a.result for a in ledger.attempts(tmp_path) if a.step == "put"]
    assert put_results == ["failed", "failed", "ok"]


def test_dropped_put_connection_is_retried(fake: FakeNumerai, submission: Path, tmp_path: Path) -> None:
    fake.faults.drop_next["put"] = 2
    outcome = upload(fake, submission, tmp_path)
    assert outcome.status == "uploaded", outcome.detail
    assert len(fake.submissions_for(ROUND)) == 1 and ledger.entries(tmp_path)[0].attempts["put"] == 3


def test_put_answering_403_fails_fast_naming_the_cause(
    fake: FakeNumerai, submission: Path, tmp_path: Path
) -> None:
    fake.fail_next("put", 403)
    started = time.monotonic()
    outcome = upload(fake, submission, tmp_path, budget=30)
    assert time.monotonic() - started < 3
    assert outcome.status == "failed"
    assert "file upload (PUT) refused: HTTP 403" in outcome.detail and "not retried" in outcome.detail
    assert fake.counts["put"] == 1 and fake.counts["create_submission"] == 0
    assert fake.submissions == [] and ledger.entries(tmp_path) == []


@pytest.mark.parametrize(
    "fault",
    [
        "connection dropped after the create took effect",
        "read timeout after the create took effect",
        "HTTP 502",
    ],
)
def test_a_lost_answer_to_create_gives_one_submission_and_a_ledger_entry_naming_it(
    fake: FakeNumerai, submission: Path, tmp_path: Path, fault: str
) -> None:
    if fault.startswith("connection"):
        fake.faults.lose_answer_next["create_submission"] = 1
    elif fault.startswith("read timeout"):
        fake.faults.hang_seconds["create_submission"] = 1.5  # every answer: each create would be lost
    else:
        fake.fail_next("create_submission", 502)  # the fake answers 502 after the create took effect
    outcome = upload(fake, submission, tmp_path, read=1.0)
    [held] = fake.submissions_for(ROUND)
    assert outcome.status == "uploaded" and outcome.submission_id == held["id"]
    assert fake.counts["create_submission"] == 1  # asked Numerai instead of creating again
    [entry] = ledger.entries(tmp_path)
    assert entry.submission_id == held["id"] and entry.server_filename == held["filename"]
    assert entry.recovered and "lost answer" in entry.recovered
    assert upload(fake, submission, tmp_path).status == "skipped"


def test_a_create_refused_by_numerai_is_not_retried(
    fake: FakeNumerai, submission: Path, tmp_path: Path
) -> None:
    request = request_for(fake, submission, model="not_my_model")
    outcome = upload_once(client_for(fake.api_url, budget=30), tmp_path, request, force=False)
    assert outcome.status == "failed" and "Model not found" in outcome.detail
    assert fake.counts["create_submission"] == 1 and ledger.entries(tmp_path) == []


def test_bad_credentials_fail_fast(fake: FakeNumerai, submission: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = upload(fake, submission, tmp_path, secret="WRONG", budget=30)
    assert outcome.status == "failed" and "rejected the credentials" in outcome.detail
    assert time.monotonic() - started < 3 and fake.counts["submission_upload_auth"] == 1
    assert "WRONG" not in outcome.detail


def _upload_in_process(api_url: str, request: UploadRequest, work: str, read: float, ready: object) -> None:
    ready.wait()  # every contender enters at the same moment, after its imports
    outcome = upload_once(client_for(api_url, read=read), Path(work), request, force=False)
    Path(work, f"outcome-{os.getpid()}.json").write_text(outcome.model_dump_json())


def _contenders(
    fake: FakeNumerai, request: UploadRequest, work: Path, count: int, read: float = 5.0
) -> tuple[list, object]:
    """`count` processes uploading at once; keep the barrier referenced until they have started."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(count, timeout=120)
    processes = [
        context.Process(target=_upload_in_process, args=(fake.api_url, request, str(work), read, ready))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    return processes, ready


@pytest.mark.slow  # fresh interpreters
@pytest.mark.parametrize("contenders", [2, 5])
def test_concurrent_triggers_give_one_upload(
    fake: FakeNumerai, submission: Path, tmp_path: Path, contenders: int
) -> None:
    fake.faults.hang_seconds["create_submission"] = 1.0  # a slow create: a wide race window
    processes, _ready = _contenders(fake, request_for(fake, submission), tmp_path, contenders)
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    outcomes = [UploadOutcome.model_validate_json(p.read_text()) for p in tmp_path.glob("outcome-*.json")]
    assert sorted(o.status for o in outcomes) == ["skipped"] * (contenders - 1) + ["uploaded"]
    [held] = fake.submissions_for(ROUND)
    assert {o.submission_id for o in outcomes} == {held["id"]}
    assert [e.submission_id for e in ledger.entries(tmp_path)] == [held["id"]]


@pytest.mark.slow
def test_a_process_killed_during_create_is_settled_by_the_next_trigger(
    fake: FakeNumerai, submission: Path, tmp_path: Path
) -> None:
    fake.faults.hang_seconds["create_submission"] = 30  # Numerai keeps it; the answer never comes
    [process], _ready = _contenders(fake, request_for(fake, submission), tmp_path, 1, read=60)
    deadline = time.monotonic() + 30
    while not fake.submissions and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.submissions, "the create never reached the fake"
    psutil.Process(process.pid).kill()  # SIGKILL here, TerminateProcess on Windows
    process.join(10)
    assert ledger.entries(tmp_path) == []  # killed before it could record

    fake.faults.hang_seconds.clear()
    outcome = upload(fake, submission, tmp_path)
    [held] = fake.submissions_for(ROUND)
    assert outcome.status == "skipped" and outcome.submission_id == held["id"]
    [entry] = ledger.entries(tmp_path)
    assert entry.submission_id == held["id"] and "interrupted run" in (entry.recovered or "")
    assert fake.counts["submission_upload_auth"] == 1  # nothing uploaded again


def test_a_holder_whose_lease_was_taken_over_stops(tmp_path: Path) -> None:
    lease = SoftFileLease(tmp_path / "upload.lock", lease_duration=0.6)
    with lease.acquire(timeout=1):
        check_still_held(lease, "upload")  # held: goes on
        (tmp_path / "upload.lock").unlink()  # what a peer breaking an expired lease does
        deadline = time.monotonic() + 5
        while lease.compromise is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLost, match="taken over"):
            check_still_held(lease, "upload")
