import pytest

from svs.verifiers.problems import (
    NearDuplicateIndex,
    ProblemCheckConfig,
    check_answer_leak,
    check_problem,
    check_problems,
)

GOOD = ("A bag holds red and blue marbles in the ratio 3:5. After 12 red marbles are added the "
        "ratio becomes 9:10. How many blue marbles are in the bag?")
CORPUS = {
    "dapo-1": "Find the number of ordered pairs of positive integers (a, b) such that a + b = 1000 "
              "and neither a nor b has a zero digit.",
    "dapo-2": "Let x and y be real numbers with x + y = 10 and xy = 21. Compute x^3 + y^3.",
    "dapo-3": GOOD,
}


@pytest.mark.parametrize("text, answer, reason", [
    ("", "4", "empty"),
    ("   \n\t ", "4", "empty"),
    (None, "4", "empty"),
    (12345, "4", "empty"),
    ("Compute 2+2.", "4", "too_short"),
    ("Solve x+1=5 now.", "4", "too_short"),
    (" ".join(f"Let a_{i} equal {i} squared." for i in range(300)), "4", "too_long"),
    ("Find x such that \x00 x + 1 = 5 holds for the real number x.", "4", "garbage"),
    ("Find x such that x + 1 = 5 holds \udc80 for the real number x here.", "4", "garbage"),
    ("Find x such that x + 1 = 5 holds, " + "!" * 60, "4", "garbage"),
    ("12 + 34 = ? 56 * 78 = ? 90 / 12 = ? 3^4 = ? 5! = ? ((1)) + [2] - {3}", "1", "garbage"),
    ("the " * 30 + "value of x in x + 1 = 5", "4", "garbage"),
    ("A bag has 3 red marbles; the answer is 17. How many marbles are blue?", "17", "answer_leak"),
    ("A bag has 3 red marbles and 5 blue ones. Answer: $\\frac{3}{8}$. What share is red?",
     "\\frac{3}{8}", "answer_leak"),
    ("Show that \\boxed{7} is the number of ways to choose the committee here.", "7", "answer_leak"),
    ("The final count of 1024 tiles covers the board; how many tiles cover the board?", "1024",
     "answer_leak"),
    ("Compute the value of $\\dfrac{ 22 }{7}$ rounded to the nearest tenth, please.", "$\\frac{22}{7}$",
     "answer_leak"),
])
def test_each_failure_has_its_reason(text, answer, reason):
    verdict = check_problem(text, answer)
    assert not verdict.ok
    assert verdict.reason == reason, verdict.detail
    assert verdict.detail


@pytest.mark.parametrize("text, answer", [
    (GOOD, "25"),
    ("There are 120 students in 4 classes of equal size. How many are in each class?", "30"),
    ("How many positive divisors does 1200 have, counting 1 and the number itself?", "120"),
    ("In base 10, what is the sum of the digits of 2^10? Give the result as an integer.", "7"),
    ("Let f(x) = x^2 + 3x. Find f(2) + f(-2), and give your result as a whole number.", "8"),
])
def test_honest_problems_pass(text, answer):
    assert check_problem(text, answer) == check_problem(text, answer)
    verdict = check_problem(text, answer)
    assert verdict.ok, verdict


def test_numbers_leak_only_as_whole_numbers():
    config = ProblemCheckConfig()
    assert check_answer_leak("Split 1200 coins among friends fairly.", "120", config).ok
    assert check_answer_leak("Split 3.120 kg of flour fairly among friends.", "120", config).ok
    assert not check_answer_leak("Split the 120 coins among friends fairly.", "120", config).ok


def test_near_duplicates_of_the_corpus_are_rejected():
    index = NearDuplicateIndex(CORPUS)
    reworded = CORPUS["dapo-1"].replace("Find", "Determine")
    copied = "  " + CORPUS["dapo-2"].upper() + " "
    fresh = "A circle of radius 5 is inscribed in a square. What is the area between them, to two decimals?"
    verdicts = check_problems([(reworded, "738"), (copied, "370"), (fresh, "21.46"), ("", "1")],
                              index=index)
    assert [v.reason for v in verdicts] == ["near_duplicate", "near_duplicate", "ok", "empty"]
    assert "dapo-1" in verdicts[0].detail
    assert "identical to dapo-2" in verdicts[1].detail
    index.add(["new-1"], [fresh])
    assert check_problem(fresh, "21.46", index=index).reason == "near_duplicate"
    assert len(index) == 4


def test_near_duplicate_threshold_is_configurable():
    reworded = CORPUS["dapo-1"].replace("positive integers", "natural numbers")
    strict = NearDuplicateIndex(CORPUS, ProblemCheckConfig(near_duplicate_threshold=0.95))
    loose = NearDuplicateIndex(CORPUS, ProblemCheckConfig(near_duplicate_threshold=0.5))
    assert strict.check([reworded])[0].ok
    assert loose.check([reworded])[0].reason == "near_duplicate"


def test_index_from_a_plain_list():
    index = NearDuplicateIndex(list(CORPUS.values()))
    assert "corpus-2" in index.check([GOOD])[0].detail


@pytest.mark.parametrize("kwargs, message", [
    ({"min_chars": 50, "max_chars": 10}, "min_chars"),
    ({"near_duplicate_threshold": 0}, "near_duplicate_threshold"),
    ({"num_perm": 100, "bands": 32}, "multiple"),
    ({"max_char_run": 1}, "max_char_run"),
    ({"leak_min_chars": 0}, "leak_min_chars"),
])
def test_config_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProblemCheckConfig(**kwargs)
    assert all(ProblemCheckConfig.help().values())
