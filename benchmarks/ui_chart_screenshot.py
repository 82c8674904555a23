"""The weekly run's validation chart as the Prefect UI shows it, screenshotted by headless Chromium.

Starts a real `prefect server start` (UI on, SQLite, a private PREFECT_HOME, a free port),
writes a small synthetic Numerai dataset with its benchmark-model and meta-model files (so MMC
and BMC are computed and charted), runs the weekly flow against that server through the CLI
(`numerflow run`, few trees), then opens the run in Debian's chromium and saves, in --out:

    run-artifacts-v1.png   the flow run's page, Artifacts tab, in the v1 UI (the run's log links here)
    run-artifacts-v2.png   the same in the v2 UI (the server's default for its home page)
    summary-v1.png         the run summary artifact's page in the v1 UI: lead table, then the chart
    summary-v2.png         the same page in the v2 UI
    validation.png         the chart file written beside the slot's manifest

On each artifact page it checks that the browser decoded the chart (`naturalWidth` > 0) and
prints the rendered size. About 2 minutes on 2 cores.

    uv run python -m benchmarks.ui_chart_screenshot [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.chromium import Browser
from benchmarks.common import REPO
from numerflow.data.synth import SynthSpec, generate
from numerflow.runs.manifest import CHART_FILE
from tests.processes import BIN, ProcessGroup, free_port

SUMMARY_KEY = "numerflow-run-summary"
CHART_IMG = "[...document.images].find(i => i.src.startsWith('data:image/png') && i.alt.includes('chart'))"
CHART_SHOWN = f"(() => {{ const i = {CHART_IMG}; return !!i && i.complete && i.naturalWidth > 0; }})()"
CHART_SIZE = f"(() => {{ const i = {CHART_IMG}; return [i.naturalWidth, i.width, i.height]; }})()"
RUN_GRAPH_S = 3  # v2 draws the run's graph after the cards; wait for it, for a whole picture
FAST = {  # a few trees on the small data: the chart, not the model, is under test
    "training.data.era_stride": 1,
    "training.folds.n_folds": 3,
    "training.folds.embargo_eras": 4,
    "program_input_params.params.n_estimators": 60,
    "program_input_params.params.learning_rate": 0.1,
    "program_input_params.params.colsample_bytree": 0.5,
}


def main() -> None:
    out, eras = screenshot_args(__doc__, eras=240, prefix="numerflow-ui-chart-")
    with weekly_run_on_server(out, eras) as (base, run_dir):
        shutil.copyfile(run_dir / "slots" / "main" / CHART_FILE, out / CHART_FILE)
        flow_run_id, artifact = _summary_artifact(f"{base}/api")
        _screenshots(base, flow_run_id, artifact, out)
    print(f"screenshots in {out}")


def screenshot_args(doc: str | None, eras: int, prefix: str) -> tuple[Path, int]:
    """The command line's --out folder (created; default a new temp dir) and --eras."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the screenshots (default: a temp dir)")
    parser.add_argument("--eras", type=int, default=eras, help="eras of synthetic data")
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out, args.eras


@contextmanager
def weekly_run_on_server(out: Path, eras: int) -> Iterator[tuple[str, Path]]:
    """A throwaway Prefect server (private PREFECT_HOME in `out`, a free port) on which a weekly
    run of `eras` eras of synthetic data has finished: its base URL and the run folder. The
    server stops when the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(out / "prefect-home"),
        "PREFECT_API_URL": f"{base}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    Path(env["PREFECT_HOME"]).mkdir(exist_ok=True)
    server = ProcessGroup(out, REPO, env)
    try:
        server.spawn("server", ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)])
        generate(out / "data", SynthSpec(eras=eras, rows_per_era=150, features=30, seed=7))
        _wait_healthy(f"{base}/api")
        yield base, _weekly_run(out, env)
    finally:
        server.stop()


def _wait_healthy(api: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server at {api} not healthy in {timeout:.0f} s")


def _weekly_run(out: Path, env: dict[str, str]) -> Path:
    """`numerflow run` on the synthetic data against the server; returns the run folder."""
    settings = FAST | {
        "training.data.dir": str(out / "data"),
        "training.work_dir": str(out / "runs"),
        "training.submission.path": str(out / "submission.csv"),
    }
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    started = time.monotonic()
    command = [BIN / "numerflow", "run", *sets]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    print(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"numerflow run failed:\n{done.stderr[-4000:]}")
    print(f"weekly run: {time.monotonic() - started:.0f} s")
    line = next(line for line in done.stdout.splitlines() if line.startswith("run:"))
    return Path(line.split(":", 1)[1].strip())


def _summary_artifact(api: str) -> tuple[str, dict]:
    """The weekly flow run's id and its run summary artifact."""
    flow_filter = {"flows": {"name": {"any_": ["numerflow-weekly"]}}, "sort": "START_TIME_DESC", "limit": 1}
    [flow_run] = httpx.post(f"{api}/flow_runs/filter", json=flow_filter, timeout=30).json()
    artifact_filter = {
        "artifacts": {"key": {"any_": [SUMMARY_KEY]}, "flow_run_id": {"any_": [flow_run["id"]]}}
    }
    [artifact] = httpx.post(f"{api}/artifacts/filter", json=artifact_filter, timeout=30).json()
    print(f"flow run {flow_run['name']} ({flow_run['state_type']})")
    print(f"{SUMMARY_KEY}: {len(artifact['data']):,} characters of markdown")
    return flow_run["id"], artifact


def _screenshots(base: str, flow_run_id: str, artifact: dict, out: Path) -> None:
    # the cards are there once the summary's card shows its description
    cards = f"document.body.innerText.includes({json.dumps(artifact['description'])})"
    artifact_id = artifact["id"]
    with Browser() as browser:
        # v1 reads its tab from the URL only once the run has loaded: click the tab instead
        browser.open(f"{base}/runs/flow-run/{flow_run_id}", "!!document.querySelector('#artifacts')")
        browser.wait("document.body.innerText.includes('Completed')")
        browser.evaluate("document.querySelector('#artifacts').click()")
        browser.wait(cards)
        print(f"wrote {browser.screenshot(out / 'run-artifacts-v1.png')}")
        browser.open(f"{base}/v2/runs/flow-run/{flow_run_id}?tab=Artifacts", cards)
        time.sleep(RUN_GRAPH_S)
        print(f"wrote {browser.screenshot(out / 'run-artifacts-v2.png')}")
        for ui, prefix in (("v1", ""), ("v2", "/v2")):
            browser.open(f"{base}{prefix}/artifacts/artifact/{artifact_id}", CHART_SHOWN)
            natural, width, height = browser.evaluate(CHART_SIZE)
            path = browser.screenshot(out / f"summary-{ui}.png")
            print(f"wrote {path}: the chart decoded ({natural} px wide), shown at {width} x {height} px")


if __name__ == "__main__":
    main()
