"""`bench/soak.py` run briefly, as an operator runs it: one worker, one fault (PostgreSQL
restarted mid-run), a handful of payments and members. Its end checks (counted in the SBC
simulator: nothing lost, nothing posted twice, every member synced once) must pass, and
it must leave its JSON figures and its chart behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import _free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]


def test_a_short_soak_with_a_database_restart_passes_its_checks_and_writes_its_figures(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable,
        str(ROOT / "bench" / "soak.py"),
        "--minutes",
        "0.1",
        "--workers",
        "1",
        "--rate",
        "5",
        "--members",
        "40",
        "--pairs",
        "1x1",
        "--faults",
        "pg-restart",
        "--drain-minutes",
        "1.5",
        # a job whose worker the restart took down (the sync, a reconciliation run) is
        # taken over after 5 s, not production's 30
        "--job-lease-seconds",
        "5",
        "--base-port",
        "9470",
        "--pg-port",
        str(_free_port()),
        "--out",
        str(tmp_path),
    ]
    soak = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    try:
        output, _ = soak.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        soak.terminate()  # the soak stops its servers and workers on SIGTERM
        output, _ = soak.communicate(timeout=60)
        pytest.fail(f"the soak did not finish in 180 s:\n{output[-3000:]}")
    assert soak.returncode == 0, output[-3000:]
    report = json.loads((tmp_path / "soak.json").read_text())
    (run,) = report["runs"]
    assert run["workers"] == 1
    assert [f["label"] for f in run["faults"] if f["label"] == "PostgreSQL restart"]
    checks = run["checks"]
    assert checks["passed"], checks["failures"]
    assert checks["events_sent"] > 0
    assert checks["posted_exactly_once"] == checks["events_sent"]
    assert (checks["lost"], checks["double_posted"], checks["members_written_twice"]) == (0, 0, 0)
    assert checks["members_synced"] == 40
    assert report["scaling"][0]["workers"] == 1
    assert set(run["peak_rss_mib"]) >= {"serve", "worker", "postgres", "sbc_simulator"}
    chart = (tmp_path / "soak.svg").read_text()
    assert chart.startswith("<svg")
    assert "1 worker" in chart
