"""Text similarity at scale: word n-gram shingles, MinHash / one-permutation hashing, LSH.

Everything runs on numpy arrays over a whole batch of texts at once, because diagnosis
compares ~270k completions in well under a minute: a Python loop per shingle would be
two orders of magnitude too slow.

Shingles. Text is lower-cased; a *word* is a maximal run of ASCII letters/digits or
non-ASCII bytes (punctuation and LaTeX operators separate words and are dropped). A
shingle is `ngram` consecutive words of one text; a text with fewer words than `ngram`
has its words as shingles. Word hashes are polynomial hashes of the bytes, computed for
all words of a batch with one prefix sum (uint64 arithmetic wraps, which is the modulus
we want), then mixed with the murmur3 finalizer.

Signatures. Two kinds, both estimating the Jaccard similarity of shingle sets:
- `oph_signatures`: one-permutation hashing (Li, Owen & Zhang, NIPS 2012): each shingle
  hash picks one of `num_bins` bins by its top bits and competes for that bin's minimum
  with its low 32 bits. One pass over the shingles, so it is what bulk diagnosis uses.
  Empty bins are kept as `EMPTY` and the estimator ignores bins empty in both texts.
- `minhash_signatures`: classic MinHash with `num_perm` hash functions (multiply-shift
  on the 64-bit shingle hash). Every slot is filled, which LSH banding needs; it costs
  `num_perm` operations per shingle, fine for problem texts.

`shingle_set` and `jaccard` are the plain-Python reference the tests compare against.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

EMPTY = np.uint32(0xFFFFFFFF)
DEFAULT_NGRAM = 3
DEFAULT_BINS = 128
# Bytes of text hashed per numpy pass. Small enough that the working arrays (~40x this)
# stay in cache: measured 8.6 us per 1.4 KB text at 64-128 KB, 30 us at 4 MB.
CHUNK_BYTES = 128 << 10

_MASK64 = (1 << 64) - 1
_BASE = 0x100000001B3  # FNV-64 prime: odd, so it has an inverse modulo 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
# Odd multipliers that make n-gram hashes order-sensitive.
_POSITION_MULTIPLIERS = (
    0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
)
_WORD_RE = re.compile(r"[0-9a-z\x80-\U0010ffff]+")

_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[ord("0"):ord("9") + 1] = True
_WORD_BYTE[ord("a"):ord("z") + 1] = True
_WORD_BYTE[0x80:] = True


def _fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


def _powers_of(base: int, size: int) -> np.ndarray:
    """[base**0, base**1, ..., base**(size-1)] modulo 2**64."""
    powers = np.empty(size, dtype=np.uint64)
    powers[0] = 1
    powers[1:] = np.cumprod(np.full(size - 1, base, dtype=np.uint64))
    return powers


class _Powers:
    """Cached BASE**i and BASE**-i modulo 2**64, grown on demand.

    Both arrays are swapped in as one tuple, so threads never see a mismatched pair.
    """

    def __init__(self) -> None:
        self._arrays = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))

    def get(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays
        if len(arrays[0]) < length:
            size = max(length, 2 * len(arrays[0]))
            arrays = (_powers_of(_BASE, size), _powers_of(_BASE_INV, size))
            self._arrays = arrays
        return arrays[0][:length], arrays[1][:length]


_POWERS = _Powers()


def _chunk_shingles(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of a few texts: (hashes uint64, doc index per hash int64)."""
    parts = [text.lower().encode("utf-8", "surrogatepass") for text in texts]
    lengths = np.fromiter((len(p) + 1 for p in parts), dtype=np.int64, count=len(parts))
    doc_start = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=doc_start[1:])
    data = np.frombuffer(b"\n".join(parts) + b"\n", dtype=np.uint8)
    is_word = _WORD_BYTE[data]
    edges = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    forward, inverse = _POWERS.get(len(data) + 1)
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    # (byte + 1) so that zero bytes still change the hash
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * forward[:len(data)], out=prefix[1:])
    words = (prefix[ends] - prefix[starts]) * inverse[starts]
    _fmix64(words)
    word_doc = np.searchsorted(doc_start, starts, side="right") - 1
    words_per_doc = np.bincount(word_doc, minlength=len(parts))

    n_full = len(words) - ngram + 1
    if n_full > 0:
        grams = words[:n_full].copy()
        for offset in range(1, ngram):
            grams += words[offset:offset + n_full] * np.uint64(_POSITION_MULTIPLIERS[offset % 8])
        _fmix64(grams)
        same_doc = word_doc[:n_full] == word_doc[ngram - 1:]
        grams, gram_doc = grams[same_doc], word_doc[:n_full][same_doc]
    else:
        grams, gram_doc = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    short = words_per_doc[word_doc] < ngram
    if short.any():  # texts with fewer than `ngram` words: their words are the shingles
        grams = np.concatenate((grams, words[short]))
        gram_doc = np.concatenate((gram_doc, word_doc[short]))
        order = np.argsort(gram_doc, kind="stable")
        grams, gram_doc = grams[order], gram_doc[order]
    return grams, gram_doc


def _chunks(texts: Sequence[str], chunk_bytes: int) -> list[tuple[int, int]]:
    bounds, start, size = [], 0, 0
    for index, text in enumerate(texts):
        size += len(text) + 1
        if size >= chunk_bytes:
            bounds.append((start, index + 1))
            start, size = index + 1, 0
    if start < len(texts):
        bounds.append((start, len(texts)))
    return bounds


def shingle_hashes(texts: Sequence[str], ngram: int = DEFAULT_NGRAM) -> list[np.ndarray]:
    """The set of shingle hashes of each text (sorted, unique uint64 arrays)."""
    out: list[np.ndarray] = []
    for start, stop in _chunks(texts, CHUNK_BYTES):
        grams, gram_doc = _chunk_shingles(texts[start:stop], ngram)
        cuts = np.searchsorted(gram_doc, np.arange(stop - start + 1))
        out.extend(np.unique(grams[cuts[i]:cuts[i + 1]]) for i in range(stop - start))
    return out


def oph_signatures(texts: Sequence[str], *, ngram: int = DEFAULT_NGRAM,
                   num_bins: int = DEFAULT_BINS,
                   on_chunk: Callable[[int], None] | None = None) -> np.ndarray:
    """One-permutation-hashing signatures, shape (len(texts), num_bins), uint32.

    `num_bins` must be a power of two. `on_chunk(n_texts_done)` is called after each
    internal chunk (progress bars).
    """
    if num_bins < 2 or num_bins & (num_bins - 1):
        raise ValueError(f"num_bins must be a power of two >= 2, got {num_bins}")
    shift = np.uint64(64 - (num_bins.bit_length() - 1))
    signatures = np.full((len(texts), num_bins), EMPTY, dtype=np.uint32)
    for start, stop in _chunks(texts, CHUNK_BYTES):
        grams, gram_doc = _chunk_shingles(texts[start:stop], ngram)
        keys = gram_doc * num_bins + (grams >> shift).astype(np.int64)
        values = (grams & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        flat = signatures[start:stop].reshape(-1)
        np.minimum.at(flat, keys, values)
        if on_chunk is not None:
            on_chunk(stop - start)
    return signatures


def oph_similarity(signatures: np.ndarray) -> np.ndarray:
    """Estimated pairwise Jaccard similarity of the rows of an OPH signature matrix.

    Two texts without any shingle count as identical (1.0); one empty and one not as 0.
    """
    sims = grouped_oph_similarity(signatures[None, :, :])
    return sims[0]


def grouped_oph_similarity(signatures: np.ndarray) -> np.ndarray:
    """Pairwise similarities within each group: (G, m, K) signatures -> (G, m, m)."""
    nonempty = signatures != EMPTY
    equal = signatures[:, :, None, :] == signatures[:, None, :, :]
    matches = (equal & nonempty[:, :, None, :]).sum(axis=-1)
    used = (nonempty[:, :, None, :] | nonempty[:, None, :, :]).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = np.where(used > 0, matches / np.maximum(used, 1), 1.0)
    return sims


def minhash_signatures(texts: Sequence[str], *, ngram: int = DEFAULT_NGRAM,
                       num_perm: int = DEFAULT_BINS, seed: int = 1) -> np.ndarray:
    """Classic MinHash signatures, shape (len(texts), num_perm), uint32; no empty slots
    except for texts without any word (all `EMPTY`)."""
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(1, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    addends = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    signatures = np.full((len(texts), num_perm), EMPTY, dtype=np.uint32)
    for start, stop in _chunks(texts, CHUNK_BYTES // 8):
        grams, gram_doc = _chunk_shingles(texts[start:stop], ngram)
        if len(grams) == 0:
            continue
        permuted = ((grams[:, None] * multipliers[None, :] + addends[None, :])
                    >> np.uint64(32)).astype(np.uint32)
        cuts = np.flatnonzero(np.diff(gram_doc, prepend=-1))
        signatures[start + gram_doc[cuts]] = np.minimum.reduceat(permuted, cuts, axis=0)
    return signatures


def minhash_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    if (a == EMPTY).all() and (b == EMPTY).all():
        return 1.0
    return float(np.mean(a == b))


def shingle_set(text: str, ngram: int = DEFAULT_NGRAM) -> set[tuple[str, ...]]:
    """Plain-Python shingles with the same word rule as the numpy path (reference)."""
    words = _WORD_RE.findall(text.lower())
    if len(words) < ngram:
        return {(word,) for word in words}
    return {tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)}


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity; two empty sets are identical (1.0)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class LSHMatch:
    key: str
    similarity: float


class LSHIndex:
    """Banded MinHash LSH: candidates share one band of `rows` slots, then the
    signature estimate is checked against the threshold."""

    def __init__(self, *, threshold: float = 0.7, num_perm: int = DEFAULT_BINS,
                 bands: int = 32, ngram: int = DEFAULT_NGRAM) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if bands < 1 or num_perm % bands:
            raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
        self.threshold, self.num_perm, self.bands, self.ngram = threshold, num_perm, bands, ngram
        self.rows = num_perm // bands
        self._buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(bands)]
        self._keys: list[str] = []
        self._signatures: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._keys)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        return minhash_signatures(texts, ngram=self.ngram, num_perm=self.num_perm)

    def add(self, keys: Sequence[str], texts: Sequence[str]) -> None:
        if len(keys) != len(texts):
            raise ValueError("add() needs one key per text")
        for key, signature in zip(keys, self.signatures(texts), strict=True):
            index = len(self._keys)
            self._keys.append(key)
            self._signatures.append(signature)
            for band, bucket in enumerate(self._buckets):
                bucket[signature[band * self.rows:(band + 1) * self.rows].tobytes()].append(index)

    def query(self, texts: Sequence[str]) -> list[LSHMatch | None]:
        """The most similar indexed text at or above the threshold, per query text."""
        results: list[LSHMatch | None] = []
        for signature in self.signatures(texts):
            candidates: set[int] = set()
            for band, bucket in enumerate(self._buckets):
                candidates.update(bucket.get(
                    signature[band * self.rows:(band + 1) * self.rows].tobytes(), ()))
            best: LSHMatch | None = None
            for index in candidates:
                similarity = minhash_similarity(signature, self._signatures[index])
                if similarity >= self.threshold and (best is None or similarity > best.similarity):
                    best = LSHMatch(self._keys[index], similarity)
            results.append(best)
        return results
