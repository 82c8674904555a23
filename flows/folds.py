"""Fold x target training as a subflow whose task runner is chosen per run.

Locally the tasks run one at a time in this flow's thread (LightGBM already uses every core). With
`training.scale_out.dask_address` (or the `dask_address` flow parameter) they run on that Dask
cluster instead: each worker reads the data and the bins from the shared paths in the prepared
record (nothing large passes through the scheduler), decides its own device with the run's
recorded device policy, and a task lost with its worker is rerun elsewhere by Dask; folds that
had finished are restored from the fold cache rather than trained again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

from prefect import Flow, State, flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run

from flows.naming import parent_run_name
from numerflow.config.models import ScaleOutConfig
from numerflow.progress import eta_seconds, percent
from numerflow.runs.names import child_run_name
from numerflow.train.fit import FoldResult
from tasks.inputs import FoldJobs
from tasks.progress import on_terminal
from tasks.training import train_fold


def fold_flow(scale_out: ScaleOutConfig) -> Flow:
    """The fold subflow on the task runner `scale_out` asks for: here, or the Dask cluster."""
    if not scale_out.dask_address:
        return train_folds_flow
    from prefect_dask import DaskTaskRunner  # imported only when used: Dask is slow to import

    return train_folds_flow.with_options(task_runner=DaskTaskRunner(address=scale_out.dask_address))


class ClusterUnreachable(RuntimeError):
    """The configured Dask scheduler did not answer, or has no workers to train on."""


@task(name="check-dask-cluster")
def check_cluster(scale_out: ScaleOutConfig, timeout_s: float = 10) -> int | None:
    """Workers of the configured Dask cluster (None when training here), checked before any work.

    Failing here costs seconds; failing when the folds are submitted would come after the data
    were read and binned.
    """
    if not scale_out.dask_address:
        return None
    from distributed import Client

    where = f"training.scale_out.dask_address (or the dask_address parameter) {scale_out.dask_address}"
    try:
        with Client(scale_out.dask_address, timeout=timeout_s) as client:
            workers = len(client.scheduler_info()["workers"])
    except OSError as exc:
        raise ClusterUnreachable(f"{where}: no Dask scheduler answered ({exc})") from None
    if workers == 0:
        raise ClusterUnreachable(
            f"{where}: the scheduler has no workers; start `dask worker` on the training boxes"
        )
    get_run_logger().info("training on the Dask cluster at %s (%d workers)", scale_out.dask_address, workers)
    return workers


def _holding(resources: dict[str, float]) -> AbstractContextManager[object]:
    """Dask annotations that make each task submitted inside hold `resources` on its worker."""
    if not resources:
        return nullcontext()
    import dask

    return dask.annotate(resources=resources)


def _run_name() -> str:
    jobs: FoldJobs = flow_run.parameters["jobs"]
    where = "dask" if jobs.scale_out.dask_address else "local"
    return child_run_name(parent_run_name(), f"folds-{len(jobs.fits)}-fits-{where}")


@flow(name="numerflow-train-folds", flow_run_name=_run_name)
def train_folds_flow(jobs: FoldJobs) -> dict[str, FoldResult | str]:
    """Train every fold x target, here one after another or on the Dask cluster, and wait for all.
    Returns each fit's result, or the error that stopped it: a failed fit fails only the slots
    that need it, so the others still finish.
    """
    fits, scale_out = jobs.fits, jobs.scale_out
    distributed = scale_out.dask_address is not None
    if not distributed:
        # In this thread, not a task runner's: once the main thread has run LightGBM (the
        # binning), LightGBM's OpenMP threads ran about 6 times slower from a second Python thread
        # (2,000 trees on 13,500 x 15: 0.9 s here, 8 s from a pool thread, on 2 cores).
        states = ((fit.key, train_fold(jobs.job(fit), return_state=True)) for fit in fits)
        return _collect_with_progress(states, len(fits))
    with _holding(scale_out.task_resources):
        futures = {train_fold.submit(jobs.job(fit)): fit.key for fit in fits}  # a worker decides its device
    done = ((futures[future], _final_state(future)) for future in as_completed(list(futures)))
    return _collect_with_progress(done, len(fits))


def _collect_with_progress(states: Iterator[tuple[str, State]], total: int) -> dict[str, FoldResult | str]:
    """Every fit's result or error, by key, as the fits finish, while a progress artifact on this
    run (and a bar on the terminal, if the CLI shows one) shows fits done and the time left (from
    the pace of the finished ones). A failed fit is counted as done and recorded as its error; it
    does not fail the run."""
    started = time.monotonic()
    artifact_id = create_progress_artifact(0.0, description=f"0/{total} fold models trained")
    bar = on_terminal("fold models trained", "models")
    if bar is not None:
        bar(0, total)
    results: dict[str, FoldResult | str] = {}
    for done, (key, state) in enumerate(states, start=1):
        results[key] = state.result() if state.is_completed() else f"{state.name}: {state.message}"
        if bar is not None:
            bar(done, total)
        eta = eta_seconds(done, total, time.monotonic() - started)
        left = f", about {eta / 60:.0f} min left" if eta else ""
        failed = sum(isinstance(r, str) for r in results.values())
        errors = f", {failed} failed" if failed else ""
        update_progress_artifact(
            artifact_id,
            percent(done, total),
            description=f"{done}/{total} fold models trained{errors}{left}",
        )
    return results


def _final_state(future: PrefectFuture[FoldResult]) -> State:
    future.wait()
    return future.state
