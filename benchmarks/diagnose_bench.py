"""Diagnosis at the size of one pass over DAPO-17k: parquet in, report.json out.

    nice python benchmarks/diagnose_bench.py [--problems 17000] [--rollouts 16]
        [--chars 1500] [--subset 1000] [--data /tmp/svs-diagnose-bench.parquet]

Target (issue 3): 17,000 problems x 16 rollouts of ~1.5 KB in <= 60 s and <= 4 GB peak
memory on 2 cores. The rows carry `correct` (as trainer dumps with a 0/1 score do), so
no grading runs; answers are still extracted for the answer-spread metrics.

The measured run is a fresh child process (`python -c ...diagnose_paths...`), so its
peak RSS (`ru_maxrss` of the children) counts only the diagnosis, not the generation
of the data. The named baseline is a straightforward pure-Python pairwise Jaccard on
sets of word 3-gram tuples, run on the first `--subset` problems and compared with
svs's similarity stage (OPH signatures + batched comparison) on the same problems.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling planted.py

from planted import planted_rows  # noqa: E402

_WORD = re.compile(r"[0-9a-z\x80-\U0010ffff]+")

CHILD = """
import resource, sys, time
started = time.perf_counter()
from svs.pipeline.report import diagnose_paths
diagnosis, loaded, json_path, html_path = diagnose_paths([{data!r}], {out!r})
elapsed = time.perf_counter() - started
print(elapsed, diagnosis.totals["rollouts"], json_path.stat().st_size)
"""


def make_data(path: Path, problems: int, rollouts: int, chars: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rows = planted_rows(problems, n_rollouts=rollouts, seed=0, target_chars=chars)
    for row in rows:
        row.pop("extracted")  # a trainer dump has correctness but no extracted answer
        row["step"] = 0
    pq.write_table(pa.Table.from_pylist(rows), path)
    print(f"generated {len(rows)} rollouts in {time.perf_counter() - started:.0f} s -> {path}")


def baseline_similarity(groups: list[list[str]]) -> list[list[float]]:
    """Pure Python: shingle sets, then Jaccard of every pair of correct solutions."""
    out = []
    for texts in groups:
        sets = []
        for text in texts:
            words = _WORD.findall(text.lower())
            sets.append({tuple(words[i:i + 3]) for i in range(len(words) - 2)})
        out.append([len(a & b) / len(a | b) if a | b else 1.0
                    for a, b in itertools.combinations(sets, 2)])
    return out


def svs_similarity(groups: list[list[str]]):
    import numpy as np

    from svs.verifiers.textsim import grouped_oph_similarity, oph_signatures

    signatures = oph_signatures([t for texts in groups for t in texts])
    offsets = np.cumsum([0] + [len(texts) for texts in groups])
    by_size: dict[int, list[int]] = {}
    for index, texts in enumerate(groups):
        by_size.setdefault(len(texts), []).append(index)
    out = {}
    for size, members in by_size.items():
        if size:
            rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in members])
            sims = grouped_oph_similarity(signatures[rows].reshape(len(members), size, -1))
            out.update(zip(members, sims, strict=True))
    return out


def subset_groups(path: Path, subset: int) -> list[list[str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["problem_id", "completion", "correct"])
    groups: dict[str, list[str]] = {}
    for pid, completion, correct in zip(*(table.column(c).to_pylist() for c in table.column_names),
                                        strict=True):
        if pid not in groups:
            if len(groups) == subset:
                break
            groups[pid] = []
        if correct:
            groups[pid].append(completion)
    return list(groups.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=17_000)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--chars", type=int, default=1500)
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / (
        f"svs-diagnose-bench-{args.problems}x{args.rollouts}x{args.chars}.parquet")
    if not data.exists():
        make_data(data, args.problems, args.rollouts, args.chars)
    size_mb = data.stat().st_size / 1e6

    with tempfile.TemporaryDirectory() as out:
        code = CHILD.format(data=str(data), out=out)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"diagnosis failed:\n{result.stderr}")
        elapsed, rollouts, json_bytes = result.stdout.split()
        elapsed, rollouts = float(elapsed), int(rollouts)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # kB -> GB
    print(f"full run: {args.problems} problems x {args.rollouts} rollouts (~{args.chars} chars), "
          f"parquet {size_mb:.0f} MB")
    print(f"  parquet -> report.json: {elapsed:.1f} s, {rollouts / elapsed:,.0f} rollouts/s, "
          f"peak RSS {peak_gb:.2f} GB, report.json {int(json_bytes) / 1e6:.1f} MB")
    print(f"  target <= 60 s and <= 4 GB: {'met' if elapsed <= 60 and peak_gb <= 4 else 'NOT met'}")

    groups = subset_groups(data, args.subset)
    pairs = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    started = time.perf_counter()
    reference = baseline_similarity(groups)
    baseline_s = time.perf_counter() - started
    started = time.perf_counter()
    ours = svs_similarity(groups)
    svs_s = time.perf_counter() - started
    errors = []
    for index, texts in enumerate(groups):
        if len(texts) > 1:
            upper = ours[index][tuple(zip(*itertools.combinations(range(len(texts)), 2), strict=True))]
            errors.extend(abs(a - b) for a, b in zip(upper, reference[index], strict=True))
    print(f"similarity of correct solutions, first {len(groups)} problems ({pairs:,} pairs):")
    print(f"  baseline pure-Python pairwise Jaccard: {baseline_s:.2f} s")
    print(f"  svs OPH signatures + batched compare:   {svs_s:.2f} s")
    print(f"  ratio {baseline_s / svs_s:.1f}x; estimate vs exact Jaccard: mean abs error "
          f"{sum(errors) / max(len(errors), 1):.3f}, max {max(errors, default=0):.3f}")
    print(json.dumps({"seconds": round(elapsed, 2), "peak_gb": round(peak_gb, 3),
                      "rollouts_per_s": round(rollouts / elapsed), "baseline_s": round(baseline_s, 3),
                      "svs_similarity_s": round(svs_s, 3), "ratio": round(baseline_s / svs_s, 2)}))
    print(f"diagnosis similarity, {pairs:,} pairs: baseline Jaccard {baseline_s:.2f} s vs svs "
          f"{svs_s:.2f} s, ratio {baseline_s / svs_s:.1f}")


if __name__ == "__main__":
    main()
