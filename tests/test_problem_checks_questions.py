"""The non-question checks: each kind of junk a real 135M model wrote is caught with its
reason, and honest problems pass."""

from __future__ import annotations

import pytest

from svs.verifiers.problems import ProblemCheckConfig, check_problem

SEED = ("Let a string consist of digit 1, 2, 3. How many such strings of length 6 have "
        "adjacent digit differing by less than or equal to 1?")
SOLUTION = ("Let x_n, y_n, z_n be the number of length-n strings that end with digit 1, 2, 3 "
            "respectively. So the answer is \\boxed{239}.")


@pytest.mark.parametrize("text, reason", [
    # verbatim from the issue: what champ@v2 published
    ("<<memorial set>>\n<Spring 2019 Issue #70>\n<providers>\n</providers>\n\n<problem>\n|",
     "tag_soup"),
    ("---\nproblem\nNos Recreanos Fueron\nSolo\n\nIntroduceasamente Lasemas\n0\n...",
     "no_question"),
    ("---\n---\n| a | b |\n|---|---|\nHow many strings are there in total?", "markup_fragment"),
    ("Here is a block ``` with a stray fence in it. How many strings are there?",
     "markup_fragment"),
    ("El número de cadenas de longitud seis con dígitos uno dos tres es grande y bonito",
     "other_language"),
    ("Сколько существует строк длины шесть из цифр один два три?", "other_language"),
    ("The solution uses a recursion on the last digit of the string and adds three "
     "sequences together.", "about_a_problem"),
    ("A recursion on the last digit of the string and three sequences added together.",
     "no_question"),
    ("This problem is a classic example of a mathematical puzzle. How many are there?",
     "about_a_problem"),
    ("Study the worked solution and find the problem it answers. How many are there?",
     "prompt_echo"),
    ("Let x_n, y_n, z_n be the number of length-n strings that end with digit 1, 2, 3 "
     "respectively. Find x_6.", "prompt_echo"),
])
def test_non_questions_are_rejected_with_their_reason(text, reason):
    verdict = check_problem(text, "239", seed_text=SEED, prompt_texts=[SOLUTION])
    assert (verdict.ok, verdict.reason) == (False, reason), verdict.detail
    assert verdict.detail


@pytest.mark.parametrize("text", [
    "A bag holds 3 red and 5 blue balls. How many ways can two balls of different colours "
    "be picked?",
    "Find the number of strings of length 7 over the digits 1, 2, 3 in which adjacent "
    "digits differ by at most 1.",
    "Determine all integers n such that n^2 + 1 is divisible by n + 1.",
    "Prove that the sum of two odd integers is even.",
    "Let $f(x) = x^2 - 3x$. Compute $f(5)$.",
])
def test_honest_problems_pass(text):
    assert check_problem(text, "239", seed_text=SEED, prompt_texts=[SOLUTION]).ok


def test_language_is_judged_only_against_an_english_seed():
    spanish = "El número de cadenas de longitud seis con dígitos uno dos tres es grande"
    spanish_seed = "¿Cuántas cadenas de longitud seis hay con los dígitos uno, dos y tres?"
    assert check_problem(spanish + "?", "5", seed_text=spanish_seed).ok
    assert check_problem(spanish + "?", "5").ok  # no seed given: not judged
    assert check_problem(spanish + "?", "5", seed_text=SEED).reason == "other_language"


def test_settings_turn_checks_off():
    config = ProblemCheckConfig(require_question=False, max_echo_share=1.0)
    text = "A recursion on the last digit of the string and three sequences added together."
    assert check_problem(text, "239", config).ok
    with pytest.raises(ValueError, match="max_tag_share"):
        ProblemCheckConfig(max_tag_share=1.5)


def test_tags_are_matched_in_linear_time_on_hostile_text():
    import time

    from svs.verifiers.problems import check_markup

    text = "<a " * 100_000 + " How many?"
    started = time.perf_counter()
    assert check_markup(text, ProblemCheckConfig()).ok
    assert time.perf_counter() - started < 2.0
