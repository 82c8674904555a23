"""The live data of a round: where it lives for a data version and its download."""

from __future__ import annotations

from pathlib import Path

from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.download import DownloadResult, expectation_for, fetch
from numerflow.progress import ProgressReport


def live_path(version_dir: Path, round_number: int | None) -> Path:
    """Round-specific live file when the round is known; the plain live.parquet otherwise."""
    return version_dir / (f"live_{round_number}.parquet" if round_number is not None else "live.parquet")


def ensure_live_data(
    version_dir: Path,
    client: NumeraiClient,
    round_number: int | None,
    feature_names: list[str],
    on_progress: ProgressReport | None = None,
) -> DownloadResult:
    dest = live_path(version_dir, round_number)
    return fetch(
        client,
        f"{version_dir.name}/live.parquet",
        dest,
        expectation_for("live.parquet", feature_names),
        round_number,
        on_progress=on_progress,
    )
