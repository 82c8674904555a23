"""Speed-up of the fold x target tasks on a Dask cluster of two workers over one.

    uv run python -m benchmarks.dask_speedup --size 200000x500 --folds 4 --trees 300

Prepares the rows once (bins built once), then runs numerflow's fold subflow (the same one
the weekly flow runs) on a fresh local Dask cluster of 1 worker, then of 2 workers, each worker
a separate process with one thread and LightGBM set to one thread, so each worker owns a core.
A temporary Prefect server records every run; each measurement starts from an empty fold cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry

from distributed import LocalCluster
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from benchmarks.common import REPO, dataset
from flows.folds import fold_flow
from numerflow.config import load_config
from numerflow.gpu.probe import probe_gpus
from numerflow.runs.device import apply_decision, decide_device
from numerflow.runs.fits import FitSpec, plan_fits, prepare_data
from numerflow.runs.folders import start_run
from numerflow.runs.plan import RunPlan, resolve_plan
from numerflow.train.prepare import PreparedData
from tasks.inputs import FoldJobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="200000x500", help="ROWSxFEATURES")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-data")
    args = parser.parse_args()

    rows, n_features = (int(v) for v in args.size.lower().split("x"))
    version_dir = dataset(args.data_dir, rows, n_features)
    with tempfile.TemporaryDirectory(prefix="numerflow-dask-bench-") as scratch:
        work = Path(scratch)
        overrides = {
            "training.data.dir": str(version_dir.parent),
            "training.data.version": version_dir.name,
            "training.data.era_stride": 1,
            "training.work_dir": str(work / "runs"),
            "training.folds.n_folds": args.folds,
            "training.folds.embargo_eras": 2,
            "features.feature_set": "all",
            "program_input_params.params.n_estimators": args.trees,
            "program_input_params.params.num_threads": 1,
        }
        config = load_config(REPO / "config", overrides)
        plan = resolve_plan(config, version_dir.name)
        plan = apply_decision(plan, decide_device(plan, probe_gpus()))
        paths = start_run(plan)
        [slot] = plan.slots
        prepared = {slot.data_key(): prepare_data(plan, [slot], paths)}
        fits, _ = plan_fits(plan, prepared, paths)
        print(
            f"{len(fits)} fold x target tasks ({args.folds} folds x {len(slot.targets)} targets) of "
            f"{args.trees} trees on {prepared[slot.data_key()].rows:,} x {n_features:,}; "
            f"{os.cpu_count()} CPU cores here"
        )

        with prefect_test_harness(server_startup_timeout=90):
            os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()  # the worker processes report here
            seconds = {n: on_cluster(n, plan, prepared, fits, work) for n in args.workers}
        base = seconds[args.workers[0]]
        for n_workers in args.workers[1:]:
            print(f"speed-up of {n_workers} workers over {args.workers[0]}: {base / seconds[n_workers]:.2f}x")


def on_cluster(
    n_workers: int, plan: RunPlan, prepared: dict[str, PreparedData], fits: list[FitSpec], work: Path
) -> float:
    """Seconds the fold subflow takes on a fresh local cluster of `n_workers` one-thread processes."""
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True) as cluster:
        scale_out = plan.scale_out.model_copy(update={"dask_address": cluster.scheduler_address})
        started = time.perf_counter()
        jobs = FoldJobs(
            fits=fits,
            prepared=prepared,
            scale_out=scale_out,
            seed=plan.seed,
            cache_dir=work / f"w{n_workers}",
            device_policy=plan.device_policy,
        )
        outcomes = fold_flow(scale_out)(jobs)
        seconds = time.perf_counter() - started
    results = [r for r in outcomes.values() if not isinstance(r, str)]
    print(
        f"  {n_workers} worker(s): {seconds:.1f} s for {len(results)} tasks, trained in "
        f"{len({r.pid for r in results})} worker process(es), {sum(r.reused for r in results)} reused"
    )
    return seconds


if __name__ == "__main__":
    main()
