"""Peak RAM and time of the final-model step (`training.final_model: all_labelled`).

    uv run python -m benchmarks.final_model --train-rows 675000 --validation-rows 975000 --trees 10
    uv run python -m benchmarks.final_model   # full v5.2 size: 2.7M + 3.9M rows x 2,376 features

Generates Numerai-shaped train and validation files with numerflow's own generator (era by era,
so generation never holds the data in memory; reused when already there), then runs the step's
core in a fresh child process, as the weekly flow does: the labelled eras of both files are
fixed from their era and target columns, the memory guard sizes the shape and picks the loader,
both files are binned in one pass into the bins cache, and one target's final model trains on
the whole binned set. It prints, for binning and for training separately, the measured peak
RSS (VmHWM, the high-water mark getrusage's ru_maxrss reports; reset between the two) and
seconds, the guard's estimates, the seconds a tree, and an extrapolation to the configured
tree count. Below full size it also extrapolates peak and time to the full labelled set
(2.7M + 3.9M rows x 2,376) with the per-cell model, and says so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.common import (
    EXAMPLE_MODEL,
    MIB,
    feature_names,
    generated,
    peak_rss_mib,
    reset_peak_rss,
    run_child,
)
from numerflow.data.memory import GIB, USABLE_FRACTION, DataShape, estimate_peaks
from numerflow.data.synth import SynthSpec

FULL_TRAIN_ROWS = 2_700_000  # Numerai v5.2 train.parquet
FULL_VALIDATION_ROWS = 3_900_000  # its labelled validation eras
FULL_FEATURES = 2_376
ROWS_PER_ERA = 5_000
MACHINE_BYTES = 24 * GIB


def labelled_dataset(root: Path, train_rows: int, validation_rows: int, features: int) -> Path:
    """`<root>/<train>+<validation>x<features>/v5.2`: train eras, labelled validation eras and one
    unlabelled era, generated unless the same spec is already there."""
    train_eras = max(1, train_rows // ROWS_PER_ERA)
    validation_eras = max(1, validation_rows // ROWS_PER_ERA)
    eras = train_eras + validation_eras + 1
    spec = SynthSpec(
        eras=eras,
        rows_per_era=ROWS_PER_ERA,
        features=features,
        validation_fraction=(validation_eras + 1) / eras,
        unlabelled_eras=1,
        live_rows=1000,
        reference_files=False,
    )
    return generated(root / f"{train_rows}+{validation_rows}x{features}", spec)


def step_child(version_dir: Path, n_features: int, trees: int, loader: str, work: Path) -> dict:
    """The final-model step's core, measured: bins (both files, one pass), then one target."""
    from numerflow.config.models import LightGBMParams
    from numerflow.data.files import labelled_eras
    from numerflow.data.memory import plan_memory
    from numerflow.train.final import fit_final
    from numerflow.train.prepare import RowPart, bin_rows, data_shape

    baseline = peak_rss_mib()
    features = feature_names(version_dir, n_features)
    params = LightGBMParams(**{**EXAMPLE_MODEL, "n_estimators": trees})
    paths = [version_dir / "train.parquet", version_dir / "validation.parquet"]

    started = time.perf_counter()
    parts = [
        RowPart(path=p, eras=e.tolist()) for p, e in zip(paths, labelled_eras(paths, ["target"]), strict=True)
    ]
    shape = data_shape(
        [p.rows() for p in parts], features, params.bin_construct_sample_cnt, train_fraction=0.0
    )
    guard = plan_memory(shape, loader)  # what the step checks before binning
    prepared = bin_rows(
        parts,
        features,
        ["target"],
        params,
        work / "prepared",
        work / "bins",
        loader=loader,
        train_fraction=0.0,
    )
    bin_s = time.perf_counter() - started
    bin_peak = peak_rss_mib()
    after_bins = psutil.Process().memory_info().rss / MIB  # what binning left behind (allocator pools)

    reset_peak_rss()
    ticks: list[float] = []
    train_started = time.perf_counter()
    result = fit_final(
        prepared,
        "target",
        params,
        seed=0,
        models_dir=work / "models",
        on_progress=lambda *_: ticks.append(time.perf_counter()),
    )
    train_s = time.perf_counter() - train_started
    per_tree = (ticks[-1] - ticks[0]) / max(1, trees - 1) if len(ticks) > 1 else train_s / trees
    return {
        "rows": prepared.rows,
        "rows_by_file": {p.path.name: len(p.rows()) for p in parts},
        "features": n_features,
        "loader": prepared.bins.record.loader,
        "construct_s": prepared.bins.record.construct_seconds,
        "bin_s": bin_s,
        "bin_peak_mib": bin_peak,
        "train_s": train_s,
        "first_tree_at_s": (ticks[0] - train_started) if ticks else None,  # loading the bins + 1 tree
        "per_tree_s": per_tree,
        "train_peak_mib": peak_rss_mib(),
        "after_bins_mib": after_bins,
        "baseline_mib": baseline,
        "guard_estimates_mib": {k: v / MIB for k, v in guard.estimates_bytes.items()},
        "guard_available_mib": guard.available_bytes / MIB,
        "model_rows": result.rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-rows", type=int, default=FULL_TRAIN_ROWS)
    parser.add_argument("--validation-rows", type=int, default=FULL_VALIDATION_ROWS)
    parser.add_argument("--features", type=int, default=FULL_FEATURES)
    parser.add_argument("--trees", type=int, default=10, help="trees to train and time")
    parser.add_argument("--configured-trees", type=int, default=EXAMPLE_MODEL["n_estimators"])
    parser.add_argument("--loader", default="auto", choices=["auto", "arrow", "stream"])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-data")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(step_child(args.data, args.features, args.trees, args.loader, args.work)))
        return

    version_dir = labelled_dataset(args.data_dir, args.train_rows, args.validation_rows, args.features)
    with tempfile.TemporaryDirectory(prefix="numerflow-final-") as scratch:
        passed = ["--child", "--data", str(version_dir), "--features", str(args.features)]
        passed += ["--trees", str(args.trees), "--loader", args.loader, "--work", scratch]
        r = run_child("benchmarks.final_model", passed)
    report(r, args.trees, args.configured_trees)


def report(r: dict, trees: int, configured_trees: int) -> None:
    rows, features = r["rows"], r["features"]
    cells = rows * features
    guard = r["guard_estimates_mib"]
    by_file = ", ".join(f"{name} {count:,}" for name, count in r["rows_by_file"].items())
    print(
        f"\nMEASURED: final-model step on {rows:,} rows ({by_file}) x {features:,} features = "
        f"{cells:.3g} cells ({cells / GIB:.2f} GiB as int8), {trees} trees, one target"
    )
    print(
        f"  binning ({r['loader']} loader, both files in one pass): {r['bin_s']:.1f} s "
        f"(LightGBM construction {r['construct_s']:.1f} s); peak RSS {r['bin_peak_mib']:,.0f} MiB "
        f"= {r['bin_peak_mib'] * MIB / cells:.2f} B/cell; guard estimated {guard[r['loader']]:,.0f} MiB"
    )
    print(f"  after binning the process still held {r['after_bins_mib']:,.0f} MiB (allocator pools, kept)")
    print(
        f"  training (load bins + {trees} trees on every row, no subset): {r['train_s']:.1f} s, "
        f"{r['per_tree_s']:.3f} s a tree; peak RSS {r['train_peak_mib']:,.0f} MiB "
        f"= {r['train_peak_mib'] * MIB / cells:.2f} B/cell; guard estimated {guard['train_fold']:,.0f} MiB"
    )
    print(
        f"  child baseline (imports) {r['baseline_mib']:.0f} MiB; the guard saw "
        f"{r['guard_available_mib'] / 1024:.1f} GiB available"
    )
    load_s = (r["first_tree_at_s"] or 0.0) - r["per_tree_s"]
    print(
        f"  EXTRAPOLATED to {configured_trees:,} trees: {load_s + r['per_tree_s'] * configured_trees:,.0f} s "
        f"a target ({r['per_tree_s']:.3f} s a tree x {configured_trees:,} + {load_s:.1f} s loading)"
    )

    full_rows = FULL_TRAIN_ROWS + FULL_VALIDATION_ROWS
    full_cells = full_rows * FULL_FEATURES
    if cells >= full_cells:
        peak = max(r["bin_peak_mib"], r["train_peak_mib"]) * MIB
        print(f"\nfull size measured: step peak {peak / GIB:.1f} GiB; fits 24 GiB: {peak < MACHINE_BYTES}")
        return
    # The guard's per-cell model at full size, scaled by how far this run's measured peaks were
    # from its estimates here. Fixed costs (imports, the bin sample, buffers, memory the
    # allocators keep after binning, which training reuses) weigh more at small sizes, so the
    # ratio overstates the full-size peak: an upper bound. Seconds scale with the cells.
    full_shape = DataShape(
        rows=full_rows, features=FULL_FEATURES, sample_rows=20_000, group_rows=50_000,
        batch_rows=7_000, train_fraction=0.0,
    )  # fmt: skip
    estimates = estimate_peaks(full_shape)
    full_loader = "stream"  # what the guard picks at that size on a 24 GiB machine (arrow > half)
    bin_ratio = r["bin_peak_mib"] / guard[r["loader"]]
    train_ratio = r["train_peak_mib"] / guard["train_fold"]
    bin_full = estimates[full_loader] * bin_ratio
    train_full = estimates["train_fold"] * train_ratio
    scale = full_cells / cells
    print(
        f"\nEXTRAPOLATED (not run) to the full labelled set, {full_rows:,} x {FULL_FEATURES:,} = "
        f"{full_cells:.3g} cells ({full_cells / GIB:.1f} GiB as int8), {scale:.1f}x the measured cells:"
    )
    print(
        f"  binning ({full_loader}) peak at most about {bin_full / GIB:.1f} GiB (guard's estimate "
        f"{estimates[full_loader] / GIB:.1f} GiB x {bin_ratio:.2f} measured/estimated here"
        + ("" if r["loader"] == full_loader else f", measured with {r['loader']}")
        + f"), about {r['bin_s'] * scale / 60:.0f} min at this run's pace"
    )
    print(
        f"  training peak at most about {train_full / GIB:.1f} GiB (guard's estimate "
        f"{estimates['train_fold'] / GIB:.1f} GiB x {train_ratio:.2f}), "
        f"{r['per_tree_s'] * scale:.2f} s a tree, "
        f"{r['per_tree_s'] * scale * configured_trees / 60:.0f} min for {configured_trees:,} trees a target"
    )
    budget = MACHINE_BYTES * USABLE_FRACTION
    peak = max(bin_full, train_full)
    print(
        f"  24 GiB machine: step peak at most about {peak / GIB:.1f} GiB: "
        f"{'fits' if peak < MACHINE_BYTES else 'does NOT fit'} 24 GiB. The guard allows "
        f"{USABLE_FRACTION:.0%} of what is free ({budget / GIB:.1f} GiB if all 24 GiB were free) and "
        + (
            f"starts it with the {full_loader} loader when that much is free"
            if estimates[full_loader] <= budget
            else "stops the run, naming the settings"
        )
    )


if __name__ == "__main__":
    main()
