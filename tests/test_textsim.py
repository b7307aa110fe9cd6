import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.verifiers import textsim

WORDS = [f"w{i}" for i in range(60)] + ["frac", "x", "2", "3", "Ünï", "ß"]


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _mutate(rng: random.Random, text: str, rate: float) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < rate else w for w in text.split())


@given(st.lists(st.text(max_size=80), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_numpy_shingles_match_the_python_reference(texts):
    hashed = textsim.shingle_hashes(texts)
    for text, hashes in zip(texts, hashed, strict=True):
        assert len(hashes) == len(textsim.shingle_set(text))


def test_same_word_sequence_gives_same_hashes_wherever_it_sits():
    a, b = textsim.shingle_hashes(["Alpha beta gamma delta", "zzz  ALPHA, beta; gamma delta!"])
    assert set(a.tolist()) <= set(b.tolist())
    assert len(set(b.tolist()) - set(a.tolist())) == 1  # only (zzz alpha beta) is new


def test_oph_estimate_tracks_exact_jaccard():
    rng = random.Random(0)
    errors = []
    for index in range(150):
        base = _text(rng, 220)
        other = _mutate(rng, base, rate=(index % 10) / 12)
        exact = textsim.jaccard(textsim.shingle_set(base), textsim.shingle_set(other))
        estimate = textsim.oph_similarity(textsim.oph_signatures([base, other]))[0, 1]
        errors.append(estimate - exact)
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.02  # unbiased
    assert errors.std() < 0.06
    assert np.abs(errors).max() < 0.2


def test_identical_empty_and_disjoint_texts():
    sims = textsim.oph_similarity(textsim.oph_signatures(
        ["one two three four", "one two three four", "", "", "five six seven eight"]))
    assert sims[0, 1] == 1.0
    assert sims[2, 3] == 1.0  # two texts without words are the same (empty) text
    assert sims[0, 2] == 0.0
    assert sims[0, 4] == 0.0
    assert np.allclose(sims, sims.T)


def test_grouped_similarity_equals_per_group():
    rng = random.Random(1)
    texts = [_text(rng, 50) for _ in range(12)]
    signatures = textsim.oph_signatures(texts)
    grouped = textsim.grouped_oph_similarity(signatures.reshape(3, 4, -1))
    for g in range(3):
        assert np.array_equal(grouped[g], textsim.oph_similarity(signatures[4 * g:4 * g + 4]))


def test_chunking_does_not_change_signatures(monkeypatch):
    rng = random.Random(2)
    texts = [_text(rng, rng.randint(0, 300)) for _ in range(300)]
    whole = textsim.oph_signatures(texts)
    monkeypatch.setattr(textsim, "CHUNK_BYTES", 700)
    assert np.array_equal(whole, textsim.oph_signatures(texts))


def test_num_bins_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        textsim.oph_signatures(["a b c"], num_bins=100)


def test_minhash_estimate_and_lsh_index():
    rng = random.Random(3)
    corpus = [_text(rng, 40) for _ in range(200)]
    index = textsim.LSHIndex(threshold=0.5)
    index.add([f"c{i}" for i in range(len(corpus))], corpus)
    near = _mutate(random.Random(4), corpus[17], rate=0.05)
    unrelated = _text(rng, 40)
    found, missing = index.query([near, unrelated])
    assert found is not None and found.key == "c17" and found.similarity >= 0.5
    assert missing is None
    exact = textsim.jaccard(textsim.shingle_set(near), textsim.shingle_set(corpus[17]))
    assert abs(found.similarity - exact) < 0.2


def test_lsh_index_rejects_bad_settings():
    with pytest.raises(ValueError, match="multiple of bands"):
        textsim.LSHIndex(num_perm=128, bands=30)
    with pytest.raises(ValueError, match="threshold"):
        textsim.LSHIndex(threshold=0.0)


def test_hostile_texts_hash_without_error():
    texts = ["nul\x00byte inside a text", "lone \udc80 surrogate \ud800 here", "x" * 1_000_000,
             "\\boxed{" * 10_000, "日本語 のテキスト です", "\n\n\t"]
    signatures = textsim.oph_signatures(texts)
    assert signatures.shape == (len(texts), textsim.DEFAULT_BINS)
    sims = textsim.oph_similarity(signatures)
    assert np.all((sims >= 0) & (sims <= 1))
    assert sims[2, 2] == 1.0 and sims[0, 1] == 0.0
