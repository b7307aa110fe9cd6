"""Diversity metrics: pure functions of one graded `RolloutGroup`.

No I/O and no state. Every metric is a number (NaN where it is undefined, e.g. the
similarity of correct solutions when fewer than two are correct) under a namespaced key
(`diversity/...`, `length/...`, `tokens/...`, `trend/...`).

Answer spread compares extracted answers as normalized strings (`normalize_answer`), not
as mathematics: it must be cheap and it must never parse model text in this process.
Two spellings of one value (`0.5`, `\\frac{1}{2}`) count as two answers; that inflates
spread only for wrong answers in practice, since correct ones are judged by the grader.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import networkx as nx
import numpy as np

from svs.core.records import RolloutGroup
from svs.verifiers.textsim import DEFAULT_BINS, DEFAULT_NGRAM, oph_signatures, oph_similarity

_LATEX_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "$")


def normalize_answer(answer: str | None) -> str | None:
    """A cheap canonical spelling of an extracted answer, for counting distinct ones."""
    if answer is None:
        return None
    text = answer
    for noise in _LATEX_NOISE:
        text = text.replace(noise, "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = "".join(text.split()).rstrip(".")
    return text or None


def solve_rate(group: RolloutGroup) -> float:
    return group.n_correct / group.n if group.n else math.nan


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # the ratio as a product keeps it exact-ish without huge binomials
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n, and n itself."""
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    if n and ks[-1] != n:
        ks.append(n)
    return ks


def pass_at_k_curve(n: int, c: int) -> dict[int, float]:
    return {k: pass_at_k(n, c, k) for k in pass_at_k_ks(n)}


def answer_counts(extracted: Iterable[str | None]) -> Counter:
    """How often each normalized answer occurs; completions without one are left out."""
    return Counter(a for a in map(normalize_answer, extracted) if a is not None)


def answer_entropy(counts: Counter) -> float:
    """Shannon entropy (bits) of the answer distribution; 0 for one or no answer."""
    total = sum(counts.values())
    if total == 0:
        return 0.0
    shares = np.array(list(counts.values()), dtype=float) / total
    return float(-(shares * np.log2(shares)).sum()) + 0.0


def majority_share(counts: Counter, n: int) -> float:
    """Share of all n rollouts that gave the most common answer (R-Zero's p)."""
    if n == 0:
        return math.nan
    return max(counts.values()) / n if counts else 0.0


def solution_similarity(texts: Sequence[str], *, ngram: int = DEFAULT_NGRAM,
                        num_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Estimated pairwise Jaccard similarity (word n-gram shingles) of texts, (n, n)."""
    if not texts:
        return np.zeros((0, 0))
    return oph_similarity(oph_signatures(texts, ngram=ngram, num_bins=num_bins))


def similarity_clusters(similarity: np.ndarray, threshold: float) -> list[list[int]]:
    """Connected components of the graph joining pairs with similarity >= threshold.

    Single linkage on purpose: light rewordings of one solution chain together even
    when the two most distant rewordings fall below the threshold. Largest first.
    """
    n = similarity.shape[0]
    if n == 0:
        return []
    linked = similarity >= threshold
    if linked.all():  # fast paths for the two common extremes; same result as the graph
        return [list(range(n))]
    if not np.triu(linked, k=1).any():
        return [[i] for i in range(n)]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    rows, cols = np.nonzero(np.triu(linked, k=1))
    graph.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
    clusters = [sorted(c) for c in nx.connected_components(graph)]
    return sorted(clusters, key=lambda c: (-len(c), c[0]))


def effective_count(sizes: Sequence[int]) -> float:
    """exp(Shannon entropy) of the size distribution: k equal clusters give k."""
    total = sum(sizes)
    if total == 0:
        return 0.0
    shares = np.array(sizes, dtype=float) / total
    return float(np.exp(-(shares * np.log(shares)).sum()))


def mean_pairwise(similarity: np.ndarray) -> float:
    n = similarity.shape[0]
    if n < 2:
        return math.nan
    return float(similarity[np.triu_indices(n, k=1)].mean())


def correct_solution_metrics(similarity: np.ndarray, threshold: float) -> dict[str, float]:
    """Diversity of the correct solutions given their pairwise similarity matrix."""
    n = similarity.shape[0]
    if n == 0:
        return {"diversity/mean_similarity": math.nan, "diversity/solution_diversity": math.nan,
                "diversity/clusters": 0.0, "diversity/largest_cluster_share": math.nan,
                "diversity/effective_solutions": 0.0}
    clusters = similarity_clusters(similarity, threshold)
    mean_similarity = mean_pairwise(similarity)
    return {
        "diversity/mean_similarity": mean_similarity,
        "diversity/solution_diversity": 1.0 - mean_similarity,
        "diversity/clusters": float(len(clusters)),
        "diversity/largest_cluster_share": len(clusters[0]) / n,
        "diversity/effective_solutions": effective_count([len(c) for c in clusters]),
    }


def length_metrics(completions: Sequence[str]) -> dict[str, float]:
    lengths = np.array([len(c) for c in completions], dtype=float)
    if lengths.size == 0:
        return {"length/mean_chars": math.nan, "length/std_chars": math.nan,
                "length/max_chars": math.nan}
    return {"length/mean_chars": float(lengths.mean()), "length/std_chars": float(lengths.std()),
            "length/max_chars": float(lengths.max())}


def token_metrics(group: RolloutGroup) -> dict[str, float]:
    """Mean negative log-likelihood per sampled token, when logprobs were recorded.

    With only the sampled tokens' log-probabilities the mean NLL is the Monte-Carlo
    estimate of the policy's mean token entropy (E[-log p(x)] = H), which is why it is
    also reported under that name.
    """
    logprobs = [r.token_logprobs for r in group.rollouts if r.token_logprobs]
    if not logprobs:
        return {}
    flat = np.concatenate([np.asarray(lp, dtype=float) for lp in logprobs])
    nll = float(-flat.mean())
    return {"tokens/mean_nll": nll, "tokens/entropy_estimate": nll,
            "tokens/mean_count": float(np.mean([len(lp) for lp in logprobs]))}


def group_metrics(group: RolloutGroup, *, similarity: np.ndarray | None = None,
                  cluster_threshold: float = 0.4, ngram: int = DEFAULT_NGRAM,
                  num_bins: int = DEFAULT_BINS) -> dict[str, float]:
    """All single-group metrics. `similarity` is the pairwise similarity matrix of the
    group's correct completions in rollout order (computed here when not given)."""
    if not group.is_graded:
        raise ValueError(f"group {group.problem_id} has ungraded rollouts; grade them first "
                         "(pipeline.rollouts.load_rollout_groups grades automatically)")
    n, c = group.n, group.n_correct
    if n == 0:
        raise ValueError(f"group {group.problem_id} has no rollouts")
    correct = [r.completion for r in group.rollouts if r.correct]
    if similarity is None:
        similarity = solution_similarity(correct, ngram=ngram, num_bins=num_bins)
    counts = answer_counts(r.extracted for r in group.rollouts)
    metrics = {
        "diversity/n": float(n),
        "diversity/n_correct": float(c),
        "diversity/solve_rate": c / n if n else math.nan,
        **{f"diversity/pass@{k}": v for k, v in pass_at_k_curve(n, c).items()},
        "diversity/distinct_answers": float(len(counts)),
        "diversity/answer_entropy": answer_entropy(counts),
        "diversity/majority_share": majority_share(counts, n),
        "diversity/no_answer_share": sum(1 for r in group.rollouts if r.extracted is None) / n,
    }
    metrics.update(correct_solution_metrics(similarity, cluster_threshold))
    metrics.update(length_metrics([r.completion for r in group.rollouts]))
    metrics.update(token_metrics(group))
    return metrics


def trend_slope(steps: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values over steps (per step); NaN for < 2 distinct steps
    or when values are NaN."""
    x = np.asarray(steps, dtype=float)
    y = np.asarray(values, dtype=float)
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])
