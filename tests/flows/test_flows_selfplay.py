"""Self-play rounds with the bundled learner and a tiny model; resume after a crash."""

import json

import pytest
from grpo_toy import build_addition_model, one_torch_thread, write_problems  # noqa: F401

import svs.flows.selfplay_flow as selfplay_module
from svs.flows.selfplay_flow import load_rounds, selfplay_flow
from svs.pipeline.store import PromptStore


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("selfplay-toy")
    return build_addition_model(root / "model", warmup_steps=60), write_problems(
        root / "problems.jsonl", 16)


def setup(tmp_path, toy):
    from svs.flows.store_commands import import_into_store
    from svs.pipeline.importers import ColumnMap

    model, problems = toy
    store = PromptStore(tmp_path / "store")
    import_into_store(store, "toy", problems, "table", ColumnMap(), add=False)
    train = {"model": str(model), "output_dir": str(tmp_path / "run"),
             "prompt_store": str(tmp_path / "store"), "prompt_set": "toy",
             "solve_template": "{problem}", "steps": 1, "prompts_per_step": 4, "group_size": 4,
             "max_new_tokens": 4, "lr": 2e-3, "micro_batch_size": 16, "checkpoint_every": 100,
             "progress": False, "tensorboard": False}
    refresh = {"config": {"synthesizers": ["symbolic"], "generate": {"n": 4, "max_new_tokens": 4},
                          "consistency": {"check_text": False}},
               "io_retry_delay_s": 0.0}
    return store, train, refresh


@pytest.mark.slow  # trains a tiny model for 4 steps and refreshes twice: ~40 s
@pytest.mark.usefixtures("prefect_harness")
def test_rounds_publish_versions_and_resume_after_a_crash(tmp_path, toy, monkeypatch):
    store, train, refresh = setup(tmp_path, toy)
    first = selfplay_flow(train, rounds=1, steps_per_round=2, refresh=refresh)
    assert [r["round"] for r in first] == [1] and first[0]["published"] == "toy@v2"
    assert first[0]["trained_on"] == "toy@v1" and store.current("toy") == 2

    # round 2 crashes after training, before its refresh publishes
    real = selfplay_module.refresh_flow

    def crash(**kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(selfplay_module, "refresh_flow", crash)
    state = selfplay_flow(train, rounds=2, steps_per_round=2, refresh=refresh, return_state=True)
    assert state.is_failed() and store.current("toy") == 2
    assert len(load_rounds(tmp_path / "run")) == 1
    monkeypatch.setattr(selfplay_module, "refresh_flow", real)

    trained = []
    real_train = selfplay_module.train_segment.fn

    def counting(config, until_step):
        result = real_train(config, until_step)
        trained.append(result["steps_done"])
        return result

    monkeypatch.setattr(selfplay_module, "train_segment",
                        selfplay_module.train_segment.with_options(name="train-segment"))
    monkeypatch.setattr(selfplay_module.train_segment, "fn", counting)
    rounds = selfplay_flow(train, rounds=2, steps_per_round=2, refresh=refresh)
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[1]["trained_on"] == "toy@v2" and rounds[1]["published"] == "toy@v3"
    assert trained == [4]  # resumed at step 4: the crashed round's training is not redone
    assert store.versions("toy") == [1, 2, 3] and store.load("toy").parent == 2
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    # a re-run with everything done trains and publishes nothing
    assert len(selfplay_flow(train, rounds=2, steps_per_round=2, refresh=refresh)) == 2
    assert store.versions("toy") == [1, 2, 3]
