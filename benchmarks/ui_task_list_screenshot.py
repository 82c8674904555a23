"""The weekly run's steps as the Prefect UI lists them, screenshotted by headless Chromium.

Runs the weekly flow on synthetic data against a throwaway Prefect server (as
`benchmarks/ui_chart_screenshot.py` does), prints the run's task runs and subflow runs in the order
they started, with their states, and saves in --out:

    run-graph-v1.png   the flow run's page in the v1 UI: its graph names every task and subflow run
    run-graph-v2.png   the same in the v2 UI

About 2 minutes on 2 cores.

    uv run python -m benchmarks.ui_task_list_screenshot [--out DIR]
"""

from __future__ import annotations

import time

import httpx

from benchmarks.chromium import Browser
from benchmarks.ui_chart_screenshot import RUN_GRAPH_S, screenshot_args, weekly_run_on_server

COMPLETED = "document.body.innerText.includes('Completed')"


def main() -> None:
    out, eras = screenshot_args(__doc__, eras=120, prefix="numerflow-ui-tasks-")
    with weekly_run_on_server(out, eras) as (base, _):
        flow_run_id = _steps(f"{base}/api")
        with Browser(width=1600, height=1400) as browser:
            # the run's graph names every task and subflow run; the Task Runs tab's list of this
            # UI build stayed empty ("No task runs") under its count, so the graph is the picture
            for ui, prefix in (("v1", ""), ("v2", "/v2")):
                browser.open(f"{base}{prefix}/runs/flow-run/{flow_run_id}", COMPLETED)
                time.sleep(RUN_GRAPH_S)
                print(f"wrote {browser.screenshot(out / f'run-graph-{ui}.png')}")
    print(f"screenshots in {out}")


def _steps(api: str) -> str:
    """Print the weekly run's task runs and subflow runs in start order; return its id."""
    runs = {"flows": {"name": {"any_": ["numerflow-weekly"]}}, "sort": "START_TIME_DESC", "limit": 1}
    [flow_run] = httpx.post(f"{api}/flow_runs/filter", json=runs, timeout=30).json()
    mine = {"flow_runs": {"id": {"any_": [flow_run["id"]]}}, "sort": "EXPECTED_START_TIME_ASC"}
    tasks = httpx.post(f"{api}/task_runs/filter", json=mine, timeout=30).json()
    print(f"flow run {flow_run['name']} ({flow_run['state_type']}): {len(tasks)} task runs")
    for task in tasks:
        print(f"  {task['name']:<40} {task['state_name']}")
    return flow_run["id"]


if __name__ == "__main__":
    main()
