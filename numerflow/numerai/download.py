"""Conditional, verified dataset downloads.

numerapi's own `download_file` skips a file when the sizes match, resumes partial files
without checking the server honoured the range (corrupting them), and waits 600 s on a
stalled body. Here numerapi only supplies the file's URL; the bytes are fetched with a
bounded timeout into a temporary file, checked (byte count, readable parquet with the
expected columns and rows, or JSON with the expected keys) and only then renamed into place.
A sidecar `<file>.source.json` remembers the server's ETag/size/Last-Modified, so an
unchanged file costs one HEAD request and is not fetched again. One process at a time fetches
a file (a lease beside it); temporary files of a killed download are removed on the next fetch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import requests

from numerflow.data.reference_files import BENCHMARK_FILE, META_MODEL_COLUMN, META_MODEL_FILE
from numerflow.io import atomic_path, remove_stale_temps, write_json_atomic
from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.errors import TransientError
from numerflow.numerai.locks import WAIT_FOREVER, held
from numerflow.progress import ProgressReport

CHUNK_BYTES = 1 << 20
logger = logging.getLogger("numerflow.numerai")


@dataclass(frozen=True)
class Expectation:
    """What a downloaded file must contain to be used."""

    columns: tuple[str, ...] = ()
    json_keys: tuple[str, ...] = ()
    min_rows: int = 1


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    downloaded: bool
    reason: str


def expectation_for(filename: str, feature_names: list[str] | None = None) -> Expectation:
    """Columns Numerai's files always have, plus the features when features.json is known."""
    base = filename.rsplit("/", 1)[-1]
    if base.endswith(".json"):
        return Expectation(json_keys=("feature_sets", "targets"))
    if base == META_MODEL_FILE:
        return Expectation(columns=("id", META_MODEL_COLUMN))
    if base == BENCHMARK_FILE:
        return Expectation(columns=("id", "era"))
    features = tuple(feature_names or ())
    if base.startswith("train"):
        return Expectation(columns=("id", "era", "target", *features))
    if base.startswith("validation"):
        return Expectation(columns=("id", "era", "data_type", "target", *features))
    return Expectation(columns=("id", "era", *features))


def fetch(
    client: NumeraiClient,
    filename: str,
    dest: Path,
    expectation: Expectation,
    round_number: int | None = None,
    force: bool = False,
    on_progress: ProgressReport | None = None,
) -> DownloadResult:
    """Make `dest` hold Numerai's current `filename`, downloading only when needed;
    `on_progress(bytes received, bytes in total)` follows a download (a retry starts again)."""
    # A big file may take long to arrive; the holder is alive (heartbeat) or its lease ends.
    with held(dest.with_name(f".{dest.name}.lock"), WAIT_FOREVER, f"download {filename}"):
        for stale in remove_stale_temps(dest):
            logger.info("removed %s, left by an interrupted download", stale.name)
        return _fetch_locked(client, filename, dest, expectation, round_number, force, on_progress)


def _fetch_locked(
    client: NumeraiClient,
    filename: str,
    dest: Path,
    expectation: Expectation,
    round_number: int | None,
    force: bool,
    on_progress: ProgressReport | None,
) -> DownloadResult:
    url = client.dataset_url(filename, round_number)
    remote = client.retrying(lambda: _head(url, client), f"check {filename}")
    sidecar = _sidecar(dest)
    if not force and dest.is_file() and _unchanged(sidecar, remote, dest):
        return DownloadResult(dest, downloaded=False, reason="unchanged on the server")

    had_file = dest.is_file()

    def attempt() -> None:
        size = _download(url, dest, expectation, client, on_progress)
        _remember(sidecar, url, remote, size)

    client.retrying(attempt, f"download {filename}")
    reason = "forced" if force else ("changed on the server" if had_file else "missing locally")
    return DownloadResult(dest, downloaded=True, reason=reason)


def _download(
    url: str,
    dest: Path,
    expectation: Expectation,
    client: NumeraiClient,
    on_progress: ProgressReport | None,
) -> int:
    """Stream `url` into a temporary file, check it, rename it onto `dest`; returns the size."""
    with (
        requests.get(url, stream=True, timeout=client.timeouts.as_tuple()) as response,
        atomic_path(dest) as tmp,
    ):
        response.raise_for_status()
        expected = response.headers.get("Content-Length")
        total = int(expected) if expected is not None else 0  # 0: the server did not say
        received = 0
        with open(tmp, "wb") as handle:
            for chunk in response.iter_content(CHUNK_BYTES):
                handle.write(chunk)
                received += len(chunk)
                if on_progress is not None:
                    on_progress(received, total)
        if expected is not None and received != int(expected):
            raise TransientError(f"{dest.name}: received {received} of {expected} bytes")
        check_file(tmp, expectation, label=dest.name)
    return received


def check_file(path: Path, expectation: Expectation, label: str | None = None) -> None:
    """Raise `TransientError` unless `path` is complete and has what `expectation` lists."""
    label = label or path.name
    if expectation.json_keys:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise TransientError(f"{label}: not valid JSON (truncated or corrupt)") from None
        missing = [k for k in expectation.json_keys if not isinstance(data, dict) or k not in data]
        if missing:
            raise TransientError(f"{label}: JSON lacks keys {missing}")
        return
    try:
        metadata = pq.read_metadata(path)
        names = set(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError):
        raise TransientError(f"{label}: not a readable parquet file (truncated or corrupt)") from None
    missing = [c for c in expectation.columns if c not in names]
    if missing:
        raise TransientError(f"{label}: missing columns {missing[:5]}")
    if metadata.num_rows < expectation.min_rows:
        raise TransientError(f"{label}: {metadata.num_rows} rows, expected at least {expectation.min_rows}")


def _head(url: str, client: NumeraiClient) -> dict[str, str | None]:
    response = requests.head(url, timeout=client.timeouts.as_tuple(), allow_redirects=True)
    if response.status_code in (403, 405, 501):  # no HEAD: treat the remote version as unknown
        return {"etag": None, "size": None, "last_modified": None}
    response.raise_for_status()
    return {
        "etag": response.headers.get("ETag"),
        "size": response.headers.get("Content-Length"),
        "last_modified": response.headers.get("Last-Modified"),
    }


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source.json")


def _unchanged(sidecar: Path, remote: dict[str, str | None], dest: Path) -> bool:
    if not sidecar.is_file() or not (remote["etag"] or remote["size"]):
        return False
    try:
        known = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError:
        return False
    if known.get("size") != dest.stat().st_size:
        return False  # the local file was changed or replaced since it was downloaded
    if remote["etag"]:
        return known.get("etag") == remote["etag"]
    return str(known.get("size")) == remote["size"] and known.get("last_modified") == remote["last_modified"]


def _remember(sidecar: Path, url: str, remote: dict[str, str | None], size: int) -> None:
    # Only the URL's path: a signed URL's query string is a credential of sorts.
    write_json_atomic(
        sidecar,
        {
            "url_path": urlsplit(url).path,
            "etag": remote["etag"],
            "last_modified": remote["last_modified"],
            "size": size,
            "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
