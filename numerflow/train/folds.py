"""Era-aware folds with an embargo.

Eras are split into K contiguous blocks in time order. Each block is validated by a model
trained on every other era, except the `embargo` eras on either side of the block: Numerai
targets look 20 (or 60) market days ahead, so neighbouring eras share outcomes with the block.
The embargo counts era numbers, not positions, so it means the same with era subsampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict


class Fold(BaseModel):
    """One fold: which eras train and which validate (era numbers, sorted)."""

    model_config = ConfigDict(frozen=True)

    index: int
    train_eras: tuple[int, ...]
    validation_eras: tuple[int, ...]
    embargoed_eras: tuple[int, ...]


def make_folds(eras: Sequence[int], n_folds: int, embargo: int) -> list[Fold]:
    """Split the distinct `eras` into `n_folds` time-ordered blocks with an embargo."""
    unique = np.unique(np.asarray(eras, dtype=np.int64))
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0, got {embargo}")
    if len(unique) < n_folds:
        raise ValueError(f"{len(unique)} eras cannot make {n_folds} folds")
    folds = []
    for index, block in enumerate(np.array_split(unique, n_folds)):
        first, last = int(block[0]), int(block[-1])
        in_block = (unique >= first) & (unique <= last)
        near = (unique >= first - embargo) & (unique <= last + embargo) & ~in_block
        train = unique[~in_block & ~near]
        if len(train) == 0:
            raise ValueError(
                f"fold {index} has no training eras left: embargo {embargo} is too wide "
                f"for {len(unique)} eras in {n_folds} folds"
            )
        folds.append(
            Fold(
                index=index,
                train_eras=tuple(int(e) for e in train),
                validation_eras=tuple(int(e) for e in block),
                embargoed_eras=tuple(int(e) for e in unique[near]),
            )
        )
    return folds
