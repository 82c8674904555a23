"""numerapi with every call bounded in time, failures classified, and transient ones retried.

numerapi's GraphQL POST has no timeout, retries 5xx with 15 s of sleeps of its own, and turns
most failures into `KeyError: 'data'`. `BoundedNumerAPI` replaces only its transport
(`raw_query`): a POST with a timeout to a configurable endpoint that raises a classified
error. Every numerapi method (rounds, models, uploads) runs unchanged on top of it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numerapi
import numerapi.base_api
import requests
from dateutil import parser as dateparser

from numerflow.config.models import NumeraiConfig
from numerflow.numerai.errors import AUTH_MESSAGES, AuthError, NumeraiError, TransientError
from numerflow.numerai.retry import call_with_retries

CLASSIC_TOURNAMENT = 8
ROUND_QUERY = """
query($tournament: Int!) {
  rounds(tournament: $tournament number: 0) { number openTime closeStakingTime }
}
"""
DATASET_QUERY = """
query ($filename: String! $round: Int $tournament: Int) {
  dataset(filename: $filename round: $round tournament: $tournament)
}
"""
# numerapi 3.1.1's create mutation: numerapi only sends it inside `upload_predictions`, which
# also PUTs the file without checking the answer, so numerflow sends the steps one by one.
CREATE_SUBMISSION = """
mutation($filename: String! $tournament: Int! $modelId: String $triggerId: String, $dataDatestamp: Int) {
  create_submission(filename: $filename tournament: $tournament modelId: $modelId
                    triggerId: $triggerId source: "numerapi" dataDatestamp: $dataDatestamp) { id }
}
"""
# numerapi 3.1.1's model-upload steps (`model_upload` sends them together and ignores the PUT's
# answer), and the pickle status query Numerai documents in numerai/example-scripts (numerapi has none).
PICKLE_UPLOAD_AUTH = """
query($filename: String! $modelId: String) {
  computePickleUploadAuth(filename: $filename modelId: $modelId) { filename url }
}
"""
CREATE_PICKLE_UPLOAD = """
mutation($filename: String! $tournament: Int! $modelId: String
         $dataVersionId: String $dockerImageId: String) {
  createComputePickleUpload(filename: $filename tournament: $tournament modelId: $modelId
                            dataVersionId: $dataVersionId dockerImageId: $dockerImageId) { id }
}
"""
PICKLE_STATUS = """
query { account { models { username computePickleUpload { filename validationStatus triggerStatus
  triggers { id status statuses { status description insertedAt } } } } } }
"""
NO_ROUND_MESSAGES = ("Current round not open for submissions",)
S3_ERROR = re.compile(
    r"<Code>(?P<code>[^<]{1,80})</Code>(?:.*?<Message>(?P<message>[^<]{1,200})</Message>)?", re.S
)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True)
class UploadTarget:
    """Where to PUT a submission file, and the name Numerai gave it (unique per request)."""

    filename: str
    url: str


@dataclass(frozen=True)
class RoundInfo:
    number: int
    open_time: datetime
    close_time: datetime

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.open_time <= now < self.close_time


def resolve_api_url(configured: str | None) -> str:
    """`NUMERAI_API_URL` wins over the config key; numerapi's own endpoint is the default."""
    return os.environ.get("NUMERAI_API_URL") or configured or numerapi.base_api.API_TOURNAMENT_URL


class BoundedNumerAPI(numerapi.NumerAPI):
    """numerapi's client with a bounded, classifying transport."""

    def __init__(self, public_id: str | None, secret_key: str | None, api_url: str, timeouts: Timeouts):
        super().__init__(public_id, secret_key, verbosity="WARNING", show_progress_bars=False)
        self.api_url = api_url
        self.timeouts = timeouts

    def raw_query(
        self, query: str, variables: dict | None = None, authorization: bool = False, **_: Any
    ) -> dict:
        headers = {"Content-type": "application/json", "Accept": "application/json"}
        if authorization:
            if not self.token:
                raise AuthError("API keys required for this action.")
            public_id, secret_key = self.token
            headers["Authorization"] = f"Token {public_id}${secret_key}"
        body = {"query": query, "variables": variables}
        try:
            response = requests.post(
                self.api_url, json=body, headers=headers, timeout=self.timeouts.as_tuple()
            )
        except requests.Timeout:
            raise TransientError(f"Numerai API did not answer within {self.timeouts.read:.0f} s") from None
        except requests.RequestException as exc:
            raise TransientError(f"could not reach the Numerai API: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise TransientError(f"Numerai API answered HTTP {status}")
        if status in (401, 403):
            raise AuthError(f"HTTP {status}")
        if status >= 400:
            raise NumeraiError(f"Numerai API answered HTTP {status}")
        try:
            result = response.json()
        except ValueError:
            raise TransientError("Numerai API answered with something that is not JSON") from None
        if isinstance(result, dict) and "errors" in result:
            message = self._handle_call_error(result["errors"])
            if any(m in message for m in AUTH_MESSAGES):
                raise AuthError(message)
            raise ValueError(message)  # numerapi's own contract for GraphQL errors
        return result


class NumeraiClient:
    """The calls numerflow makes, each bounded in time and retried when the failure is transient."""

    def __init__(
        self,
        public_id: str | None = None,
        secret_key: str | None = None,
        api_url: str | None = None,
        timeouts: Timeouts | None = None,
        retry_budget_seconds: float = 120.0,
        retry_base_delay: float = 1.0,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self.api = BoundedNumerAPI(public_id, secret_key, resolve_api_url(api_url), self.timeouts)
        self.retry_budget_seconds = retry_budget_seconds
        self.retry_base_delay = retry_base_delay

    def retrying(self, action: Any, what: str) -> Any:
        """Run `action` with this client's retry policy (transient failures only)."""
        return call_with_retries(
            action, what, budget_seconds=self.retry_budget_seconds, base_delay=self.retry_base_delay
        )

    def _call(self, what: str, action: Any) -> Any:
        return self.retrying(action, what)

    def current_round(self) -> RoundInfo | None:
        """The round Numerai currently lists, or None between rounds."""

        def query() -> RoundInfo | None:
            try:
                rounds = self.api.raw_query(ROUND_QUERY, {"tournament": CLASSIC_TOURNAMENT})["data"]["rounds"]
            except ValueError as exc:
                if any(m in str(exc) for m in NO_ROUND_MESSAGES):
                    return None
                raise
            if not rounds or rounds[0] is None:
                return None
            info = rounds[0]
            return RoundInfo(
                number=int(info["number"]),
                open_time=_aware(dateparser.parse(info["openTime"])),
                close_time=_aware(dateparser.parse(info["closeStakingTime"])),
            )

        return self._call("current round", query)

    def list_datasets(self, round_number: int | None = None) -> list[str]:
        return self._call("list datasets", lambda: self.api.list_datasets(round_number))

    def dataset_url(self, filename: str, round_number: int | None = None) -> str:
        variables = {"filename": filename, "round": round_number, "tournament": CLASSIC_TOURNAMENT}
        return self._call(
            f"dataset URL of {filename}",
            lambda: self.api.raw_query(DATASET_QUERY, variables)["data"]["dataset"],
        )

    def model_ids(self) -> dict[str, str]:
        return self._call("list models", self.api.get_models)

    def submission_scores(self, model_id: str, last_n_rounds: int) -> list[dict[str, Any]]:
        """Every daily score of the model's last rounds (public: no API key needed). It keys on
        the model id alone, so it reads uploaded-model (pickle) slots like prediction slots."""
        return self._call(
            "submission scores",
            lambda: self.api.submission_scores(model_id, last_n_rounds=last_n_rounds),
        )

    # The upload steps below are single attempts: `numerflow.numerai.uploads` retries each on its
    # own, so a retry never repeats a step that already took effect.

    def upload_target(self, path: Path, model_id: str) -> UploadTarget:
        auth = self.api._upload_auth("submission_upload_auth", str(path), CLASSIC_TOURNAMENT, model_id)
        return UploadTarget(filename=auth["filename"], url=auth["url"])

    def put_file(self, url: str, data: bytes) -> None:
        """PUT the file to the upload URL and check the answer, which numerapi ignores."""
        headers = {"x_compute_id": os.getenv("NUMERAI_COMPUTE_ID")}  # as numerapi; None drops it
        try:
            response = requests.put(url, data=data, headers=headers, timeout=self.timeouts.as_tuple())
        except requests.Timeout:
            raise TransientError(f"file upload (PUT): no answer within {self.timeouts.read:.0f} s") from None
        except requests.RequestException as exc:  # never the exception text: it holds the signed URL
            raise TransientError(f"file upload (PUT) failed: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise TransientError(f"file upload (PUT) answered HTTP {status}")
        if status >= 300:
            raise NumeraiError(
                f"file upload (PUT) refused: HTTP {status} {response.reason}{_storage_error(response.text)}: "
                "the upload URL was rejected (expired, or the file is not allowed); not retried"
            )

    def create_submission(self, server_filename: str, model_id: str) -> str:
        variables = {
            "filename": server_filename,
            "tournament": CLASSIC_TOURNAMENT,
            "modelId": model_id,
            "triggerId": os.getenv("TRIGGER_ID"),
            "dataDatestamp": None,
        }
        result = self.api.raw_query(CREATE_SUBMISSION, variables, authorization=True)
        return result["data"]["create_submission"]["id"]

    def docker_images(self) -> dict[str, str]:
        """Numerai's model-upload images, `{name: id}`, e.g. "Python 3.11"."""
        return self._call("list model-upload images", self.api.model_upload_docker_images)

    def pickle_data_versions(self) -> dict[str, str]:
        return self._call("list model-upload data versions", self.api.model_upload_data_versions)

    def pickle_upload_target(self, path: Path, model_id: str) -> UploadTarget:
        variables = {"filename": path.name, "modelId": model_id}
        auth = self.api.raw_query(PICKLE_UPLOAD_AUTH, variables, authorization=True)["data"]
        return UploadTarget(**auth["computePickleUploadAuth"])

    def create_pickle_upload(
        self, server_filename: str, model_id: str, data_version_id: str, docker_image_id: str
    ) -> str:
        variables = {
            "filename": server_filename,
            "tournament": CLASSIC_TOURNAMENT,
            "modelId": model_id,
            "dataVersionId": data_version_id,
            "dockerImageId": docker_image_id,
        }
        result = self.api.raw_query(CREATE_PICKLE_UPLOAD, variables, authorization=True)
        return result["data"]["createComputePickleUpload"]["id"]

    def pickle_statuses(self) -> dict[str, dict[str, Any] | None]:
        """Each model's uploaded pickle and Numerai's runs of it, `{model name: upload or None}`."""

        def query() -> dict[str, dict[str, Any] | None]:
            models = self.api.raw_query(PICKLE_STATUS, authorization=True)["data"]["account"]["models"]
            return {m["username"]: m.get("computePickleUpload") for m in models}

        return self._call("model-upload status", query)

    def submission_named(self, model_id: str, server_filename: str) -> str | None:
        """The id of the model's submission of this uploaded file, if Numerai holds one."""
        for submission in self.api.submission_ids(model_id):
            if submission["filename"] == server_filename:
                return submission["id"]
        return None


def make_client(settings: NumeraiConfig, public_id: str | None, secret_key: str | None) -> NumeraiClient:
    return NumeraiClient(
        public_id=public_id,
        secret_key=secret_key,
        api_url=settings.api_url,
        timeouts=Timeouts(settings.connect_timeout_s, settings.read_timeout_s),
        retry_budget_seconds=settings.retry_budget_s,
    )


def newest_data_version(datasets: list[str]) -> str:
    """The newest `vX.Y` that has a train.parquet, from `list_datasets()`."""
    versions = {name.split("/")[0] for name in datasets if name.endswith("/train.parquet")}
    if not versions:
        raise NumeraiError("Numerai lists no dataset version with a train.parquet")
    return max(versions, key=lambda v: tuple(int(p) for p in v.lstrip("v").split(".")))


def _storage_error(body: str) -> str:
    """The storage service's error code and message (S3's XML), never the rest of the body."""
    found = S3_ERROR.search(body or "")
    if not found:
        return ""
    return f" ({found['code']}" + (f": {found['message']}" if found["message"] else "") + ")"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
