"""The shipped CI workflows run exactly these commands: run them on the demo company.

The GitHub Actions workflow and the GitLab CI job in examples/ci are parsed, and the
steps that run shadowbill (and write the job summary) are executed with bash as the CI
would, first as main's pipeline (a full check, the baseline) and then as a pull
request's that edits one rule (a scoped check against main's results and configuration).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from demo_companies import demo_company

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "demo_company"
SALES_PRO = '- {from: "pro_month_*", price: advanced_month, quantity: seats}'

pytestmark = pytest.mark.slow


def _github_steps() -> tuple[list[str], dict[str, str]]:
    flow: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples/ci/billing-gate.github.yml").read_text()
    )
    job = flow["jobs"]["shadowbill"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    wanted = [r for r in runs if "shadowbill check" in r or "GITHUB_STEP_SUMMARY" in r]
    assert len(wanted) == 2  # the check and the job summary
    return wanted, {k: str(v) for k, v in job.get("env", {}).items()}


def _gitlab_steps() -> tuple[list[str], dict[str, str]]:
    job = yaml.safe_load((ROOT / "examples/ci/billing-gate.gitlab-ci.yml").read_text())[
        "billing-gate"
    ]
    wanted = [s for s in job["script"] if "shadowbill check" in s]
    assert len(wanted) == 1
    return wanted, {k: str(v) for k, v in job["variables"].items()}


def _repo(folder: Path, edit: bool) -> Path:
    (folder / "billing").mkdir(parents=True)
    for f in EXAMPLES.glob("*.yaml"):
        shutil.copy(f, folder / "billing" / f.name)
    if edit:
        rollout = folder / "billing" / "rollout.yaml"
        rollout.write_text(
            rollout.read_text().replace(SALES_PRO, SALES_PRO.replace("seats}", '"seats + 1"}'), 1)
        )
    (folder / "snapshot").symlink_to(demo_company(300, 12, 11).snapshot)
    return folder


def _run(steps: list[str], env: dict[str, str], cwd: Path) -> Path:
    summary = cwd / "step-summary.md"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {**os.environ, **env, "PATH": path, "GITHUB_STEP_SUMMARY": str(summary)}
    for script in steps:
        # GitHub runs `run:` with `bash --noprofile --norc -eo pipefail`
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=cwd, env=full_env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return summary


@pytest.mark.parametrize("flavour", ["github", "gitlab"])
def test_the_workflow_checks_main_then_a_pull_request_scoped_to_its_change(
    flavour: str, tmp_path: Path
) -> None:
    steps, env = _github_steps() if flavour == "github" else _gitlab_steps()
    main = _repo(tmp_path / "main", edit=False)
    _run(steps, env, main)
    assert (main / "results" / "findings.parquet").is_file()

    pr = _repo(tmp_path / "pr", edit=True)
    shutil.copytree(main / "results", pr / "baseline")  # restored from main's artifact
    shutil.copytree(main / "billing", pr / "base" / "billing")  # main's configuration
    summary_file = _run(steps, env, pr)
    text = (pr / "results" / "summary.md").read_text()
    assert "Scoped to the change" in text and "rules edited: phase 2: sales\\_pro" in text
    findings = pd.read_parquet(pr / "results" / "findings.parquet")
    before = pd.read_parquet(pr / "baseline" / "findings.parquet")
    new = (~findings["finding_id"].isin(before["finding_id"])).sum()
    resolved = (~before["finding_id"].isin(findings["finding_id"])).sum()
    assert f"{new:,} new, {resolved:,} resolved" in text
    if flavour == "github":
        assert summary_file.read_text() == text
