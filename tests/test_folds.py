import numpy as np
import pytest

from numerflow.data.files import embargo_after
from numerflow.train.folds import make_folds


def test_fold_boundaries_and_embargo_exact() -> None:
    folds = make_folds(range(1, 21), n_folds=4, embargo=2)
    assert [f.validation_eras for f in folds] == [
        (1, 2, 3, 4, 5),
        (6, 7, 8, 9, 10),
        (11, 12, 13, 14, 15),
        (16, 17, 18, 19, 20),
    ]
    # Two eras dropped on each side of the block, and no more.
    assert folds[0].train_eras == tuple(range(8, 21))
    assert folds[0].embargoed_eras == (6, 7)
    assert folds[1].train_eras == (1, 2, 3, *range(13, 21))
    assert folds[1].embargoed_eras == (4, 5, 11, 12)
    assert folds[3].train_eras == tuple(range(1, 14))
    assert folds[3].embargoed_eras == (14, 15)


def test_no_embargo_means_every_other_era_trains() -> None:
    folds = make_folds(range(1, 11), n_folds=2, embargo=0)
    assert folds[0].train_eras == (6, 7, 8, 9, 10)
    assert folds[1].train_eras == (1, 2, 3, 4, 5)


def test_an_era_never_sits_on_both_sides() -> None:
    eras = np.repeat(np.arange(1, 58), 3)  # duplicated rows per era
    for fold in make_folds(eras, n_folds=5, embargo=4):
        assert not set(fold.train_eras) & set(fold.validation_eras)
        gap = [abs(t - v) for t in fold.train_eras for v in fold.validation_eras]
        assert min(gap) == 5  # embargo 4 -> the nearest training era is 5 eras away


def test_embargo_counts_era_numbers_with_subsampled_eras() -> None:
    eras = list(range(1, 81, 4))  # every 4th era: 1, 5, ..., 77
    folds = make_folds(eras, n_folds=4, embargo=8)
    fold = folds[1]  # validates 21..37
    assert fold.validation_eras == (21, 25, 29, 33, 37)
    # 13 and 17 lie within 8 eras before 21; 41 and 45 within 8 after 37.
    assert fold.embargoed_eras == (13, 17, 41, 45)
    assert max(e for e in fold.train_eras if e < 21) == 9
    assert min(e for e in fold.train_eras if e > 37) == 49


def test_validation_blocks_cover_every_era_once() -> None:
    folds = make_folds(range(1, 24), n_folds=4, embargo=3)
    covered = [e for f in folds for e in f.validation_eras]
    assert sorted(covered) == list(range(1, 24))


@pytest.mark.parametrize(
    ("eras", "n_folds", "embargo", "message"),
    [
        (range(1, 4), 4, 0, "3 eras cannot make 4 folds"),
        (range(1, 11), 1, 0, "n_folds must be at least 2"),
        (range(1, 11), 2, -1, "embargo must be >= 0"),
        (range(1, 11), 2, 10, "no training eras left"),
    ],
)
def test_bad_fold_requests_fail_clearly(eras, n_folds, embargo, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_folds(eras, n_folds, embargo)


def test_validation_embargo_after_last_train_era() -> None:
    mask = embargo_after([575, 578, 582, 583, 600], last_train_era=574, embargo=8)
    assert mask.tolist() == [False, False, False, True, True]
