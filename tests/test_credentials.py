"""`numerflow setup credentials` with the old scripts' NUMERAI_MODEL_ID: a bare id, named from the
account (the real numerapi client against the loopback fake Numerai API), or NAME=ID pairs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app
from numerflow.numerai.errors import NumeraiError
from numerflow.numerai.model_ids import parse_model_entries, resolve_model_entries, split_model_ids
from tests.fake_numerai import FakeNumerai

runner = CliRunner()
ALPHA = "11111111-2222-3333-4444-555555555555"
BETA = "66666666-7777-8888-9999-000000000000"
NOT_OURS = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def _no_account() -> dict[str, str]:
    raise AssertionError("the account must not be asked when every entry names its model")


def test_entries_are_bare_ids_or_name_id_pairs() -> None:
    entries = split_model_ids(f" alpha={ALPHA}, {BETA.upper()} ,")
    parsed = parse_model_entries(entries)
    assert parsed.named == {"alpha": ALPHA} and parsed.bare == [BETA]
    assert resolve_model_entries([f"alpha={ALPHA}", f"beta={BETA}"], _no_account) == {
        "alpha": ALPHA,
        "beta": BETA,
    }
    for bad in ("nameonly", "=id", "name=", "1234"):
        with pytest.raises(ValueError, match=f"model '{bad}'.*expected NAME=ID or a bare model id"):
            parse_model_entries([bad])


def test_bare_ids_are_named_from_the_account_and_foreign_ids_refused() -> None:
    account = {"alpha": ALPHA, "beta": BETA}
    assert resolve_model_entries([BETA, f"mine={NOT_OURS}"], lambda: account) == {
        "beta": BETA,
        "mine": NOT_OURS,  # NAME=ID is kept as given; the submission flow checks it against the account
    }
    with pytest.raises(NumeraiError, match=f"model id {NOT_OURS} .*not a model of this Numerai account"):
        resolve_model_entries([ALPHA, NOT_OURS], lambda: account)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNumerai]:
    server = FakeNumerai(models={"alpha": ALPHA, "beta": BETA}).start()
    monkeypatch.setenv("NUMERAI_API_URL", server.api_url)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", server.public_id)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", server.secret_key)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.usefixtures("prefect_server")
def test_a_bare_model_id_is_saved_under_the_name_the_account_gives_it(
    fake: FakeNumerai, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numerflow.numerai.blocks import NumeraiCredentials

    monkeypatch.setenv("NUMERAI_MODEL_ID", BETA)
    result = runner.invoke(app, ["setup", "credentials", "--block-name", "bare-id"])
    assert result.exit_code == 0, result.output
    assert NumeraiCredentials.load("bare-id").model_ids == {"beta": BETA}
    assert fake.counts["account"] == 1  # asked the account once, with the API key
    assert fake.secret_key not in result.output

    monkeypatch.setenv("NUMERAI_MODEL_ID", NOT_OURS)
    refused = runner.invoke(app, ["setup", "credentials", "--block-name", "bare-id"])
    assert refused.exit_code == 2
    assert NOT_OURS in refused.output and "not a model of this Numerai account" in refused.output
    assert NumeraiCredentials.load("bare-id").model_ids == {"beta": BETA}  # the saved block is untouched


@pytest.mark.usefixtures("prefect_server")
def test_a_bare_id_with_a_wrong_key_fails_naming_the_credentials(
    fake: FakeNumerai, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "not-the-key")
    monkeypatch.setenv("NUMERAI_MODEL_ID", ALPHA)
    result = runner.invoke(app, ["setup", "credentials", "--block-name", "wrong-key"])
    assert result.exit_code == 2 and "rejected the credentials" in result.output
    assert "not-the-key" not in result.output
