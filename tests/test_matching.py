"""Content matching of rollout groups without ids (verl V1 dumps) to a prompt set."""

import json
import logging

import pytest

from svs.core.records import Problem
from svs.pipeline.matching import match
from svs.pipeline.refresh_stages import rollout_groups
from svs.pipeline.rollouts import load_rollout_groups

PROBLEMS = [Problem("What is 3 + 4?", "7"), Problem("What is 3 + 4? Then double it.", "14"),
            Problem("Find $x$ if $2x = 10$.", "5")]
TEMPLATES = {
    "qwen": "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n{q} Please "
            "reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
            "<|im_start|>assistant\n",
    # special tokens dropped by decode(skip_special_tokens=True), as verl decodes
    "llama3": "system\n\nCutting Knowledge Date: December 2023\n\nuser\n\n{q}assistant\n\n",
    # a decoder that puts a space between every token
    "spaced": "user : {spaced} assistant :",
}


def v1_rows(template: str, step: int = 3) -> list[dict]:
    """Rows shaped like verl 0.9.1's V1 `_log_rollout_data` output (the real one is
    produced in tests/test_real_clients.py); two sessions per prompt uuid."""
    rows = []
    for n, problem in enumerate(PROBLEMS):
        prompt = TEMPLATES[template].format(q=problem.text, spaced=" ".join(problem.text))
        for session, right in ((0, True), (1, False)):
            answer = problem.answer if right else "99"
            rows.append({"input": prompt, "output": f"so \\boxed{{{answer}}}", "gts": problem.answer,
                         "score": float(right), "step": step, "uid": f"uuid-{n}_{session}_0"})
    return rows


def write(folder, rows, step=3):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_v1_dump_groups_match_by_problem_text_inside_the_template(tmp_path, template):
    groups = load_rollout_groups(write(tmp_path / "d", v1_rows(template)))
    assert len(groups) == 3 and all(g.n == 2 and g.n_correct == 1 for g in groups)
    result = match(PROBLEMS, groups)
    assert not result.unmatched
    # the longer problem wins over the one whose text it contains
    assert sorted(g.problem_id for g in result.matched) == sorted(p.id for p in PROBLEMS)
    by_id = {g.problem_id: g for g in result.matched}
    assert by_id[PROBLEMS[1].id].answer == "14"
    assert all(r.problem_id == g.problem_id for g in result.matched for r in g.rollouts)


def test_same_prompt_twice_in_a_batch_is_two_uid_groups_merged_when_matched(tmp_path):
    rows = v1_rows("qwen")
    again = [dict(r, uid=r["uid"].replace("uuid-0", "uuid-9")) for r in rows[:2]]
    groups = load_rollout_groups(write(tmp_path / "d", rows + again))
    assert len(groups) == 4  # one per prompt uuid
    result = match(PROBLEMS, groups)
    first = next(g for g in result.matched if g.problem_id == PROBLEMS[0].id)
    assert first.n == 4 and len(result.matched) == 3


def test_a_wrong_answer_or_unknown_text_is_reported_with_an_example(tmp_path, caplog):
    rows = v1_rows("qwen")
    for row in rows[4:]:
        row["gts"] = "6"  # not the set's answer for this text
    groups = load_rollout_groups(write(tmp_path / "d", rows))
    result = match(PROBLEMS, groups)
    assert len(result.matched) == 2 and len(result.unmatched) == 1
    message = result.unmatched_message("demo@v1")
    assert message.startswith("1 of 3 rollout groups match no problem of demo@v1")
    assert "Find $x$" in message and "'6'" in message

    class Base:
        label, problems = "demo@v1", PROBLEMS

    with caplog.at_level(logging.WARNING):
        matched, unmatched = rollout_groups(Base, [tmp_path / "d"], None, None)
    assert unmatched == 1 and len(matched) == 2
    assert "match no problem of demo@v1" in caplog.text
    with pytest.raises(ValueError, match=r"none of the 3 rollout groups.*e\.g\. prompt"):
        rollout_groups(type("Other", (), {"label": "x@v1", "problems": [Problem("1+1?", "2")]}),
                       [tmp_path / "d"], None, None)


def test_ids_and_plain_text_still_match_first(tmp_path):
    rows = [{"input": "What is 3 + 4? Please reason step by step, and put your final answer "
                      "within \\boxed{}.", "output": "\\boxed{7}", "gts": "7", "score": 1.0,
             "step": 1},
            {"input": "anything", "output": "\\boxed{5}", "gts": "5", "score": 1.0, "step": 1,
             "problem_id": PROBLEMS[2].id}]
    result = match(PROBLEMS, load_rollout_groups(write(tmp_path / "d", rows, step=1)))
    assert result.rules == {"text": 1, "id": 1}
