"""Prompt store speed: publish and load a version against the raw parquet floor.

Baseline: `pyarrow.parquet.write_table` / `read_table` of the same problem rows, with
no checksums, lineage, manifest, fsync or validation. The store's overhead over it is
what crash safety and verification cost. Also times `plan_refresh` on the set with
half as many accepted variants.

    python benchmarks/store_bench.py --problems 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from svs.core.records import Problem
    from svs.pipeline import lineage
    from svs.pipeline.refresh import RefreshConfig, plan_refresh
    from svs.pipeline.store import NewVersion, PromptStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20000)
    args = parser.parse_args()
    problems = [Problem(f"Problem {i}: what is {i} + {i * 7 % 13}? " + "Explain. " * 20,
                        str(i + i * 7 % 13), metadata={"level": i % 5})
                for i in range(args.problems)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [p.to_row() | {"metadata": json.dumps(dict(p.metadata)), "weight": 1.0}
                for p in problems]
        base_write, _ = timed(lambda: pq.write_table(pa.Table.from_pylist(rows),
                                                     root / "baseline.parquet"))
        base_read, _ = timed(lambda: [Problem.from_row(r | {"metadata": json.loads(r["metadata"])})
                                      for r in pq.read_table(root / "baseline.parquet").to_pylist()])
        store = PromptStore(root / "store")
        graph_s, graph = timed(lambda: lineage.graph_for(problems, 1))
        publish_s, _ = timed(lambda: store.publish("bench", NewVersion(problems, graph),
                                                   parent=None))
        load_s, loaded = timed(lambda: store.load("bench"))
        if loaded.problems != tuple(problems):
            raise SystemExit("round trip changed the problems")
        variants = [p.variant(p.text + " Variant.", synthesizer="svs")
                    for p in problems[: args.problems // 2]]
        labels = {p.id: "memorized" for p in problems[::10]}
        plan_s, plan = timed(lambda: plan_refresh(loaded.problems, loaded.weights,
                                                  loaded.lineage, variants, labels,
                                                  RefreshConfig(), 2))
    print(f"problems: {args.problems}  (added {len(plan.added)}, refused {len(plan.rejects)})")
    print(f"baseline pyarrow write {base_write:.3f}s  read+records {base_read:.3f}s")
    print(f"store publish {publish_s:.3f}s (+ lineage build {graph_s:.3f}s)  "
          f"ratio {publish_s / base_write:.1f}x")
    print(f"store load (checksums verified) {load_s:.3f}s  ratio {load_s / base_read:.1f}x")
    print(f"plan_refresh {plan_s:.3f}s")


if __name__ == "__main__":
    main()
