"""The entropy ledger: why is entropy falling? Pure functions of one optimizer step's tensors.

For a softmax policy the first-order entropy change of one update is
dH ~ -Cov_{a~pi}(log pi(a), dz(a)) (Cui et al., 2025); for policy-gradient updates dz
moves with pi * A, so the batch proxy is the covariance term over the trained tokens

    C = mean_i (lp_i - mean lp)(A_i - mean A)        (token-weighted, lp = log pi(token))

C > 0 drains entropy. It splits exactly into four quadrants by the sign of the centred
advantage and whether the token is more or less likely than the mean token:

- `pos_likely`   (A above mean, lp above mean): raising a likely token, C > 0, lowers H;
- `pos_unlikely` (A above, lp below): raising a rare token, C < 0, raises H;
- `neg_likely`   (A below, lp above): lowering a likely token, C < 0, raises H;
- `neg_unlikely` (A below, lp below): lowering a rare token, C > 0, lowers H.

Each quadrant and each stream logs its CONTRIBUTION (sum of its tokens' terms / all
tokens), so quadrants sum to C and streams sum to C. What the objective took away is
logged the same way: per removal rule (clip-low, clip-high, dual-clip, Clip-Cov detach,
KL-Cov penalty) the share of tokens and their contribution to C.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

QUADRANTS = ("pos_likely", "pos_unlikely", "neg_likely", "neg_unlikely")
REMOVALS = ("clip_low", "clip_high", "dual_clip", "clip_cov", "kl_cov")
# The trust region against which the ratio's drift is measured (PPO's usual epsilon).
TRUST_REGION = 0.2


def covariance_ledger(logprobs: torch.Tensor, advantages: torch.Tensor,
                      stream_index: torch.Tensor, streams: Sequence[str],
                      removed: Mapping[str, torch.Tensor],
                      ratio: torch.Tensor | None = None) -> dict[str, float]:
    """The ledger of one optimizer step from its M trained tokens, all (M,):
    `logprobs` (detached, under the policy being updated), `advantages` (the token's
    sequence advantage), `stream_index` (index into `streams`), `removed` (name -> bool,
    tokens whose gradient a rule removed or penalised), `ratio` (pi / pi_old)."""
    lp = logprobs.to(torch.float64)
    adv = advantages.to(torch.float64)
    count = lp.numel()
    metrics: dict[str, float] = {"entropy/tokens": float(count)}
    if not count:
        return metrics
    centred_lp, centred_adv = lp - lp.mean(), adv - adv.mean()
    terms = centred_lp * centred_adv  # (M,)
    likely, positive = centred_lp > 0, centred_adv > 0
    quadrants = {"pos_likely": positive & likely, "pos_unlikely": positive & ~likely,
                 "neg_likely": ~positive & likely, "neg_unlikely": ~positive & ~likely}
    # Every split is a 0/1 row over the tokens: one matrix product gives all the sums.
    names, rows = ["entropy/cov"], [torch.ones_like(likely)]
    for name, where in quadrants.items():
        names.append(f"entropy/cov/{name}")
        rows.append(where)
    present = [(i, s) for i, s in enumerate(streams) if bool((stream_index == i).any())]
    stream_rows = []
    for index, stream in present:
        in_stream = stream_index == index
        stream_rows.append(len(rows))
        names.append(f"entropy/cov/{stream}")
        rows.append(in_stream)
        for name, where in quadrants.items():
            names.append(f"entropy/cov/{stream}/{name}")
            rows.append(in_stream & where)
    any_removed = torch.zeros(count, dtype=torch.bool)
    for name, mask in removed.items():
        any_removed |= mask.bool()
        names.append(f"entropy/removed/{name}/cov")
        rows.append(mask.bool())
    splits = torch.stack(rows).to(torch.float64)  # (K, M)
    sums = (splits @ terms / count).tolist()
    sizes = splits.sum(dim=1).tolist()
    metrics.update(zip(names, sums, strict=True))
    for (_, stream), row in zip(present, stream_rows, strict=True):
        metrics[f"entropy/tokens/{stream}"] = sizes[row]
    for offset, name in enumerate(removed, start=len(names) - len(removed)):
        metrics[f"entropy/removed/{name}/token_share"] = sizes[offset] / count
    metrics["entropy/lp_mean"] = float(lp.mean())
    metrics["entropy/adv_centred_abs"] = float(centred_adv.abs().mean())
    if ratio is not None:
        deviation = (ratio.to(torch.float64) - 1.0).abs()
        outside = deviation > TRUST_REGION
        dev, out, unclipped = torch.stack([deviation.mean(), outside.double().mean(),
                                           (outside & ~any_removed).double().mean()]).tolist()
        metrics.update({"entropy/ratio_dev": dev, "entropy/ratio_outside": out,
                        "entropy/ratio_outside_unclipped": unclipped})
    return metrics


def sequence_covariance(advantages: Sequence[float], logprob_sums: Sequence[float],
                        token_counts: Sequence[int]) -> float:
    """C recomputed from per-sequence (A, sum of lp, token count), e.g. from a rollout
    dump: A is constant along a sequence, so sum_i (lp_i - mean lp)(A_i - mean A) =
    sum_s (A_s - mean A)(S_s - n_s mean lp). NaN without tokens."""
    total = sum(token_counts)
    if not total:
        return float("nan")
    mean_adv = sum(a * n for a, n in zip(advantages, token_counts, strict=True)) / total
    mean_lp = sum(logprob_sums) / total
    return sum((a - mean_adv) * (s - n * mean_lp)
               for a, s, n in zip(advantages, logprob_sums, token_counts, strict=True)) / total


def group_shares(rewards: Sequence[float], groups: Sequence[str],
                 streams: Sequence[str]) -> dict[str, float]:
    """Per stream: share of groups whose rewards are all equal (`zero_variance`), all
    correct (`solved`: the memorized end) and all wrong (`unsolved`); over all streams,
    `entropy/zero_variance_share`."""
    by_group: dict[str, list[float]] = {}
    stream_of: dict[str, str] = {}
    for reward, group, stream in zip(rewards, groups, streams, strict=True):
        by_group.setdefault(group, []).append(reward)
        stream_of[group] = stream
    metrics: dict[str, float] = {}
    counts: dict[str, list[int]] = {}
    for group, values in by_group.items():
        flat = max(values) == min(values)
        solved = flat and values[0] >= 1.0
        unsolved = flat and values[0] <= 0.0
        counts.setdefault(stream_of[group], [0, 0, 0, 0])
        row = counts[stream_of[group]]
        row[0] += 1
        row[1] += flat
        row[2] += solved
        row[3] += unsolved
    for stream, (total, flat, solved, unsolved) in counts.items():
        metrics[f"entropy/zero_variance_share/{stream}"] = flat / total
        metrics[f"entropy/solved_share/{stream}"] = solved / total
        metrics[f"entropy/unsolved_share/{stream}"] = unsolved / total
    groups_total = sum(row[0] for row in counts.values())
    if groups_total:
        metrics["entropy/zero_variance_share"] = sum(row[1] for row in counts.values()) / groups_total
    return metrics


def mean_rows(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Key-wise mean over the optimizer steps of one training step (keys missing from a
    row are not counted), plus `entropy/cov_sum` (sum of C: what the step's updates add)."""
    sums: dict[str, float] = {}
    seen: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            sums[key] = sums.get(key, 0.0) + value
            seen[key] = seen.get(key, 0) + 1
    metrics = {key: sums[key] / seen[key] for key in sums}
    if "entropy/cov" in sums:
        metrics["entropy/cov_sum"] = sums["entropy/cov"]
    return metrics
