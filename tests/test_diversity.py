import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.core.records import Rollout, RolloutGroup
from svs.pipeline import diversity

SOLUTION = ("We add the two fractions by writing both over the common denominator eight, "
            "so three quarters becomes six eighths and the sum is seven eighths. "
            "Therefore the answer is \\boxed{7/8}.")
OTHER_METHOD = ("Convert to decimals: zero point seven five plus zero point one two five "
                "equals zero point eight seven five, which is 7/8 as a fraction. \\boxed{7/8}")


def _group(completions, correct, extracted=None, logprobs=None):
    extracted = extracted or ["7/8" if c else "1/2" for c in correct]
    rollouts = [Rollout("p", "q", "7/8", text, correct=ok, extracted=ans,
                        token_logprobs=None if logprobs is None else logprobs[i])
                for i, (text, ok, ans) in enumerate(zip(completions, correct, extracted, strict=True))]
    return RolloutGroup.from_rollouts(rollouts)


def _brute_pass_at_k(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in subset) for subset in subsets) / len(subsets)


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
@settings(max_examples=60, deadline=None)
def test_pass_at_k_equals_brute_force_and_is_monotone(nc):
    n, c = nc
    values = [diversity.pass_at_k(n, c, k) for k in range(1, n + 1)]
    for k, value in enumerate(values, start=1):
        assert value == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert values[0] == pytest.approx(c / n)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="pass@k"):
        diversity.pass_at_k(4, 5, 1)
    assert diversity.pass_at_k_ks(16) == [1, 2, 4, 8, 16]
    assert diversity.pass_at_k_ks(12) == [1, 2, 4, 8, 12]
    assert diversity.pass_at_k_ks(1) == [1]


def test_identical_completions_give_minimum_diversity():
    metrics = diversity.group_metrics(_group([SOLUTION] * 8, [True] * 8))
    assert metrics["diversity/mean_similarity"] == 1.0
    assert metrics["diversity/solution_diversity"] == 0.0
    assert metrics["diversity/clusters"] == 1
    assert metrics["diversity/effective_solutions"] == 1.0
    assert metrics["diversity/distinct_answers"] == 1
    assert metrics["diversity/answer_entropy"] == 0.0
    assert metrics["diversity/majority_share"] == 1.0


def test_two_methods_form_two_clusters():
    completions = [SOLUTION, OTHER_METHOD] * 4
    metrics = diversity.group_metrics(_group(completions, [True] * 8))
    assert metrics["diversity/clusters"] == 2
    assert metrics["diversity/effective_solutions"] == pytest.approx(2.0)
    assert metrics["diversity/largest_cluster_share"] == 0.5


@given(st.randoms(use_true_random=False))
@settings(max_examples=25, deadline=None)
def test_permuting_rollouts_changes_nothing(rng: random.Random):
    texts = [SOLUTION, OTHER_METHOD, SOLUTION.replace("so", "thus"), "I do not know", "5"] * 2
    correct = [True, True, True, False, False] * 2
    extracted = ["7/8", "7/8", "7/8", None, "5"] * 2
    base = diversity.group_metrics(_group(texts, correct, extracted))
    order = list(range(len(texts)))
    rng.shuffle(order)
    shuffled = diversity.group_metrics(_group([texts[i] for i in order], [correct[i] for i in order],
                                              [extracted[i] for i in order]))
    assert shuffled.keys() == base.keys()
    for key, value in base.items():
        assert shuffled[key] == pytest.approx(value, nan_ok=True), key


def test_one_rollout_and_zero_correct_are_handled():
    one = diversity.group_metrics(_group([SOLUTION], [True]))
    assert one["diversity/solve_rate"] == 1.0
    assert one["diversity/pass@1"] == 1.0
    assert math.isnan(one["diversity/mean_similarity"])
    assert one["diversity/effective_solutions"] == 1.0
    none = diversity.group_metrics(_group(["no idea", "still no idea"], [False, False], [None, "3"]))
    assert none["diversity/solve_rate"] == 0.0
    assert none["diversity/pass@2"] == 0.0
    assert none["diversity/effective_solutions"] == 0.0
    assert math.isnan(none["diversity/solution_diversity"])
    assert none["diversity/no_answer_share"] == 0.5
    assert none["diversity/majority_share"] == 0.5


def test_answer_spread_uses_normalized_strings():
    counts = diversity.answer_counts(["\\dfrac{1}{2}", "\\frac{1}{2}", " \\frac {1}{2}.", "3", None])
    assert counts == {"\\frac{1}{2}": 3, "3": 1}
    assert diversity.answer_entropy(counts) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert diversity.majority_share(counts, 5) == 0.6


def test_token_metrics_need_logprobs():
    plain = diversity.group_metrics(_group([SOLUTION] * 2, [True] * 2))
    assert not any(key.startswith("tokens/") for key in plain)
    with_logprobs = diversity.group_metrics(
        _group([SOLUTION] * 2, [True] * 2, logprobs=[[-1.0, -3.0], [-2.0]]))
    assert with_logprobs["tokens/mean_nll"] == pytest.approx(2.0)
    assert with_logprobs["tokens/mean_count"] == 1.5


def test_ungraded_groups_are_refused():
    group = RolloutGroup.from_rollouts([Rollout("p", "q", "1", "text")])
    with pytest.raises(ValueError, match="grade them first"):
        diversity.group_metrics(group)


def test_trend_slope():
    assert diversity.trend_slope([1, 2, 3], [0.2, 0.4, 0.6]) == pytest.approx(0.2)
    assert math.isnan(diversity.trend_slope([5], [0.3]))
    assert diversity.trend_slope([1, 2, 3], [0.5, math.nan, 0.7]) == pytest.approx(0.1)


def test_similarity_clusters_chain_light_rewordings():
    # a~b and b~c but not a~c: single linkage keeps one trajectory
    sim = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.5], [0.1, 0.5, 1.0]])
    assert diversity.similarity_clusters(sim, 0.4) == [[0, 1, 2]]
    assert diversity.similarity_clusters(sim, 0.6) == [[0], [1], [2]]
    assert diversity.effective_count([4, 4, 4, 4]) == pytest.approx(4.0)
    assert diversity.similarity_clusters(np.zeros((0, 0)), 0.4) == []


@given(st.text(max_size=300), st.integers(2, 12))
@settings(max_examples=40, deadline=None)
def test_any_identical_correct_completions_have_minimum_diversity(text, n):
    metrics = diversity.group_metrics(_group([text] * n, [True] * n))
    assert metrics["diversity/mean_similarity"] == 1.0
    assert metrics["diversity/effective_solutions"] == 1.0
    assert metrics["diversity/clusters"] == 1


@given(st.integers(1, 9), st.floats(0.05, 0.95), st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_cluster_fast_paths_agree_with_the_graph(n, threshold, rng):
    import networkx as nx

    values = np.array([[rng.choice([0.0, 0.3, 0.6, 1.0]) for _ in range(n)] for _ in range(n)])
    sim = np.maximum(values, values.T)
    np.fill_diagonal(sim, 1.0)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((i, j) for i in range(n) for j in range(i + 1, n) if sim[i, j] >= threshold)
    expected = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: (-len(c), c[0]))
    assert diversity.similarity_clusters(sim, threshold) == expected
