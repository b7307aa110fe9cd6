import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from svs.flows.cli import app
from svs.pipeline.memorization import Diagnosis

MEMORIZED = ("First we multiply both sides by the denominator to clear it, then we collect "
             "the like terms on the left, and dividing by the coefficient gives the value. "
             "So the answer is \\boxed{{{answer}}}.")
METHODS = (
    "Let us try small cases one by one and look for a pattern in the values we get; the "
    "pattern repeats with period four, so the answer is \\boxed{{{answer}}}.",
    "Draw the figure and use similar triangles: the ratio of the sides equals the ratio of "
    "heights, which pins down the unknown length, giving \\boxed{{{answer}}}.",
    "Set up a generating function, expand it as a geometric series and read off the "
    "coefficient of the required power, which is \\boxed{{{answer}}}.",
    "Work modulo nine: the digit sums reduce the expression to a single residue and the only "
    "candidate that fits the bound is \\boxed{{{answer}}}.",
)


def _rollouts(kind: int, answer: str) -> list[tuple[str, bool]]:
    """8 (completion, correct) pairs: 0 memorized, 1 diverse, 2 learning, 3 unsolved."""
    if kind == 0:
        return [(MEMORIZED.format(answer=answer) + " " * i, True) for i in range(8)]
    if kind == 1:
        return [(METHODS[i % 4].format(answer=answer), True) for i in range(8)]
    if kind == 2:
        return [(METHODS[i % 4].format(answer=answer if i < 3 else "0"), i < 3) for i in range(8)]
    return [(f"I guess it is \\boxed{{{i + 100}}}.", False) for i in range(8)]


def _verl_folder(root: Path) -> Path:
    root.mkdir()
    for step in (1, 2):
        lines = []
        for kind in range(4):
            question = f"Question number {kind}: find x."
            for completion, right in _rollouts(kind, str(kind + 11)):
                lines.append(json.dumps({
                    "input": f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n",
                    "output": completion, "gts": str(kind + 11), "score": float(right),
                    "step": step, "problem_id": f"q{kind}"}))
        (root / f"{step}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _trl_folder(root: Path) -> Path:
    out = root / "completions"
    out.mkdir(parents=True)
    rows = []
    for kind in range(4):
        for completion, right in _rollouts(kind, str(kind + 11)):
            rows.append({"step": 5, "prompt": f"Question number {kind}: find x.",
                         "completion": completion, "accuracy_reward": float(right),
                         "format_reward": 1.0, "advantage": 0.0})
    pq.write_table(pa.Table.from_pylist(rows), out / "completions_00005.parquet")
    return root


def _check_report(folder: Path, expected: dict[str, str]) -> Diagnosis:
    diagnosis = Diagnosis.from_json((folder / "report.json").read_text())
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    labels = {p.prompt.split("Question number ")[1][0]: p.label for p in diagnosis.problems}
    assert labels == expected
    return diagnosis


EXPECTED = {"0": "memorized", "1": "solved_diverse", "2": "learning", "3": "unsolved"}


def test_diagnose_a_verl_dump_folder_with_no_flags(tmp_path, monkeypatch):
    dump = _verl_folder(tmp_path / "rollout_data")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["diagnose", str(dump)])
    assert result.exit_code == 0, result.output
    assert "memorized" in result.output and "report.html" in result.output
    diagnosis = _check_report(tmp_path / "svs-diagnosis", EXPECTED)
    assert diagnosis.steps == (1, 2)
    assert "Per-step trends" in (tmp_path / "svs-diagnosis" / "report.html").read_text()
    assert "steps 1 -> 2: mean solve rate" in result.output
    seed = diagnosis["q2"]
    assert seed.is_seed and len(seed.correct_solutions) == 3


def test_diagnose_a_trl_completions_folder_with_no_flags(tmp_path, monkeypatch):
    run = _trl_folder(tmp_path / "trl-output")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["diagnose", str(run)])
    assert result.exit_code == 0, result.output
    _check_report(tmp_path / "svs-diagnosis", EXPECTED)


def test_diagnose_reports_reader_errors_with_file_and_line(tmp_path):
    bad = tmp_path / "1.jsonl"
    bad.write_text(json.dumps({"input": "q", "output": "a", "gts": "1", "score": 1}) + "\n[1, 2]\n")
    result = CliRunner().invoke(app, ["diagnose", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "1.jsonl:2" in result.output
    result = CliRunner().invoke(app, ["diagnose", str(bad), "--out", str(tmp_path / "o"), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 malformed rows" in result.output


def test_diagnose_rejects_bad_thresholds(tmp_path):
    dump = _verl_folder(tmp_path / "d")
    result = CliRunner().invoke(app, ["diagnose", str(dump), "--out", str(tmp_path / "o"),
                                      "--cluster-threshold", "2"])
    assert result.exit_code == 2
    assert "cluster_threshold" in result.output


def test_diagnose_survives_invalid_utf8_and_hostile_text(tmp_path):
    rows = [json.dumps({"problem_id": "h", "prompt": "Find x.", "answer": "1",
                        "completion": f"bad bytes then \\boxed{{1}} {i}", "correct": True}).encode()
            for i in range(4)]
    rows[1] = rows[1].replace(b"bad bytes", b"bad \xff\xfe bytes")
    rows.append(json.dumps({"problem_id": "h", "prompt": "Find x.", "answer": "1",
                            "completion": "\\boxed{" * 5000 + "\x00", "correct": False}).encode())
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    result = CliRunner().invoke(app, ["diagnose", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    diagnosis = Diagnosis.from_json((tmp_path / "o" / "report.json").read_text())
    assert diagnosis["h"].metrics["diversity/n"] == 5


def test_benchmark_scripts_run_at_small_size(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    bench = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "diagnose_bench.py"), "--problems", "40",
         "--subset", "10", "--data", str(tmp_path / "bench.parquet")],
        capture_output=True, text=True, timeout=240)
    assert bench.returncode == 0, bench.stderr
    assert "parquet -> report.json" in bench.stdout and "ratio" in bench.stdout
    lines = bench.stdout.strip().splitlines()
    assert lines[-1].split()[-2] == "ratio"  # the headline, last, ends in `ratio X.X`
    result = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    assert result["peak_gb"] > 0 and result["rollouts_per_s"] > 0
    planted = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "planted.py"), "--problems", "60"],
        capture_output=True, text=True, timeout=240)
    assert planted.returncode == 0, planted.stdout + planted.stderr
    assert "memorized precision" in planted.stdout
