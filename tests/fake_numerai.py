"""A loopback fake of the Numerai API for tests, built from numerapi's wire contract.

One threaded HTTP server on 127.0.0.1 serves
- `POST /graphql`: GraphQL dispatched by query text (rounds, listDatasets, dataset, account
  models, submission_upload_auth, create_submission, submissionScores); auth errors as
  HTTP 200 + `errors`;
- `GET|HEAD /files/<name>`: dataset files with Content-Length, ETag and Range support;
- `PUT /upload/<token>`: stores uploaded submissions.
Faults are switched per test: status bursts, hangs, dropped connections (before or after the
request took effect), truncated bodies, bad credentials, no open round, a round that opens
later. Every request is counted by kind so tests can assert what the client did.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Faults:
    """Per-kind fault queues; kinds are GraphQL operation names or 'get', 'head', 'put'."""

    statuses: dict[str, list[int]] = field(default_factory=dict)  # next N answers of a kind
    hang_seconds: dict[str, float] = field(default_factory=dict)  # every answer of a kind
    truncate_next: dict[str, int] = field(default_factory=dict)  # file name -> times to truncate
    drop_next: dict[str, int] = field(default_factory=dict)  # kind -> times to hang up, no effect
    lose_answer_next: dict[str, int] = field(default_factory=dict)  # kind -> times to act, then hang up


@dataclass
class FakeNumerai:
    public_id: str = "PUBLIC-ID"
    secret_key: str = "SECRET-KEY"
    models: dict[str, str] = field(
        default_factory=lambda: {"my_model": "11111111-2222-3333-4444-555555555555"}
    )
    round_number: int | None = 1001
    round_open: bool = True
    opens_at: datetime | None = None  # the round opens then (and stays open an hour)
    opens_in: float | None = None  # sets opens_at this many seconds after the next rounds query
    files: dict[str, bytes] = field(default_factory=dict)  # "v5.2/train.parquet" -> bytes
    round_files: dict[tuple[str, int], bytes] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    counts: Counter = field(default_factory=Counter)
    uploads: dict[str, bytes] = field(default_factory=dict)  # token -> body
    submissions: list[dict] = field(default_factory=list)
    scores: dict[str, list[dict]] = field(default_factory=dict)  # model id -> submissionScores rows
    hosted: FakeModelUploads = field(default_factory=lambda: FakeModelUploads())
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeNumerai:
        handler = _handler_for(self)
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/graphql"

    def add_dataset_dir(self, version_dir: Path) -> None:
        for path in version_dir.iterdir():
            if path.suffix in (".parquet", ".json") and path.name != "synth_spec.json":
                self.files[f"{version_dir.name}/{path.name}"] = path.read_bytes()

    def fail_next(self, kind: str, *statuses: int) -> None:
        self.faults.statuses.setdefault(kind, []).extend(statuses)

    # -- GraphQL ---------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None, authorization: str | None) -> tuple[str, dict]:
        text = re.sub(r"\s+", " ", query)
        variables = variables or {}
        if "rounds(tournament: $tournament number: 0)" in text:
            return "rounds", {"data": {"rounds": [self._round()]}}
        if "listDatasets(" in text:
            names = sorted({*self.files, *(f for f, _ in self.round_files)})
            return "listDatasets", {"data": {"listDatasets": names}}
        if "dataset(filename:" in text:
            name, round_number = variables["filename"], variables.get("round")
            suffix = f"?round={round_number}" if round_number is not None else ""
            return "dataset", {"data": {"dataset": f"{self.url}/files/{name}{suffix}"}}
        if "submissionScores(" in text:
            return "submissionScores", {"data": {"submissionScores": self._scores(variables)}}
        # Everything below needs the API key.
        kind = _operation(text)
        kind = "account" if kind == "unknown" and "account {" in text else kind
        if authorization != f"Token {self.public_id}${self.secret_key}":
            return kind, {"errors": [{"message": "Your session is invalid or has expired."}], "data": None}
        if kind in HOSTED_KINDS:
            return kind, self.hosted.answer(self, kind, variables)
        if kind == "account":
            models = [{"id": i, "name": n, "tournament": 8} for n, i in self.models.items()]
            return kind, {"data": {"account": {"models": models}}}
        if kind == "submission_upload_auth":
            token = uuid.uuid4().hex
            return kind, {
                "data": {
                    "submission_upload_auth": {
                        "filename": f"{token}.csv",
                        "url": f"{self.url}/upload/{token}",
                    }
                }
            }
        if kind == "submissions":
            mine = [s for s in self.submissions if s["model_id"] == variables.get("modelId")]
            listed = [{"id": s["id"], "filename": s["filename"], "insertedAt": s["at"]} for s in mine]
            return kind, {"data": {"submissions": listed}}
        if kind == "create_submission":
            if self.hosted.has_pickle(variables.get("modelId")):
                return kind, {"errors": [{"message": HOSTED_REFUSAL}], "data": None}
            token = variables["filename"].removesuffix(".csv")
            if token not in self.uploads:
                return kind, {"errors": [{"message": "upload not found"}], "data": None}
            if variables.get("modelId") not in self.models.values():
                return kind, {"errors": [{"message": "Model not found"}], "data": None}
            submission_id = str(uuid.uuid4())
            with self._lock:
                self.submissions.append(
                    {"id": submission_id, "model_id": variables["modelId"], "round": self.round_number,
                     "filename": variables["filename"], "body": self.uploads[token],
                     "at": _timestamp(datetime.now(UTC))}
                )  # fmt: skip
            return kind, {"data": {"create_submission": {"id": submission_id}}}
        return kind, {"errors": [{"message": f"fake does not know: {text[:80]}"}], "data": None}

    def _round(self) -> dict | None:
        if self.round_number is None:
            return None
        now = datetime.now(UTC)
        if self.opens_in is not None:
            self.opens_at, self.opens_in = now + timedelta(seconds=self.opens_in), None
        if self.opens_at is not None:
            opened, closes = self.opens_at, self.opens_at + timedelta(hours=1)
        else:
            opened = now - timedelta(minutes=10)
            closes = now + timedelta(minutes=50) if self.round_open else now - timedelta(minutes=5)
        return {
            "number": self.round_number,
            "openTime": _timestamp(opened),
            "closeStakingTime": _timestamp(closes),
        }

    def _scores(self, variables: dict) -> list[dict]:
        """The model's rows of its last `lastNRounds` rounds (all of them when not given)."""
        rows = self.scores.get(variables.get("modelId") or "", [])
        last = variables.get("lastNRounds")
        if last:
            keep = sorted({r["roundNumber"] for r in rows})[-last:]
            rows = [r for r in rows if r["roundNumber"] in keep]
        return rows

    def score_round(
        self, model: str, round_number: int, finals: dict[str, float], days: int, first_day: int = 1
    ) -> None:
        """Plant a round's daily scores as Numerai publishes them; see `daily_scores`."""
        rows = self.scores.setdefault(self.models[model], [])
        rows[:] = [r for r in rows if r["roundNumber"] != round_number]
        rows += [r for r in daily_scores(round_number, finals, days) if r["day"] >= first_day]

    def submissions_for(self, round_number: int, model: str = "my_model") -> list[dict]:
        """What Numerai holds for (round, model): more than one is a double upload."""
        model_id = self.models[model]
        return [s for s in self.submissions if (s["round"], s["model_id"]) == (round_number, model_id)]

    def file_bytes(self, name: str, round_number: int | None) -> bytes | None:
        if round_number is not None and (name, round_number) in self.round_files:
            return self.round_files[(name, round_number)]
        return self.files.get(name)

    def take_fault(self, kind: str) -> int | None:
        with self._lock:
            self.counts[kind] += 1
            queue = self.faults.statuses.get(kind)
            return queue.pop(0) if queue else None

    def take_once(self, faults: dict[str, int], kind: str) -> bool:
        with self._lock:
            if faults.get(kind, 0) > 0:
                faults[kind] -= 1
                return True
            return False


# -- model uploads (hosted prediction) -------------------------------------------------------
HOSTED_KINDS = (
    "computePickleDockerImages", "computePickleDataVersions", "computePickleUploadAuth",
    "createComputePickleUpload", "computePickleUpload",
)  # fmt: skip
# Numerai refuses API prediction uploads for a model with an uploaded pickle (its docs); the
# wording of its refusal is not known, this one is the fake's.
HOSTED_REFUSAL = "This model has an uploaded pickle (model upload): API submissions are disabled"


@dataclass
class FakeModelUploads:
    """Numerai's model uploads: images for several Pythons (the default is not the local one),
    data versions, upload URLs, creates, and each model's pickle with its runs (triggers)."""

    docker_images: dict[str, str] = field(
        default_factory=lambda: {f"Python 3.{m}": f"img-3{m}" for m in (10, 11, 12, 13)}
    )
    default_image: str = "img-312"  # what Numerai uses when no image is named
    data_versions: dict[str, str] = field(default_factory=lambda: {"v5.0": "dv-50", "v5.2": "dv-52"})
    creates: list[dict] = field(default_factory=list)  # every createComputePickleUpload, in order
    pickles: dict[str, dict] = field(default_factory=dict)  # model id -> its current pickle
    triggers: dict[str, list[dict]] = field(default_factory=dict)  # model id -> Numerai's runs

    def has_pickle(self, model_id: str | None) -> bool:
        return model_id in self.pickles

    def add_trigger(self, model_id: str, status: str, description: str = "") -> None:
        """A run of the model's pickle by Numerai, e.g. for the open round."""
        runs = self.triggers.setdefault(model_id, [])
        at = _timestamp(datetime.now(UTC))
        statuses = [{"status": status, "description": description, "insertedAt": at}]
        runs.append({"id": f"trigger-{len(runs) + 1}", "status": status, "statuses": statuses})

    def answer(self, fake: FakeNumerai, kind: str, variables: dict) -> dict:
        if kind == "computePickleDockerImages":
            listed = [{"name": n, "id": i} for n, i in self.docker_images.items()]
            return {"data": {kind: listed}}
        if kind == "computePickleDataVersions":
            return {"data": {kind: [{"name": n, "id": i} for n, i in self.data_versions.items()]}}
        if kind == "computePickleUploadAuth":
            token = uuid.uuid4().hex
            name = f"{token}.pkl"
            return {"data": {kind: {"filename": name, "url": f"{fake.url}/upload/{token}"}}}
        if kind == "createComputePickleUpload":
            token = variables["filename"].removesuffix(".pkl")
            if token not in fake.uploads:
                return {"errors": [{"message": "upload not found"}], "data": None}
            if variables.get("modelId") not in fake.models.values():
                return {"errors": [{"message": "Model not found"}], "data": None}
            upload = {**variables, "id": str(uuid.uuid4()), "body": fake.uploads[token],
                      "image": variables.get("dockerImageId") or self.default_image}  # fmt: skip
            with fake._lock:
                self.creates.append(upload)
                self.pickles[variables["modelId"]] = upload
            return {"data": {kind: {"id": upload["id"]}}}
        models = []  # computePickleUpload: the status query
        for name, model_id in fake.models.items():
            pickle = self.pickles.get(model_id)
            models.append({"username": name, "computePickleUpload": None if pickle is None else {
                "filename": pickle["filename"], "validationStatus": "Success",
                "triggerStatus": (self.triggers.get(model_id) or [{"status": None}])[-1]["status"],
                "triggers": self.triggers.get(model_id, [])}})  # fmt: skip
        return {"data": {"account": {"models": models}}}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # clients hang up on purpose (skipped downloads) and faults drop connections
        super().handle_error(request, client_address)


def _operation(text: str) -> str:
    for name in HOSTED_KINDS:  # some are fields without arguments: `computePickleDockerImages {`
        if re.search(rf"\b{name} ?[({{]", text):
            return name
    for name in ("submission_upload_auth", "create_submission", "submissions"):
        if f"{name}(" in text:
            return name
    return "unknown"


SCORE_DAYS = {"corr60": 60, "mmc60": 60}  # 60-day scores; the others resolve after 20 days
ROUND_ZERO = datetime(2020, 1, 7, 13, tzinfo=UTC)  # round numbers map to dates five a week


def daily_scores(round_number: int, finals: dict[str, float], days: int) -> list[dict]:
    """Daily `submissionScores` rows of one round after `days` score days: each score's value
    moves towards its final value day by day; 20-day scores resolve on day 20, 60-day scores
    (`corr60`, `mmc60`) keep updating and resolve on day 60. Field types as Numerai sends them:
    values as JSON numbers, dates and times as ISO strings, ids as strings."""
    opened = ROUND_ZERO + timedelta(days=7 * (round_number // 5) + round_number % 5)
    rows = []
    for name, final in finals.items():
        total = SCORE_DAYS.get(name, 20)
        for day in range(1, min(days, total) + 1):
            rows.append(
                {
                    "roundId": f"round-{round_number}",
                    "submissionId": f"submission-{round_number}",
                    "roundNumber": round_number,
                    "roundResolveTime": _timestamp(opened + timedelta(days=4 + total * 7 // 5)),
                    "roundScoreTime": _timestamp(opened + timedelta(days=4)),
                    "roundCloseStakingTime": _timestamp(opened + timedelta(hours=1)),
                    "value": round(final * (0.5 + 0.5 * day / total), 6),
                    "percentile": 0.5,
                    "displayName": name,
                    "version": "1",
                    "date": _timestamp(opened + timedelta(days=4 + day)),
                    "day": day,
                    "resolveDate": _timestamp(opened + timedelta(days=4 + total)),
                    "resolved": day == total,
                }
            )
    return rows


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _handler_for(fake: FakeNumerai) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _hang_up(self) -> None:
            """Close the connection without an answer: the client sees it dropped."""
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _fault(self, kind: str) -> bool:
            status = fake.take_fault(kind)
            hang = fake.faults.hang_seconds.get(kind)
            if hang:
                time.sleep(hang)
            if status is not None:
                self._send(status, b'{"error": "injected"}', {"Content-Type": "application/json"})
                return True
            if fake.take_once(fake.faults.lose_answer_next, kind):
                self._hang_up()  # the request already took effect
                return True
            return False

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if fake.take_once(fake.faults.drop_next, _operation(re.sub(r"\s+", " ", body.get("query", "")))):
                self._hang_up()
                return
            kind, answer = fake.graphql(
                body.get("query", ""), body.get("variables"), self.headers.get("Authorization")
            )
            if self._fault(kind):
                return
            self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

        def do_HEAD(self) -> None:
            self._serve_file("head")

        def do_GET(self) -> None:
            self._serve_file("get")

        def _serve_file(self, kind: str) -> None:
            path, _, query = self.path.partition("?")
            name = path.removeprefix("/files/")
            round_number = int(query.split("=")[1]) if query.startswith("round=") else None
            if self._fault(kind):
                return
            data = fake.file_bytes(name, round_number)
            if data is None:
                self._send(404, b"not found")
                return
            headers = {"ETag": f'"{hashlib.sha1(data).hexdigest()}"', "Accept-Ranges": "bytes"}
            if kind == "get" and fake.faults.truncate_next.get(name, 0) > 0:
                fake.faults.truncate_next[name] -= 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])  # then drop the connection
                self.close_connection = True
                return
            requested = self.headers.get("Range")
            if requested and kind == "get":
                start = int(requested.removeprefix("bytes=").split("-")[0])
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(206, data[start:], headers)
                return
            self._send(200, data, headers)

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if fake.take_once(fake.faults.drop_next, "put"):
                self._hang_up()
                return
            if self._fault("put"):
                return
            fake.uploads[self.path.removeprefix("/upload/")] = body
            self._send(200, b"")

    return Handler
