"""Training progress: a LightGBM callback that reports trees done after every tree (the shell
throttles what costs a network call; see `numerflow.progress.Throttled`)."""

from __future__ import annotations

from numerflow.progress import ProgressReport


class TreeProgress:
    """LightGBM callback: `report(trees done, trees in total)` after each tree."""

    order = 100  # after LightGBM's own callbacks (early stopping may end training early)

    def __init__(self, report: ProgressReport) -> None:
        self.report = report

    def __call__(self, env: object) -> None:
        done = env.iteration - env.begin_iteration + 1  # type: ignore[attr-defined]
        total = env.end_iteration - env.begin_iteration  # type: ignore[attr-defined]
        self.report(done, total)
