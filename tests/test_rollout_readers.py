import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from svs.pipeline.rollouts import (
    RolloutFileError,
    detect_format,
    expand_paths,
    load_rollout_groups,
    load_rollouts,
)

CHAT = "<|im_start|>user\n{q} Please reason step by step.<|im_end|>\n<|im_start|>assistant\n"


def write_verl_dump(folder: Path, *, steps=(1, 2), with_id=True, scores=(1.0, 0.0)) -> Path:
    """A verl `trainer.rollout_data_dir`: {step}.jsonl, 2 problems x 4 rollouts per step."""
    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        rows = []
        for q, gold in (("What is 2+3?", "5"), ("What is 10/4?", "\\frac{5}{2}")):
            for i in range(4):
                right = i < 2 + (step > 1)
                row = {"input": CHAT.format(q=q),
                       "output": f"Adding up carefully, try {i}. The answer is \\boxed{{{gold if right else 7}}}.",
                       "gts": gold, "score": scores[0] if right else scores[1], "step": step,
                       "acc": None}
                row.pop("acc")
                if with_id:
                    row["problem_id"] = f"id-{q[8:12]}"
                rows.append(row)
        (folder / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def write_trl_dump(folder: Path, *, steps=(1, 2), chat=False, rewards=True) -> Path:
    """TRL's `log_completions` output: completions/completions_{step:05d}.parquet."""
    out = folder / "completions"
    out.mkdir(parents=True, exist_ok=True)
    for step in steps:
        rows = []
        for q in ("Compute 6*7.", "Compute 3^4."):
            for i in range(4):
                prompt = [{"role": "user", "content": q}] if chat else q
                row = {"step": step, "prompt": prompt,
                       "completion": f"Multiplying, attempt {i} at step {step}: "
                                     f"\\boxed{{{42 if i % 2 else 81}}}"}
                if rewards:
                    right = (q == "Compute 6*7.") == bool(i % 2)
                    row["accuracy_reward"] = 1.0 if right else 0.0
                    row["format_reward"] = 0.5
                else:
                    row["length_reward"] = 0.25 * i
                row["advantage"] = 0.1 * i
                rows.append(row)
        pq.write_table(pa.Table.from_pylist(rows), out / f"completions_{step:05d}.parquet")
    return folder


def test_verl_dump_groups_by_problem_id_and_step(tmp_path):
    groups = load_rollout_groups(write_verl_dump(tmp_path / "dump"))
    assert len(groups) == 4  # 2 problems x 2 steps
    assert {(g.problem_id, g.step) for g in groups} == {
        ("id-2+3?", 1), ("id-2+3?", 2), ("id-10/4", 1), ("id-10/4", 2)}
    step1 = next(g for g in groups if g.step == 1 and g.problem_id == "id-2+3?")
    assert step1.n == 4 and step1.n_correct == 2 and step1.answer == "5"
    assert all(r.extracted in ("5", "7") for r in step1.rollouts)  # filled for answer spread
    assert step1.rollouts[0].metadata["format"] == "verl"


def test_verl_dump_without_ids_groups_by_prompt_text(tmp_path):
    groups = load_rollout_groups(write_verl_dump(tmp_path / "dump", with_id=False))
    assert len({g.problem_id for g in groups}) == 2
    assert all(g.problem_id.startswith("p-") for g in groups)


def test_trl_completions_use_the_0_1_reward_column(tmp_path):
    loaded = load_rollouts(write_trl_dump(tmp_path / "run"))
    assert any("accuracy_reward" in note for note in loaded.notes)
    groups = load_rollout_groups(tmp_path / "run")
    assert len(groups) == 4
    first = next(g for g in groups if g.prompt == "Compute 6*7." and g.step == 1)
    assert first.n_correct == 2
    assert all(r.correct == (r.extracted == "42") for r in first.rollouts)


def test_trl_chat_prompts_are_joined(tmp_path):
    groups = load_rollout_groups(write_trl_dump(tmp_path / "run", chat=True))
    assert {g.prompt for g in groups} == {"Compute 6*7.", "Compute 3^4."}


def test_trl_without_correctness_says_how_to_fix(tmp_path):
    write_trl_dump(tmp_path / "run", rewards=False)
    with pytest.raises(RolloutFileError, match="--correct-column"):
        load_rollouts(tmp_path / "run")
    loaded = load_rollouts(tmp_path / "run", correct_column="length_reward")
    assert sum(r.correct for r in loaded.rollouts) == 12  # 0.25*i > 0 for i = 1..3, 4 groups


def test_non_binary_scores_are_graded_by_the_verifier(tmp_path):
    dump = write_verl_dump(tmp_path / "dump", steps=(1,), scores=(1.0, -1.0))
    loaded = load_rollouts(dump)
    assert "verifier" in loaded.notes[0]
    assert [r.correct for r in loaded.rollouts] == [True, True, False, False] * 2
    assert {r.reason for r in loaded.rollouts} == {"correct", "wrong"}


def test_bad_verl_line_names_file_and_line(tmp_path):
    dump = write_verl_dump(tmp_path / "dump", steps=(1,))
    path = dump / "1.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(0, "{not json")
    lines.insert(5, json.dumps({"input": "q", "gts": "1", "score": 1}))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RolloutFileError, match=r"1\.jsonl:1: bad JSON"):
        load_rollouts(dump)
    loaded = load_rollouts(dump, skip_bad=True)
    assert len(loaded.rollouts) == 8  # no good row lost
    assert [line for _, line, _ in loaded.skipped] == [1, 6]
    assert "output" in loaded.skipped[1][2]


def test_format_detection_and_step_order(tmp_path):
    dump = write_verl_dump(tmp_path / "dump", steps=(2, 10, 1))
    assert [p.name for p in expand_paths(dump)] == ["1.jsonl", "2.jsonl", "10.jsonl"]
    assert detect_format(dump / "1.jsonl") == "verl"
    trl = write_trl_dump(tmp_path / "trl", steps=(3,))
    assert detect_format(trl / "completions" / "completions_00003.parquet") == "trl"
    native = tmp_path / "native.jsonl"
    native.write_text(json.dumps({"problem_id": "a", "prompt": "1+1?", "answer": 2,
                                  "completion": "\\boxed{2}", "correct": True}) + "\n")
    assert detect_format(native) == "native"
    (group,) = load_rollout_groups(native)
    assert group.n_correct == 1 and group.rollouts[0].extracted == "2"
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"text": "hello"}) + "\n")
    with pytest.raises(RolloutFileError, match="unknown rollout format"):
        detect_format(odd)
    with pytest.raises(RolloutFileError, match="no such file"):
        expand_paths(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RolloutFileError, match="no .jsonl or .parquet"):
        expand_paths(tmp_path / "empty")


def test_logged_acc_beats_a_minus_one_plus_one_score(tmp_path):
    dump = tmp_path / "dapo"
    dump.mkdir()
    rows = [{"input": "What is 1+1?", "output": f"\\boxed{{{2 if ok else 3}}}", "gts": "2",
             "score": 1.0 if ok else -1.0, "acc": ok, "pred": str(2 if ok else 3), "step": 4}
            for ok in (True, False, True)]
    (dump / "4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_rollouts(dump)
    assert "'acc'" in loaded.notes[0]
    assert [r.correct for r in loaded.rollouts] == [True, False, True]
    assert [r.reward for r in loaded.rollouts] == [1.0, -1.0, 1.0]
    assert [r.extracted for r in loaded.rollouts] == ["2", "3", "2"]  # verl's logged `pred`
    assert all(r.reason is None for r in loaded.rollouts)  # no verifier run


def test_empty_dump_file_and_odd_correct_column_values(tmp_path):
    dump = tmp_path / "d"
    dump.mkdir()
    (dump / "1.jsonl").write_text("\n\n")
    rows = [{"input": "q1", "output": "\\boxed{1}", "gts": "1", "score": 0.3, "step": 2,
             "verdict": value} for value in ("yes", None, float("nan"), 2, True)]
    (dump / "2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_rollouts(dump, correct_column="verdict")
    assert "no rollout rows" in loaded.notes[0]
    assert [r.correct for r in loaded.rollouts] == [False, False, False, True, True]


def _trl_file(folder: Path, step: int, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / f"completions_{step:05d}.parquet")


def _trl_rows(step: int, **columns) -> list[dict]:
    """8 rows of one prompt: format reward 1 everywhere, half of the answers right."""
    rows = []
    for i in range(8):
        right = i < 4
        row = {"step": step, "prompt": [{"role": "user", "content": "Compute 6*7."}],
               "completion": [{"role": "assistant",
                               "content": f"<think>try {i} at {step}</think> \\boxed{{{42 if right else 41}}}"}],
               "think_format_reward": 1.0, "accuracy_reward": 1.0 if right else 0.0,
               "advantage": 0.5 if right else -0.5}
        row.update({k: v[i] if isinstance(v, list) else v for k, v in columns.items()})
        rows.append(row)
    return rows


def test_trl_accuracy_reward_is_correctness_not_the_first_0_1_column(tmp_path):
    _trl_file(tmp_path / "completions", 1, _trl_rows(1))
    loaded = load_rollouts(tmp_path / "completions")
    assert "from reward 'accuracy_reward'" in loaded.notes[0]
    assert sum(r.correct for r in loaded.rollouts) == 4  # not 8/8 from the format reward


def test_svs_reward_column_and_correct_column_win_by_name(tmp_path):
    ours = _trl_rows(1, svs_reward="mine", mine=[1.0, 0.0] * 4, solution="42")
    _trl_file(tmp_path / "a", 1, ours)
    loaded = load_rollouts(tmp_path / "a")
    assert "from reward 'mine'" in loaded.notes[0]
    assert [r.correct for r in loaded.rollouts] == [True, False] * 4
    chosen = load_rollouts(tmp_path / "a", correct_column="think_format_reward")
    assert all(r.correct for r in chosen.rollouts)


def test_several_unnamed_0_1_rewards_are_ambiguous(tmp_path):
    rows = [{k.replace("accuracy_reward", "len_reward"): v for k, v in row.items()}
            for row in _trl_rows(1, solution="42")]
    _trl_file(tmp_path / "a", 1, rows)
    loaded = load_rollouts(tmp_path / "a")
    assert "2 reward columns ['think_format_reward', 'len_reward'] are 0/1" in loaded.notes[0]
    assert "graded by the verifier" in loaded.notes[0]
    assert sum(r.correct for r in loaded.rollouts) == 4 and loaded.rollouts[0].reason == "correct"
    for row in rows:
        row.pop("solution")
    _trl_file(tmp_path / "b", 1, rows)
    with pytest.raises(RolloutFileError, match="none is named as correctness.*--correct-column"):
        load_rollouts(tmp_path / "b")


def test_trl_logging_gaps_eval_rows_and_repeated_batches(tmp_path):
    folder = tmp_path / "completions"
    _trl_file(folder, 10, _trl_rows(10))
    _trl_file(folder, 20, [dict(r, step=20) for r in _trl_rows(10)])  # num_iterations > 1
    _trl_file(folder, 30, _trl_rows(30, mode="train") + _trl_rows(31, mode="eval"))
    _trl_file(folder / "eval", 30, _trl_rows(32))
    loaded = load_rollouts(folder)
    assert sorted({r.step for r in loaded.rollouts}) == [10, 30]
    assert len(loaded.rollouts) == 16
    warnings = "\n".join(loaded.warnings)
    assert "the same 8 rows as an earlier file" in warnings
    assert "8 eval rows skipped" in warnings and "an eval log, skipped" in warnings
    assert "at steps [10, 30]: 20 or more steps apart (logging_steps > 1)" in warnings
    assert loaded.notes[0].startswith("warning: ")
