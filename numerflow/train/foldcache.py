"""Finished folds, keyed by everything that determines them, so a re-run does not retrain them.

A fold's key hashes the training data (content fingerprint of the prepared rows), the fold's
eras, the target, the exact LightGBM parameters, the seed and numerflow's own source code. A
re-run after a crash, or a flow retry, finds the folds that finished under the same key and
copies them into the new run; anything trained on other data, parameters or code has another
key and is never reused. Entries are written completely before their `result.json` marker; a
full disk mid-store raises `DiskFullError` and removes the incomplete entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cache
from pathlib import Path

from numerflow.cachedirs import prune_entries
from numerflow.config.models import LightGBMParams
from numerflow.io import atomic_path, write_json_atomic
from numerflow.train.folds import Fold

CACHE_DIR_NAME = "fold-cache"
MARKER = "result.json"
KEEP_DAYS = 21


@cache
def code_fingerprint() -> str:
    """Hash of numerflow's Python sources: a code change invalidates every cached fold."""
    root = Path(__file__).resolve().parents[1]  # the whole numerflow package
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fold_key(data_fingerprint: str, fold: Fold, target: str, params: LightGBMParams, seed: int) -> str:
    payload = {
        "data": data_fingerprint,
        "fold": fold.model_dump(mode="json"),
        "target": target,
        "params": params.model_dump(mode="json"),
        "seed": seed,
        "code": code_fingerprint(),
    }
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()


class FoldCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def lookup(self, key: str) -> dict | None:
        marker = self.root / key / MARKER
        if not marker.is_file():
            return None
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            return None
        entry = self.root / key
        if not (entry / "model.txt").is_file() or not (entry / "oof.parquet").is_file():
            return None
        marker.touch()  # keep entries that are in use
        return record

    def restore(self, key: str, model_path: Path, oof_path: Path) -> None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / key / "model.txt", model_path)
        shutil.copyfile(self.root / key / "oof.parquet", oof_path)

    def store(self, key: str, model_path: Path, oof_path: Path, record: dict) -> None:
        entry = self.root / key
        (entry / MARKER).unlink(missing_ok=True)  # an entry being rewritten is not complete
        try:
            for source, name in ((model_path, "model.txt"), (oof_path, "oof.parquet")):
                with atomic_path(entry / name) as tmp:
                    shutil.copyfile(source, tmp)
            write_json_atomic(entry / MARKER, record)  # last: the entry is complete
        except BaseException:
            shutil.rmtree(entry, ignore_errors=True)
            raise

    def prune(self, keep_days: float = KEEP_DAYS) -> int:
        """Remove entries unused for `keep_days`; returns how many were removed."""
        return prune_entries(self.root, MARKER, keep_days)
