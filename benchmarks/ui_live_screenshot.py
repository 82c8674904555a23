"""The live-scores chart as the Prefect UI shows it, screenshotted by headless Chromium.

Starts a real `prefect server start` (UI on, SQLite, a private PREFECT_HOME, a free port) and the
project's loopback fake Numerai API serving a small synthetic dataset; saves the API key with
`numerflow setup credentials`; runs the weekly flow (`numerflow run`: download, train, upload
round 1001 as my_model). The fake then serves my_model's daily scores of rounds 968-1001
(around the run's validation figures up to round 984, near zero after: a decay; resolved up to
993, the newest still scoring; a corr60 that keeps updating), and the ledger
is given entries saying the weekly run submitted rounds 968-1000 too, so every round has its
validation expectation. `numerflow submit` (round 1001 already uploaded: skipped) then reads the
scores back and publishes the `numerflow-live-scores` artifact. Saved in --out:

    live-artifact-v1.png   the artifact's page in the v1 UI: figures, chart, pending and resolved tables
    live-artifact-v2.png   the same in the v2 UI
    live.png               the chart itself, as drawn from the stored history

    uv run python -m benchmarks.ui_live_screenshot [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.chromium import Browser
from benchmarks.common import REPO
from benchmarks.ui_chart_screenshot import FAST, _wait_healthy
from numerflow.data.synth import SynthSpec, generate
from numerflow.live.compare import round_table
from numerflow.live.fetch import run_figures
from numerflow.live.report import draw_chart
from numerflow.live.store import load_history
from numerflow.numerai import ledger
from tests.fake_numerai import FakeNumerai, daily_scores
from tests.processes import BIN, ProcessGroup, free_port

KEY = "numerflow-live-scores"
MODEL, FIRST, RESOLVED, LAST = "my_model", 968, 993, 1001
CHART_IMG = "[...document.images].find(i => i.src.startsWith('data:image/png') && i.alt.includes('live'))"
CHART_SHOWN = f"(() => {{ const i = {CHART_IMG}; return !!i && i.complete && i.naturalWidth > 0; }})()"
CHART_SIZE = f"(() => {{ const i = {CHART_IMG}; return [i.naturalWidth, i.width, i.height]; }})()"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="folder for the screenshots (default: a temp dir)")
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix="numerflow-ui-live-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_HOME": str(out / "prefect-home"), "PREFECT_API_URL": f"{base}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    Path(env["PREFECT_HOME"]).mkdir(exist_ok=True)
    server = ProcessGroup(out, REPO, env)
    fake = FakeNumerai()
    try:
        server.spawn("server", ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)])
        version_dir = generate(
            out / "data-source", SynthSpec(eras=240, rows_per_era=150, features=30, seed=7)
        )
        fake.add_dataset_dir(version_dir)
        fake.round_files[("v5.2/live.parquet", LAST)] = (version_dir / "live.parquet").read_bytes()
        fake.round_number = LAST
        fake.start()
        env["NUMERAI_API_URL"] = fake.api_url  # every numerflow call talks to the fake
        _wait_healthy(f"{base}/api")
        sets = _settings(out, fake)
        _cli(["setup", "credentials", "--block-name", "numerai", "--model", f"{MODEL}={fake.models[MODEL]}"],
             env | {"NUMERAI_PUBLIC_ID": fake.public_id, "NUMERAI_SECRET_KEY": fake.secret_key})  # fmt: skip
        weekly = _cli(["run", *sets], env)
        run_id = Path(next(line for line in weekly.splitlines() if line.startswith("run:")).split()[1]).name
        _plant_scores(fake, out / "runs", run_id)
        _cli(["submit", *sets], env)
        (out / "live.png").write_bytes(draw_chart(MODEL, round_table(load_history(out / "runs", MODEL))))
        artifact = _artifact(f"{base}/api")
        with Browser(height=2400) as browser:
            for ui, prefix in (("v1", ""), ("v2", "/v2")):
                # leave the previous page first, or its chart satisfies the next page's check
                browser.open("about:blank", "document.URL === 'about:blank' && document.images.length === 0")
                browser.open(f"{base}{prefix}/artifacts/artifact/{artifact['id']}", CHART_SHOWN)
                natural, width, height = browser.evaluate(CHART_SIZE)
                path = browser.screenshot(out / f"live-artifact-{ui}.png")
                print(f"wrote {path}: the chart decoded ({natural} px wide), shown at {width} x {height} px")
    finally:
        fake.stop()
        server.stop()
    print(f"screenshots in {out}")


def _settings(out: Path, fake: FakeNumerai) -> list[str]:
    settings = FAST | {
        "training.data.dir": str(out / "data"),
        "training.work_dir": str(out / "runs"),
        "training.submission.path": str(out / "submission.csv"),
        "training.models": '["my_model"]',
        "training.numerai.download": "true",
        "training.numerai.upload": "true",
        "training.numerai.api_url": fake.api_url,
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def _cli(args: list[str], env: dict[str, str]) -> str:
    started = time.monotonic()
    done = subprocess.run([BIN / "numerflow", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"numerflow {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    print(f"numerflow {args[0]}: {time.monotonic() - started:.0f} s")
    return done.stdout


def _plant_scores(fake: FakeNumerai, work_dir: Path, run_id: str) -> None:
    """Live CORR and MMC drawn around what the run's validation promised for the older rounds,
    then near zero (a decay); the newest rounds still scoring."""
    promised = run_figures(work_dir / run_id / "slots" / MODEL)
    assert promised is not None and promised.corr_mean is not None, "the weekly run wrote no figures"
    rng = random.Random(3)
    rows = []
    for number in range(FIRST, LAST + 1):
        share = 1.0 if number < 985 else 0.1
        corr = rng.gauss(promised.corr_mean * share, promised.corr_std or 0.0)
        mmc = rng.gauss((promised.mmc_mean or 0.0) * share, promised.mmc_std or 0.0)
        finals = {"v2_corr20": corr, "mmc": mmc, "bmc": rng.gauss(0.002, 0.01), "corr60": corr * 1.5}
        rows += daily_scores(number, finals, days=45 if number <= RESOLVED else 2 * (LAST - number) + 1)
        if number < LAST:  # the weekly run uploaded round 1001 itself
            ledger.append(work_dir, round=number, model=MODEL, trained_run_id=run_id,
                          submission_id=f"simulated-{number}", sha256="-", rows=0)  # fmt: skip
    fake.scores[fake.models[MODEL]] = rows


def _artifact(api: str) -> dict:
    body = {"artifacts": {"key": {"any_": [KEY]}}, "sort": "CREATED_DESC", "limit": 1}
    [artifact] = httpx.post(f"{api}/artifacts/filter", json=body, timeout=30).json()
    print(f"{KEY}: {len(artifact['data']):,} characters of markdown")
    return artifact


if __name__ == "__main__":
    main()
