"""One Prefect test server for the whole test session (it takes ~7 s to start), and
tiny on-disk fixtures: a prompt-set file and a native rollout file."""

import json
import random

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with prefect_test_harness(server_startup_timeout=60):
        with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
            yield


PROBLEMS = [(f"What is ${a} + {b}$?", str(a + b)) for a, b in
            [(3, 4), (12, 30), (7, 8), (21, 5), (9, 9), (14, 6)]]
CORRECT_OF_8 = [8, 2, 8, 1, 0, 3]  # memorized, seed, memorized, seed, unsolved, seed


def write_problems(path):
    with open(path, "w") as handle:
        for text, answer in PROBLEMS:
            handle.write(json.dumps({"problem": text, "answer": answer}) + "\n")
    return path


def write_rollouts(path, *, step=3, seed=0, problems=PROBLEMS, correct_of_8=CORRECT_OF_8):
    """Native rollouts, 8 per problem; fully solved problems repeat one solution
    (memorized), partly solved ones write different working each time (seeds)."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for (text, answer), n_correct in zip(problems, correct_of_8, strict=True):
            for k in range(8):
                if k < n_correct and n_correct == 8:
                    completion = f"The sum is \\boxed{{{answer}}}."
                elif k < n_correct:
                    completion = (f"Step {k}: adding gives {rng.random():.4f} then "
                                  f"\\boxed{{{answer}}}.")
                else:
                    completion = f"I guess \\boxed{{{int(answer) + k + 1}}}."
                handle.write(json.dumps({"problem_id": f"p-{text}", "prompt": text,
                                         "answer": answer, "completion": completion,
                                         "correct": k < n_correct, "step": step}) + "\n")
    return path


# symbolic rewrites need no policy, so a refresh runs without a model
REFRESH_CONFIG = {"synthesizers": ["symbolic"], "refresh": {"memorized_action": "retire"},
                  "consistency": {"check_text": False}}


@pytest.fixture
def workdir(tmp_path):
    write_problems(tmp_path / "problems.jsonl")
    write_rollouts(tmp_path / "rollouts.jsonl")
    return tmp_path
