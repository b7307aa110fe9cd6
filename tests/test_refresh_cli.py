"""`svs import / refresh / versions / diff / rollback` end to end, including crashes.

The crash tests run `svs refresh` in a child process with SVS_STORE_FAULT set, which
makes the store SIGKILL its own process at a named point of writing or publishing.
"""

import json
import os
import random
import re
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from svs.flows.cli import app
from svs.pipeline.store import PromptStore
from svs.pipeline.store_files import FAULT_ENV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = [(f"What is ${a} + {b}$?", str(a + b)) for a, b in
            [(3, 4), (12, 30), (7, 8), (21, 5), (9, 9), (14, 6)]]
CORRECT_OF_8 = [8, 2, 8, 1, 0, 3]  # memorized, seed, memorized, seed, unsolved, seed


@pytest.fixture
def workdir(tmp_path):
    rng = random.Random(0)
    with open(tmp_path / "problems.jsonl", "w") as handle:
        for text, answer in PROBLEMS:
            handle.write(json.dumps({"problem": text, "answer": answer}) + "\n")
    with open(tmp_path / "rollouts.jsonl", "w") as handle:
        for index, ((text, answer), n_correct) in enumerate(zip(PROBLEMS, CORRECT_OF_8, strict=True)):
            for k in range(8):
                if k < n_correct and n_correct == 8:
                    completion = f"The sum is \\boxed{{{answer}}}."
                elif k < n_correct:
                    completion = f"Step {k}: adding gives {rng.random():.4f} then \\boxed{{{answer}}}."
                else:
                    completion = f"I guess \\boxed{{{int(answer) + k + 1}}}."
                handle.write(json.dumps({"problem_id": f"trainer-{index}", "prompt": text,
                                         "answer": answer, "completion": completion,
                                         "correct": k < n_correct, "step": 3}) + "\n")
    # symbolic rewrites need no policy, so the refresh runs without a model
    (tmp_path / "refresh.yaml").write_text("synthesizers: [symbolic]\n"
                                           "refresh: {memorized_action: retire}\n")
    return tmp_path


# the plain composition: no Prefect server per command (the flow has its own tests)
PLAIN = {"SVS_NO_PREFECT": "1"}


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=PLAIN)


def refresh_args(workdir):
    return ["refresh", "--store", workdir / "store", "--set", "demo", "--rollouts",
            workdir / "rollouts.jsonl", "--config", workdir / "refresh.yaml"]


def refresh_process(workdir, fault):
    env = {**os.environ, **PLAIN, FAULT_ENV: fault}
    code = "import sys; from svs.flows.cli import app; sys.argv[0] = 'svs'; app()"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, refresh_args(workdir))],
                            env=env, cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def imported(workdir):
    result = cli("import", workdir / "problems.jsonl", "--store", workdir / "store", "--set", "demo")
    assert result.exit_code == 0, result.output
    return PromptStore(workdir / "store")


def test_import_refresh_diff_versions_rollback(workdir):
    store = imported(workdir)
    assert store.load("demo").version == 1
    result = cli(*refresh_args(workdir))
    assert result.exit_code == 0, result.output
    assert "demo@v2: published" in result.output
    assert "label memorized" in result.output and "refresh/mix_cap" in result.output
    v2 = store.load("demo")
    assert v2.version == 2 and v2.parent == 1
    retired = {p.id for p in store.load("demo", 1).problems} - {p.id for p in v2.problems}
    assert len(retired) == 2 and set(v2.manifest["summary"]["retired"].values()) == {"memorized"}
    added = [p for p in v2.problems if p.id not in store.load("demo", 1).weights]
    assert added and all(p.synthesizer == "symbolic" and p.generation == 1 for p in added)
    assert v2.diagnosis["format"] == "svs-diagnosis/1"
    assert {r["reason"] for r in v2.rejects} >= {"mix_cap"}
    diff = cli("diff", "v1", "v2", "--store", workdir / "store", "--set", "demo", "--json")
    data = json.loads(diff.output)
    assert data["retired_by_reason"] == {"memorized": 2}
    assert set(data["added_by_synthesizer"]) == {"symbolic"}
    table = cli("diff", "demo@v1", "--store", workdir / "store")
    assert "retired" in table.output and "memorized" in table.output
    versions = cli("versions", "--store", workdir / "store", "--set", "demo")
    assert "v2 *" in versions.output
    # the same inputs again: nothing new
    again = cli(*refresh_args(workdir))
    assert "already published" in again.output and store.versions("demo") == [1, 2]
    back = cli("rollback", "--store", workdir / "store", "--set", "demo")
    assert back.exit_code == 0 and "v2 -> v1" in back.output
    assert store.current("demo") == 1


def test_refresh_imports_a_plain_file_first(workdir):
    args = refresh_args(workdir) + ["--prompts", workdir / "problems.jsonl"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    store = PromptStore(workdir / "store")
    assert store.versions("demo") == [1, 2]
    assert store.manifest("demo", 1)["note"] == "import problems.jsonl"


def test_clear_errors(workdir):
    missing = cli("versions", "--store", workdir / "store", "--set", "nope")
    assert missing.exit_code == 2 and "no prompt set 'nope'" in missing.output
    imported(workdir)
    twice = cli("import", workdir / "problems.jsonl", "--store", workdir / "store", "--set", "demo")
    assert twice.exit_code == 2 and "--add" in twice.output
    (workdir / "bad.yaml").write_text("refresh: {max_size: 3}\n")
    bad = cli("refresh", "--store", workdir / "store", "--set", "demo", "--rollouts",
              workdir / "rollouts.jsonl", "--config", workdir / "bad.yaml")
    assert bad.exit_code == 2 and "unknown key(s) ['max_size'] in config section 'refresh'" in bad.output
    no_model = cli("refresh", "--store", workdir / "store", "--set", "demo")
    assert no_model.exit_code == 2 and "--model" in no_model.output


def test_import_add_and_trainer_format_round_trip(workdir):
    store = imported(workdir)
    more = workdir / "more.jsonl"
    more.write_text(json.dumps({"question": "What is $2 + 2$?", "answer": "4"}) + "\n"
                    + json.dumps({"question": PROBLEMS[0][0], "answer": PROBLEMS[0][1]}) + "\n")
    added = cli("import", more, "--store", workdir / "store", "--set", "demo", "--add")
    assert added.exit_code == 0 and "demo@v2: 1 problems added, 1 duplicates skipped" in added.output
    out = workdir / "verl.parquet"
    exported = cli("export", "--format", "verl", "--out", out, "--store", workdir / "store",
                   "--set", "demo")
    assert exported.exit_code == 0, exported.output
    back = cli("import", out, "--format", "verl", "--store", workdir / "store", "--set", "copy")
    assert back.exit_code == 0, back.output
    assert store.load("copy").problems == store.load("demo").problems


def _state_after_crash(store):
    current = store.current("demo")
    store.load("demo")  # the current version reads back, checksums verified
    return current


@pytest.mark.parametrize("point,current_after,outcome", [
    ("problems_written", 1, "published"),
    ("before_rename", 1, "published"),
    ("after_rename", 1, "adopted"),
    ("staging_started", 1, "published"),
    ("before_manifest", 1, "published"),
    ("after_pointer", 2, "already"),
])
def test_sigkill_during_refresh_leaves_a_readable_current_version(workdir, point, current_after,
                                                                  outcome):
    store = imported(workdir)
    process = refresh_process(workdir, f"{point}:kill")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == -9, stderr
    assert _state_after_crash(store) == current_after
    result = cli(*refresh_args(workdir))
    assert result.exit_code == 0, result.output
    expected = {"published": "demo@v2: published", "adopted": "finished before a crash",
                "already": "already published"}[outcome]
    assert expected in result.output
    assert store.current("demo") == 2 and store.versions("demo") == [1, 2]
    assert not any((workdir / "store" / "demo" / "staging").iterdir())
    assert store.load("demo").parent == 1


def test_two_concurrent_refreshes_one_publishes_the_other_fails_clearly(workdir):
    store = imported(workdir)
    release = workdir / "release"
    first = refresh_process(workdir, f"before_rename:wait:{release}")
    deadline = time.monotonic() + 120
    while not (workdir / "release.reached").exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = cli(*refresh_args(workdir))
    assert second.exit_code == 2
    assert "prompt set 'demo' is locked by another refresh" in second.output
    assert "nothing was written by this run" in second.output
    release.touch()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert "demo@v2: published" in stdout
    assert store.versions("demo") == [1, 2] and store.current("demo") == 2
    # nothing lost: the loser re-run sees the winner's version of the same inputs
    assert "already published" in cli(*refresh_args(workdir)).output


@pytest.mark.slow
def test_new_user_plain_jsonl_rollouts_and_a_tiny_model_give_version_2(tmp_path, toy_policy_dir):
    """As a new user: problems + rollouts + a local model, one `svs refresh`, then diff."""
    from tiny_models import SEED_PROBLEM, SEED_SOLUTION, TOY_TEMPLATE

    problems = [(SEED_PROBLEM.text, SEED_PROBLEM.answer), ("What is 10 + 5?", "15"),
                ("What is 2 + 9?", "11")]
    with open(tmp_path / "problems.jsonl", "w") as handle:
        for text, answer in problems:
            handle.write(json.dumps({"problem": text, "answer": answer}) + "\n")
    completions = {SEED_PROBLEM.text: [SEED_SOLUTION] * 2 + ["\\boxed{8}"] * 6,  # a seed
                   "What is 10 + 5?": ["10 + 5 = \\boxed{15}"] * 8,  # memorized
                   "What is 2 + 9?": ["\\boxed{12}"] * 8}  # unsolved
    with open(tmp_path / "rollouts.jsonl", "w") as handle:
        for index, (text, answer) in enumerate(problems):
            for completion in completions[text]:
                handle.write(json.dumps({"problem_id": f"q{index}", "prompt": text,
                                         "answer": answer, "completion": completion,
                                         "step": 10}) + "\n")
    (tmp_path / "template.txt").write_text(TOY_TEMPLATE)
    (tmp_path / "refresh.yaml").write_text(json.dumps({
        "synthesizers": ["svs"],
        "svs": {"template_path": str(tmp_path / "template.txt"), "max_new_tokens": 40},
        "consistency": {"max_new_tokens": 16}}))
    args = ["refresh", "--store", tmp_path / "store", "--set", "demo",
            "--prompts", tmp_path / "problems.jsonl", "--rollouts", tmp_path / "rollouts.jsonl",
            "--model", toy_policy_dir, "--config", tmp_path / "refresh.yaml"]
    # the toy policy writes no acceptable variant: refresh says so and publishes nothing
    refused = cli(*args)
    assert refused.exit_code == 2 and "nothing was published" in refused.output, refused.output
    assert PromptStore(tmp_path / "store").current("demo") == 1
    result = cli(*args, "--publish-weak")
    assert result.exit_code == 0, result.output
    assert "demo@v2: published" in result.output
    # the policy's synthesis and verification are the refresh's cost, and it says so
    assert re.search(r"demo@v2: published \([1-9][\d,]* tokens generated by the policy\)",
                     result.output), result.output
    store = PromptStore(tmp_path / "store")
    v2 = store.load("demo")
    assert v2.version == 2 and v2.parent == 1
    assert v2.rejects and all(r["reason"] for r in v2.rejects)
    reasons = {r["reason"] for r in v2.rejects}
    assert reasons & {"too_easy", "unsolvable", "no_problem_extracted", "near_duplicate"}
    diff = cli("diff", "v1", "v2", "--store", tmp_path / "store", "--set", "demo", "--json")
    data = json.loads(diff.output)
    memorized = [c for c in data["changed"] if c["field"] == "weight"]
    assert memorized and memorized[0]["new"] == 0.25 and memorized[0]["label"] == "memorized"
    assert data["changed_by_label"] == {"weight/memorized": 1}
    for problem_id in data["added"]:
        assert v2.lineage.nodes[problem_id]["synthesizer"] == "svs"
    # without rollout files the model generates them (and grades them) itself
    config = json.loads((tmp_path / "refresh.yaml").read_text())
    config["generate"] = {"n": 4, "max_new_tokens": 16}
    (tmp_path / "generate.yaml").write_text(json.dumps(config))
    generated = cli("refresh", "--store", tmp_path / "store", "--set", "demo",
                    "--model", toy_policy_dir, "--config", tmp_path / "generate.yaml",
                    "--publish-weak")
    assert generated.exit_code == 0, generated.output
    assert "demo@v3: published" in generated.output
    v3 = store.load("demo")
    assert v3.parent == 2 and len(v3.diagnosis["problems"]) == len(v2.problems)


def test_run_key_is_stable_and_changes_with_every_input(workdir):
    from svs.pipeline.refresh_config import RefreshRunConfig
    from svs.pipeline.refresh_stages import run_key

    template = workdir / "template.txt"
    template.write_text("Solution: {solution}\nWrite the problem.\n")
    config = RefreshRunConfig.from_dict({"svs": {"template_path": str(template)}})
    rollouts = [workdir / "rollouts.jsonl"]
    key = run_key("demo", rollouts, None, config)
    assert run_key("demo", rollouts, None, config) == key
    changed = {run_key("other", rollouts, None, config),
               run_key("demo", [], None, config),
               run_key("demo", rollouts, None, RefreshRunConfig.from_dict(
                   {"svs": {"template_path": str(template)}, "refresh": {"target_size": 9}}))}
    template.write_text("Solution: {solution}\nWrite a new problem.\n")
    changed.add(run_key("demo", rollouts, None, config))
    with open(rollouts[0], "a") as handle:
        handle.write("\n")
    template.write_text("Solution: {solution}\nWrite the problem.\n")
    changed.add(run_key("demo", rollouts, None, config))
    assert key not in changed and len(changed) == 5


@pytest.mark.parametrize("point,outcome", [("before_rename", "published"),
                                           ("after_rename", "recovered")])
def test_sigkill_during_the_first_import_then_import_again(workdir, point, outcome):
    env = {**os.environ, FAULT_ENV: f"{point}:kill"}
    code = "import sys; from svs.flows.cli import app; sys.argv[0] = 'svs'; app()"
    args = ["import", workdir / "problems.jsonl", "--store", workdir / "store", "--set", "demo"]
    killed = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    store = PromptStore(workdir / "store")
    assert store.current_or_none("demo") is None
    again = cli(*args)
    assert again.exit_code == 0 and f"{outcome} demo@v1" in again.output, again.output
    assert store.current("demo") == 1 and len(store.load("demo").problems) == len(PROBLEMS)
