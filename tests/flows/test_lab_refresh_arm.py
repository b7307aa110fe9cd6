"""The lab's refresh arm: GRPO with svs refresh rounds through the self-play Prefect flow,
fed by the rollouts the learner logged, its refresh tokens charged to its budget."""

import json

import pytest

from svs.flows.lab.bootstrap import LabConfig, bootstrap
from svs.flows.lab.curriculum import CurriculumConfig
from svs.flows.lab.experiment import ExperimentConfig, run_experiment
from svs.flows.selfplay_flow import round_rollouts
from svs.trainer_bridge.grpo_config import GRPOConfig

TINY = LabConfig(curriculum=CurriculumConfig(n_train=40, n_heldout=6), solve_steps=2,
                 train_steps=3, batch_size=4, hidden_size=32, num_layers=1, num_heads=1,
                 vocab_size=400, max_position_embeddings=1024, solve_max_new_tokens=8,
                 synthesis_max_new_tokens=8)
SHORT = ExperimentConfig(arms=("fixed", "refresh"), steps=2, refresh_every=1, n_prompts=4,
                         prompts_per_step=2, group_size=2, max_new_tokens=8,
                         synthesis_max_new_tokens=8, synthesis_samples=2, eval_every=2,
                         eval_samples=2, n_eval=3)


@pytest.mark.usefixtures("prefect_harness")
def test_refresh_rounds_publish_versions_and_count_their_tokens(tmp_path):
    policy = bootstrap(TINY, tmp_path / "lab")
    first = run_experiment(policy, SHORT, tmp_path / "one")
    refresh = first["arms"]["refresh"]
    rounds = refresh["rounds"]
    assert [(r["round"], r["step"], r["trained_on"], r["published"]) for r in rounds] == [
        (1, 1, "lab@v1", "lab@v2"), (2, 2, "lab@v2", "lab@v3")]
    # (this untrained policy solves nothing: no seeds, so no synthesis tokens here;
    # tests/test_refresh_cli.py checks a refresh that synthesizes counts its tokens)
    # each round diagnosed the problems of the rollouts the learner logged that step
    for r in rounds:
        logged = tmp_path / "one" / "refresh" / "rollouts" / f"step_{r['step']:06d}.jsonl"
        problems = {json.loads(line)["problem_id"] for line in logged.read_text().splitlines()}
        assert sum(r["labels"].values()) == len(problems) == 2
    metrics = [json.loads(line) for line in
               (tmp_path / "one" / "refresh" / "metrics.jsonl").read_text().splitlines()]
    for point, row, r in zip(refresh["curve"], metrics, rounds, strict=True):
        assert point["tokens"] == row["train/generated_tokens"] + r["generated_tokens"]
    assert [p["prompt_version"] for p in refresh["curve"]] == ["lab@v1", "lab@v2"]
    # paired: up to its first refresh the refresh arm IS the fixed arm (same draws)
    same = ("entropy", "trained_entropy", "solve_rate", "memorized", "prompt_version")
    fixed_step1 = first["arms"]["fixed"]["curve"][0]
    assert {k: refresh["curve"][0][k] for k in same} == {k: fixed_step1[k] for k in same}
    fixed = first["arms"]["fixed"]["summary"]["tokens/total"]
    assert refresh["summary"]["tokens/cost_ratio"] == refresh["summary"]["tokens/total"] / fixed
    assert "Refresh rounds" in (tmp_path / "one" / "report.html").read_text()

    second = run_experiment(policy, SHORT, tmp_path / "two")
    assert second["arms"] == first["arms"] and second["start"] == first["start"]


def test_round_rollouts_names_the_missing_step(tmp_path):
    config = GRPOConfig(model="m", prompts_file="p.jsonl", output_dir=str(tmp_path / "run"), log_rollouts=True)
    with pytest.raises(FileNotFoundError, match="step_000003.jsonl"):
        round_rollouts(config, until_step=4, steps_per_round=2)
    assert round_rollouts(GRPOConfig(model="m", prompts_file="p.jsonl", output_dir=str(tmp_path)), 4, 2) == []
