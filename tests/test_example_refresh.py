"""The README's first refresh: the shipped refresh example, end to end (plain mode)."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from svs.flows.cli import app
from svs.pipeline.store import PromptStore

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "refresh"


def test_example_files_are_what_the_generator_writes(tmp_path):
    copy = tmp_path / "refresh"
    copy.mkdir()
    (copy / "make_example.py").write_text((EXAMPLE / "make_example.py").read_text())
    subprocess.run([sys.executable, str(copy / "make_example.py")], check=True,
                   capture_output=True)
    for name in ("problems.jsonl", "rollouts.jsonl"):
        assert (copy / name).read_text() == (EXAMPLE / name).read_text(), name


def test_main_job_publishes_version_2_with_the_planted_labels(tmp_path):
    out = tmp_path / "svs-out"
    args = ["refresh", "--store", str(out / "store"), "--set", "demo",
            "--prompts", str(EXAMPLE / "problems.jsonl"),
            "--rollouts", str(EXAMPLE / "rollouts.jsonl"),
            "--config", str(EXAMPLE / "config.yaml"), "--report", str(out / "report"),
            "--export", f"verl={out}/{{name}}-v{{version}}.parquet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"report -> {out / 'report' / 'report.html'}" in result.output
    report = json.loads((out / "report" / "report.json").read_text())
    labels = {p["problem_id"]: p["label"] for p in report["problems"]}
    assert sorted(labels.values()).count("memorized") == 4
    assert sorted(labels.values()).count("solved_diverse") == 3
    assert sorted(labels.values()).count("learning") == 4
    assert sorted(labels.values()).count("unsolved") == 1
    v2 = PromptStore(out / "store").load("demo")
    assert v2.version == 2 and len(v2.problems) > 12
    assert any(p.synthesizer == "symbolic" for p in v2.problems)
    assert (out / "demo-v2.parquet").exists() and (out / "report" / "report.html").exists()
    # running it again publishes nothing new
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert PromptStore(out / "store").versions("demo") == [1, 2]
