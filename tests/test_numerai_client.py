"""The real numerapi client against the loopback fake Numerai API: downloads and errors."""

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import numerflow.numerai.download
from numerflow.data.reference_files import BENCHMARK_FILE, META_MODEL_FILE
from numerflow.numerai.client import NumeraiClient, Timeouts
from numerflow.numerai.download import check_file, expectation_for, fetch
from numerflow.numerai.errors import AuthError, TransientError
from numerflow.numerai.training_data import ensure_training_data
from tests.fake_numerai import FakeNumerai

TRAIN = "v5.2/train.parquet"


@pytest.fixture
def fake(version_dir: Path) -> Iterator[FakeNumerai]:
    server = FakeNumerai()
    server.add_dataset_dir(version_dir)
    server.start()
    yield server
    server.stop()


def _client(
    fake: FakeNumerai, secret: str | None = None, budget: float = 5.0, read: float = 2.0
) -> NumeraiClient:
    return NumeraiClient(
        fake.public_id,
        secret or fake.secret_key,
        api_url=fake.api_url,
        timeouts=Timeouts(connect=1.0, read=read),
        retry_budget_seconds=budget,
        retry_base_delay=0.05,
    )


def test_first_run_downloads_second_does_not_changed_file_does(fake: FakeNumerai, tmp_path: Path) -> None:
    client, dest = _client(fake), tmp_path / "v5.2" / "train.parquet"
    first = fetch(client, TRAIN, dest, expectation_for(TRAIN))
    assert first.downloaded and first.reason == "missing locally"
    assert dest.read_bytes() == fake.files[TRAIN] and fake.counts["get"] == 1

    second = fetch(client, TRAIN, dest, expectation_for(TRAIN))
    assert not second.downloaded and fake.counts["get"] == 1  # one HEAD, no body fetched
    assert fake.counts["head"] == 2

    changed = pd.read_parquet(dest).iloc[:100]
    changed_path = tmp_path / "changed.parquet"
    changed.to_parquet(changed_path)
    fake.files[TRAIN] = changed_path.read_bytes()
    third = fetch(client, TRAIN, dest, expectation_for(TRAIN))
    assert third.downloaded and third.reason == "changed on the server" and fake.counts["get"] == 2
    assert len(pd.read_parquet(dest)) == 100


def test_each_download_reports_its_bytes_up_to_the_whole_file(
    fake: FakeNumerai, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numerflow.numerai.download, "CHUNK_BYTES", 4096)
    reports: dict[str, list[tuple[int, int]]] = {}

    def progress(name: str):
        return lambda done, total: reports.setdefault(name, []).append((done, total))

    dest = tmp_path / "v5.2"
    results = ensure_training_data(dest, _client(fake), progress)
    assert sorted(reports) == sorted(r.path.name for r in results if r.downloaded)
    for name, calls in reports.items():
        size = len(fake.files[f"v5.2/{name}"])
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)
        assert {total for _, total in calls} == {size} and calls[-1] == (size, size)
    assert len(reports["train.parquet"]) == -(-len(fake.files[TRAIN]) // 4096)  # every chunk

    reports.clear()
    ensure_training_data(dest, _client(fake), progress)
    assert reports == {}  # nothing downloaded: no bar


def test_training_data_brings_the_scoring_files_numerai_lists(
    fake: FakeNumerai, version_dir: Path, tmp_path: Path
) -> None:
    del fake.files[f"v5.2/{META_MODEL_FILE}"]  # not listed, as for v5.0
    dest = tmp_path / "v5.2"
    results = ensure_training_data(dest, _client(fake))
    assert [r.path.name for r in results if r.downloaded] == [
        "features.json",
        "train.parquet",
        "validation.parquet",
        BENCHMARK_FILE,
    ]
    assert (dest / BENCHMARK_FILE).read_bytes() == fake.files[f"v5.2/{BENCHMARK_FILE}"]
    assert not (dest / META_MODEL_FILE).exists()
    assert not any(r.downloaded for r in ensure_training_data(dest, _client(fake)))  # unchanged: kept

    with pytest.raises(TransientError, match="numerai_meta_model"):  # never used as a meta model
        check_file(version_dir / BENCHMARK_FILE, expectation_for(META_MODEL_FILE))


def test_a_local_file_changed_by_hand_is_fetched_again(fake: FakeNumerai, tmp_path: Path) -> None:
    client, dest = _client(fake), tmp_path / "train.parquet"
    fetch(client, TRAIN, dest, expectation_for(TRAIN))
    dest.write_bytes(dest.read_bytes()[:-10])
    assert fetch(client, TRAIN, dest, expectation_for(TRAIN)).downloaded
    assert dest.read_bytes() == fake.files[TRAIN]


def test_truncated_download_is_retried_and_never_used(fake: FakeNumerai, tmp_path: Path) -> None:
    client, dest = _client(fake), tmp_path / "train.parquet"
    fake.faults.truncate_next[TRAIN] = 1
    result = fetch(client, TRAIN, dest, expectation_for(TRAIN))
    assert result.downloaded and fake.counts["get"] == 2
    assert dest.read_bytes() == fake.files[TRAIN]

    # A file that never arrives whole is never put in place, and the old one stays.
    before = dest.read_bytes()
    fake.files[TRAIN] = before + b"x"  # a new version, so it must be fetched
    fake.faults.truncate_next[TRAIN] = 1000
    with pytest.raises(TransientError, match="gave up"):
        fetch(_client(fake, budget=1.0), TRAIN, dest, expectation_for(TRAIN))
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet", "train.parquet.source.json"]


def test_corrupt_or_incomplete_file_is_never_used(fake: FakeNumerai, tmp_path: Path) -> None:
    client = _client(fake, budget=0.5)
    fake.files["v5.2/validation.parquet"] = b"PAR1 this is not parquet"
    with pytest.raises(TransientError, match="not a readable parquet"):
        fetch(
            client, "v5.2/validation.parquet", tmp_path / "v.parquet", expectation_for("validation.parquet")
        )
    assert not (tmp_path / "v.parquet").exists()
    expectation = expectation_for("train.parquet", ["feature_9999"])
    with pytest.raises(TransientError, match=r"missing columns \['feature_9999'\]"):
        fetch(client, TRAIN, tmp_path / "t.parquet", expectation)
    assert not (tmp_path / "t.parquet").exists()


def test_auth_error_is_quick_not_retried_and_says_what_to_check(fake: FakeNumerai) -> None:
    client = _client(fake, secret="WRONG-SECRET", budget=30)
    started = time.monotonic()
    with pytest.raises(AuthError) as info:
        client.model_ids()
    assert time.monotonic() - started < 3
    assert fake.counts["account"] == 1  # not retried
    message = str(info.value)
    assert "Your session is invalid or has expired." in message
    assert "swapped" in message and "expired" in message and "model id" in message
    assert "WRONG-SECRET" not in message and fake.secret_key not in message


def test_missing_keys_fail_before_any_request(fake: FakeNumerai, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    client = NumeraiClient(None, None, api_url=fake.api_url, retry_budget_seconds=5)
    with pytest.raises(AuthError, match="API keys required"):
        client.upload_target(Path("predictions.csv"), "model-id")
    assert sum(fake.counts.values()) == 0


def test_5xx_burst_within_budget_ends_in_success(fake: FakeNumerai) -> None:
    fake.fail_next("rounds", 503, 502, 500)
    info = _client(fake, budget=10).current_round()
    assert info is not None and info.number == 1001 and info.is_open()
    assert fake.counts["rounds"] == 4


def test_5xx_longer_than_budget_gives_up(fake: FakeNumerai) -> None:
    fake.fail_next("rounds", *[503] * 1000)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"gave up after .* HTTP 503"):
        _client(fake, budget=1.0).current_round()
    assert time.monotonic() - started < 3


def test_hung_endpoint_ends_in_bounded_time(fake: FakeNumerai) -> None:
    fake.faults.hang_seconds["rounds"] = 5
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not answer within"):
        _client(fake, budget=1.0, read=0.5).current_round()
    assert time.monotonic() - started < 3.5


def test_no_open_round_and_between_rounds(fake: FakeNumerai) -> None:
    fake.round_open = False
    info = _client(fake).current_round()
    assert info is not None and not info.is_open()
    fake.round_number = None
    assert _client(fake).current_round() is None


def test_temp_files_of_an_interrupted_download_are_removed_on_the_next_run(
    fake: FakeNumerai, tmp_path: Path
) -> None:
    dest = tmp_path / "live_1001.parquet"
    stale = tmp_path / ".live_1001.parquet.k2x9q1.tmp"  # what a SIGKILLed download leaves
    stale.write_bytes(fake.files[TRAIN][:100])
    other = tmp_path / ".train.parquet.k2x9q1.tmp"  # another file's: not ours to touch
    other.write_bytes(b"x")
    fetch(_client(fake), TRAIN, dest, expectation_for(TRAIN))
    assert not stale.exists() and other.exists()
    assert dest.read_bytes() == fake.files[TRAIN]


def test_endpoint_override_env_wins_over_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import numerapi.base_api

    from numerflow.numerai.client import resolve_api_url

    monkeypatch.delenv("NUMERAI_API_URL", raising=False)
    assert resolve_api_url(None) == numerapi.base_api.API_TOURNAMENT_URL
    assert resolve_api_url("http://127.0.0.1:9/graphql") == "http://127.0.0.1:9/graphql"
    monkeypatch.setenv("NUMERAI_API_URL", "http://127.0.0.1:8/graphql")
    assert resolve_api_url("http://127.0.0.1:9/graphql") == "http://127.0.0.1:8/graphql"
