"""LightGBM's own knowledge of its parameters: names, aliases, valid values, Dataset keys.

Nothing here keeps a list of LightGBM's parameters: the names and aliases come from the
installed library (`LGBM_DumpParamAliases`, through `lightgbm.basic._ConfigAliases`), values are
checked by LightGBM's own parameter parsing (a tiny Dataset and Booster built with them), and the
keys that shape a binned Dataset are the ones `lightgbm.Dataset.get_params` keeps. LightGBM is
imported on first use, so reading the configuration stays fast.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import psutil

# Objectives that fit Numerai's targets (floats in [0, 1]); LightGBM resolves their aliases
# (l2, mse, mae, ...) itself and names the canonical one in the model it builds.
REGRESSION_OBJECTIVES = frozenset(
    {"regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie"}
)
# Keys numerflow sets itself, and what it does with them instead.
NUMERFLOW_KEYS = {
    "seed": "numerflow seeds every model from training.yaml's seed: (set training.seed)",
    "deterministic": "numerflow always trains with deterministic: true, so a run repeats exactly",
}
DEVICE_KEYS = {
    "device_type": "the GPU decision chooses it: set gpu.device (auto, gpu, cuda or cpu)",
    "gpu_platform_id": "the GPU decision chooses it: set gpu.opencl_platform",
    "gpu_device_id": "the GPU decision chooses it: set gpu.device_index",
}
# numerflow adds min_data_in_leaf to LightGBM's Dataset keys: with feature_pre_filter (LightGBM's
# default) the Dataset drops features that cannot split at that leaf size when it is binned.
EXTRA_DATASET_KEYS = ("min_data_in_leaf",)
_CHECK_ROWS = 64


class ParamError(ValueError):
    """A LightGBM parameter numerflow refuses; `key` is its name as written, or its canonical name
    once resolved (LightGBM's messages use that one)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@cache
def _aliases() -> dict[str, list[str]]:
    from lightgbm.basic import _ConfigAliases

    return _ConfigAliases._get_all_param_aliases()  # canonical name -> [canonical, *aliases]


@cache
def _canonical_by_name() -> dict[str, str]:
    return {name: canonical for canonical, names in _aliases().items() for name in names}


def canonical_name(name: str) -> str | None:
    """LightGBM's canonical name for `name` (itself or an alias); None when LightGBM lacks it."""
    return _canonical_by_name().get(name)


def canonical_params(params: Mapping[str, Any], known: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`params` under LightGBM's canonical names; refuses an unknown name (with the closest
    known ones) and two names of one parameter. Keys in `known` are canonical names already:
    they need no look-up (and no import of LightGBM)."""
    resolved: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in params.items():
        name = key if key in known else canonical_name(key)
        if name is None:
            close = difflib.get_close_matches(key, list(_canonical_by_name()), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ParamError(key, f"not a LightGBM {_version()} parameter{hint}")
        if name in written:
            raise ParamError(
                key,
                f"{written[name]} and {key} are both names of LightGBM's {name}; keep one",
            )
        written[name] = key
        resolved[name] = value
    return resolved


def canonical_or_kept(params: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical names where LightGBM knows the key, others as they are (records of old runs)."""
    return {canonical_name(key) or key: value for key, value in params.items()}


def check_numerflow_keys(params: Mapping[str, Any], device_keys: bool) -> None:
    """Refuse the keys numerflow decides (canonical names), saying what it does instead;
    `device_keys`: also the device keys (every place but the manual parameter file)."""
    refused = {**NUMERFLOW_KEYS, **(DEVICE_KEYS if device_keys else {})}
    for key in params:
        if key in refused:
            raise ParamError(key, f"numerflow's own key: {refused[key]}")


def check_with_lightgbm(params: Mapping[str, Any], suspects: list[str]) -> None:
    """LightGBM's own parsing of `params` (canonical names): a tiny Dataset and Booster are
    built with them on the CPU. The error names the key that LightGBM refuses on its own, else
    `suspects` (the keys beyond numerflow's defaults), which LightGBM refuses together."""
    error, objective = _lightgbm_verdict(_frozen(params))
    if error is not None:
        for key, value in params.items():
            alone, _ = _lightgbm_verdict(_frozen({key: value}))
            if alone is not None:
                raise ParamError(key, f"{value!r} refused by LightGBM: {alone}")
        raise ParamError(" + ".join(suspects), f"refused together by LightGBM: {error}")
    if objective not in REGRESSION_OBJECTIVES:
        raise ParamError(
            "objective",
            f"{params.get('objective')!r} is LightGBM's {objective}, not a regression objective; "
            f"numerflow trains regressions on Numerai's targets ({', '.join(sorted(REGRESSION_OBJECTIVES))})",
        )


def _frozen(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, default=str)


@cache
def _lightgbm_verdict(frozen: str) -> tuple[str | None, str]:
    """LightGBM's message for these parameters (a JSON object), or None when it takes them; and
    the objective LightGBM resolved them to."""
    import lightgbm as lgb
    import numpy as np

    params = {
        **json.loads(frozen),
        **{key: None for key in DEVICE_KEYS},  # checked on the CPU: the device is numerflow's
        "device_type": "cpu",
        "num_threads": 1,
        "verbosity": -1,
    }
    params = {key: value for key, value in params.items() if value is not None}
    data = np.random.default_rng(0).integers(0, 5, size=(_CHECK_ROWS, _columns(params))).astype(np.float32)
    label = np.linspace(0.05, 1.0, _CHECK_ROWS)  # positive: every regression objective takes it
    try:
        # LightGBM's Python logger prints its fatal message too; the error raised here carries it.
        with contextlib.redirect_stdout(io.StringIO()):
            booster = lgb.Booster(params, lgb.Dataset(data, label=label, params=params))
    except lgb.basic.LightGBMError as exc:
        return re.sub(r"\s+at \S+, line \d+\s*\.?\s*$", "", str(exc)).strip(), ""
    match = re.search(r"^objective=(\S+)", booster.model_to_string(), flags=re.MULTILINE)
    return None, match.group(1) if match else "unknown"


def _columns(params: Mapping[str, Any]) -> int:
    """Enough columns for per-feature parameters (max_bin_by_feature, monotone_constraints,
    interaction_constraints, ...) to be checked at the length and indices they were written."""
    columns = 3
    for value in params.values():
        if isinstance(value, list):
            flat = [v for item in value for v in (item if isinstance(item, list) else [item])]
            numbers = [v for v in flat if isinstance(v, int) and not isinstance(v, bool)]
            columns = max(columns, len(value), 1 + max(numbers, default=0))
    return min(columns, 100_000)


def dataset_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that shape a binned Dataset: LightGBM's own list (what
    `lightgbm.Dataset.get_params` keeps) and min_data_in_leaf."""
    import lightgbm as lgb

    kept = lgb.Dataset(None, params=dict(params)).get_params()
    return {key: value for key, value in params.items() if key in kept or key in EXTRA_DATASET_KEYS}


def physical_cores() -> int:
    """The machine's physical cores: LightGBM's docs advise num_threads = physical cores, not
    the logical ones hyper-threading adds (LightGBM's default, through OpenMP)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@cache
def _version() -> str:
    import lightgbm as lgb

    return lgb.__version__
