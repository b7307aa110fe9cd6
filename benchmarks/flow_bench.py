"""What Prefect costs a refresh: `svs refresh` (the svs-refresh flow) against the named
baseline `svs refresh --no-prefect` (the same steps as plain functions), on the same
inputs, each in a fresh process, in one run.

    nice python benchmarks/flow_bench.py [--problems 200] [--repeats 2] [--api-url URL]

The inputs are synthetic: `--problems` addition problems with 8 rollouts each, and a
config that uses the symbolic synthesizer, so no model is needed. Without `--api-url`,
every flow run starts Prefect's temporary server, which is the start-up cost a plain CLI
user pays. With `--api-url` (a running `prefect server start`), the flow talks to that
server instead. Prints seconds per mode and the ratio flow / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = "synthesizers: [symbolic]\nrefresh: {memorized_action: retire}\nconsistency: {check_text: false}\n"


def write_inputs(folder: Path, n_problems: int) -> None:
    rng = random.Random(0)
    with open(folder / "problems.jsonl", "w") as problems, open(folder / "rollouts.jsonl", "w") as rollouts:
        for index in range(n_problems):
            a, b = rng.randint(2, 999), rng.randint(2, 999)
            text, answer = f"What is ${a} + {b}$?", str(a + b)
            problems.write(json.dumps({"problem": text, "answer": answer}) + "\n")
            n_correct = rng.choice([0, 2, 3, 8])
            for k in range(8):
                right = k < n_correct
                completion = (f"The sum is \\boxed{{{answer}}}." if right and n_correct == 8 else
                              f"Step {k}: {rng.random():.4f} so \\boxed{{{answer}}}." if right else
                              f"I guess \\boxed{{{a + b + k + 1}}}.")
                rollouts.write(json.dumps({"problem_id": f"p{index}", "prompt": text, "answer": answer,
                                           "completion": completion, "correct": right, "step": 1}) + "\n")
    (folder / "refresh.yaml").write_text(CONFIG)


def timed_refresh(folder: Path, store: str, env: dict[str, str], plain: bool) -> float:
    args = [str(Path(sys.executable).parent / "svs"), "refresh", "--store", store, "--set", "bench",
            "--prompts", "problems.jsonl", "-r", "rollouts.jsonl", "-c", "refresh.yaml"]
    if plain:
        args.append("--no-prefect")
    began = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0 or "bench@v2: published" not in done.stdout:
        raise SystemExit(f"svs refresh failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--api-url", default=None, help="a running Prefect server's API URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svs-flow-bench-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, args.problems)
        env = {k: v for k, v in os.environ.items() if k not in ("SVS_NO_PREFECT", "PREFECT_API_URL")}
        env.update(PREFECT_HOME=str(folder / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        if args.api_url:
            env["PREFECT_API_URL"] = args.api_url
        times: dict[str, list[float]] = {"no-prefect (baseline)": [], "flow": []}
        for repeat in range(args.repeats):
            times["no-prefect (baseline)"].append(timed_refresh(folder, f"plain{repeat}", env, True))
            times["flow"].append(timed_refresh(folder, f"flow{repeat}", env, False))
        for mode, values in times.items():
            print(f"{mode:24s} median {statistics.median(values):6.2f} s  runs {[round(v, 2) for v in values]}")
        ratio = statistics.median(times["flow"]) / statistics.median(times["no-prefect (baseline)"])
        server = args.api_url or "temporary server per run"
        print(f"flow / baseline: {ratio:.2f}x  ({args.problems} problems x 8 rollouts, {server})")


if __name__ == "__main__":
    main()
