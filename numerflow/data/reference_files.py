"""The names of the files Numerai publishes next to the data to score contribution against, and
of their columns: the meta model (`meta_model.parquet`, for MMC) and the benchmark models
(`validation_benchmark_models.parquet`, for BMC). The synthetic data writes them, the download
fetches them, scoring reads them (numerflow.score.references)."""

from __future__ import annotations

META_MODEL_FILE = "meta_model.parquet"
META_MODEL_COLUMN = "numerai_meta_model"
BENCHMARK_FILE = "validation_benchmark_models.parquet"
SCORING_FILES = (BENCHMARK_FILE, META_MODEL_FILE)


def benchmark_column(version: str, target: str) -> str:
    """Numerai's name for the benchmark LightGBM model of `target`: v52_lgbm_ender20 for
    target_ender_20 in v5.2."""
    major, minor = _numbers(version)
    return f"v{major}{minor}_lgbm_{target.removeprefix('target_').replace('_', '')}"


def reference_benchmark(version: str) -> str:
    """The version's reference benchmark: the model of the main target, which is ender_20 from
    v5.2 on and cyrusd_20 before."""
    main = "target_ender_20" if _numbers(version) >= (5, 2) else "target_cyrusd_20"
    return benchmark_column(version, main)


def _numbers(version: str) -> tuple[int, int]:
    major, minor = version.removeprefix("v").split(".")
    return int(major), int(minor)
