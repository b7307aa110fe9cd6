r"""Problem-text checks for synthesized problems: each returns a `Verdict`, never raises.

`check_problem(text, answer, config, index)` runs them in order and returns the first
failure (or `Verdict(True, "ok")`):

- `empty`:           no text, or only white space (also: not a string at all);
- `garbage`:         control characters, invalid Unicode, a character run or a word
                     repeated far beyond prose, too few letters;
- `too_short` / `too_long`: outside [min_chars, max_chars] characters or < min_words words;
- `tag_soup`:        mostly HTML/XML-like tags (`<providers></providers>`, `<problem>`);
- `markup_fragment`: a piece of formatting rather than prose: fence remnants, horizontal
                     rules, table rows or headings making up much of the text;
- `other_language`:  the seed is English and the text is not (English function words
                     are nearly absent, or most letters are of another script);
- `about_a_problem`: the text talks about a problem or its solution ("the answer is",
                     "the given problem", "let's", "is a classic example", ...);
- `no_question`:     the text asks nothing: no question mark and no task word (find,
                     compute, determine, how many, what, prove, ...);
- `prompt_echo`:     the synthesis prompt's instructions or the seed's worked solution
                     repeated back (word 4-grams shared with it, or its stock phrases);
- `answer_leak`:     the reference answer is given away: a ``\boxed{}`` in the problem,
                     "the answer is <gold>", or the gold answer itself (if it is at least
                     `leak_min_chars` long, numbers matched on digit boundaries);
- `near_duplicate`:  word-shingle Jaccard >= threshold with a problem of a given corpus
                     (MinHash + LSH banding, `NearDuplicateIndex`).

The language, question and echo checks came from reading what a real 135M instruct
model writes (tests/data/smollm2_candidates.jsonl, hand-labelled; precision and recall
in docs/synthesis.md). `check_problem(..., seed_text=, prompt_texts=)` gives them the
seed problem (its language) and the texts the candidate must not echo.

Pure string work: nothing here parses the text as mathematics; every pattern is bounded.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from svs.core.config import field_help, option
from svs.core.records import Verdict, normalize_text
from svs.verifiers.answers import strip_gold
from svs.verifiers.textsim import LSHIndex

_LEAK_PHRASE = re.compile(r"(?:answer|result|solution)\s*(?:is|:|=|equals)\s*", re.IGNORECASE)
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)*$")
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9_ :.=\"'#-]{0,60}/?>")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_TASK_WORDS = re.compile(
    r"\b(?:find|compute|calculate|determine|evaluate|solve|prove|show|simplify|express|"
    r"how\s+many|how\s+much|how\s+long|how\s+far|what|which|who|when|where|list|count|"
    r"give|derive|estimate|verify|is\s+it|are\s+there|does|do|can|must|should|add|"
    r"subtract|multiply|divide|factor|expand|convert|arrange|choose|identify|construct)\b",
    re.IGNORECASE)
# Frequent English function words: a page of English prose is ~40% these.
ENGLISH_WORDS = frozenset("""a an the of to in on at by for with from and or but not no is are was
were be been being it its this that these those there their they them he she his her we our
you your i if then than so as such each every all any some many much how what which who whom
when where why can could will would shall should may might must do does did has have had let
find compute calculate determine number numbers one two three four five six ten into out up
about over under between how many value integer integers sum product""".split())
# Text about a problem or its solution, not a problem: what a weak model writes instead.
_ABOUT_A_PROBLEM = re.compile(
    r"\b(?:the\s+(?:final\s+)?answer\s+is|the\s+solution\s+(?:is|to|involves|uses|"
    r"presented|relies|provided)|the\s+(?:given|original)\s+(?:problem|work|solution)|"
    r"th(?:is|e)\s+problem\s+is|let's|i\s+understand|to\s+solve\s+this\s+problem|"
    r"is\s+a\s+classic\s+example|what\s+is\s+the\s+answer|i'm\s+here|"
    r"here\s+is\s+(?:a|the|my))\b", re.IGNORECASE)
# Stock phrases of synthesis prompts; a candidate that carries one is an echo.
ECHO_PHRASES = ("worked solution", "fenced block", "the problem it answers",
                "<the problem>", "self-contained problem", "most natural response",
                "design mathematics problems", "expert in problem synthesis",
                "reconstructed question", "do not include the solution",
                "state the problem only", "written by a student")



@dataclass(frozen=True)
class ProblemCheckConfig:
    """Thresholds of the problem-text checks."""

    min_chars: int = option(20, "Shortest acceptable problem text, in characters.")
    max_chars: int = option(4000, "Longest acceptable problem text, in characters (competition "
                           "problems rarely pass 2,000).")
    min_words: int = option(4, "Fewest words a problem must have.")
    leak_min_chars: int = option(
        3, "The gold answer counts as leaked when it appears verbatim in the text and is at "
        "least this long (short answers such as '2' or '10' occur by chance in honest problems); boxed "
        "answers and 'the answer is <gold>' are always leaks.")
    near_duplicate_threshold: float = option(
        0.8, "Word-3-gram Jaccard similarity at or above which a problem duplicates one of "
        "the corpus.")
    ngram: int = option(3, "Words per shingle for near-duplicate detection.")
    num_perm: int = option(128, "MinHash permutations of the near-duplicate index.")
    bands: int = option(32, "LSH bands (num_perm must be a multiple): more bands find lower "
                       "similarities as candidates, at more candidate checks.")
    min_letter_share: float = option(
        0.3, "Least share of non-space characters that must be letters; below it the text is "
        "garbage (symbol soup, digit dumps).")
    max_char_run: int = option(40, "Longest run of one repeated character allowed.")
    max_word_share: float = option(
        0.3, "Largest share of all words one word may take (texts of >= 20 words); above it "
        "the text is a degenerate repetition.")
    max_tag_share: float = option(
        0.15, "Largest share of the characters that HTML/XML-like tags may take (with at "
        "least two tags); above it the text is tag soup.")
    max_markup_line_share: float = option(
        0.3, "Largest share of non-empty lines that may be pure formatting (rules, fences, "
        "table rows, headings, lone tags).")
    min_english_share: float = option(
        0.08, "With an English seed, the least share of a candidate's words (>= 8 words) "
        "that must be common English function words; below it the text is another language.")
    require_question: bool = option(
        True, "A problem must ask something: a question mark or a task word.")
    max_echo_share: float = option(
        0.5, "Largest share of a candidate's word 4-grams that may come from the prompt "
        "texts (the seed's worked solution); above it the candidate echoes the prompt.")

    def __post_init__(self) -> None:
        if not 0 <= self.min_chars <= self.max_chars:
            raise ValueError(f"need 0 <= min_chars <= max_chars, got {self.min_chars} and {self.max_chars}")
        if self.min_words < 0 or self.leak_min_chars < 1:
            raise ValueError("min_words must be >= 0 and leak_min_chars >= 1")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise ValueError("near_duplicate_threshold must be in (0, 1], got "
                             f"{self.near_duplicate_threshold}")
        if self.ngram < 1 or self.bands < 1 or self.num_perm % self.bands:
            raise ValueError(f"need ngram >= 1 and num_perm ({self.num_perm}) a multiple of "
                             f"bands ({self.bands})")
        if not 0.0 <= self.min_letter_share <= 1.0 or not 0.0 < self.max_word_share <= 1.0:
            raise ValueError("min_letter_share must be in [0, 1] and max_word_share in (0, 1]")
        for name in ("max_tag_share", "max_markup_line_share", "min_english_share",
                     "max_echo_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_char_run < 2:
            raise ValueError(f"max_char_run must be >= 2, got {self.max_char_run}")

    @classmethod
    def help(cls) -> dict[str, str]:
        return field_help(cls)


OK = Verdict(True, "ok")


def check_empty(text: object) -> Verdict:
    if not isinstance(text, str):
        return Verdict(False, "empty", f"problem text is {type(text).__name__}, not a string")
    if not text.strip():
        return Verdict(False, "empty", "problem text is empty")
    return OK


def check_garbage(text: str, config: ProblemCheckConfig) -> Verdict:
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs" or char == "\ufffd":
            return Verdict(False, "garbage", "invalid Unicode (undecodable bytes)")
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            return Verdict(False, "garbage", f"control character U+{ord(char):04X}")
    run, longest, previous = 0, 0, ""
    for char in text:
        run = run + 1 if char == previous and not char.isspace() else 1
        previous = char
        longest = max(longest, run)
    if longest > config.max_char_run:
        return Verdict(False, "garbage", f"a character repeated {longest} times in a row")
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if visible and letters / len(visible) < config.min_letter_share:
        return Verdict(False, "garbage", f"only {letters / len(visible):.0%} of characters are "
                       f"letters (< {config.min_letter_share:.0%})")
    words = text.lower().split()
    if len(words) >= 20:
        word, count = Counter(words).most_common(1)[0]
        if count / len(words) > config.max_word_share:
            return Verdict(False, "garbage", f"the word {word[:20]!r} makes up "
                           f"{count / len(words):.0%} of the text")
    return OK


def check_length(text: str, config: ProblemCheckConfig) -> Verdict:
    length, words = len(text.strip()), len(text.split())
    if length < config.min_chars or words < config.min_words:
        return Verdict(False, "too_short", f"{length} characters / {words} words; need at least "
                       f"{config.min_chars} / {config.min_words}")
    if length > config.max_chars:
        return Verdict(False, "too_long", f"{length} characters; at most {config.max_chars}")
    return OK


def check_markup(text: str, config: ProblemCheckConfig) -> Verdict:
    tags = _TAG.findall(text)
    tag_chars = sum(len(t) for t in tags)
    if len(tags) >= 2 and tag_chars / max(1, len(text.strip())) > config.max_tag_share:
        return Verdict(False, "tag_soup", f"{len(tags)} tags make up "
                       f"{tag_chars / len(text.strip()):.0%} of the text (e.g. {tags[0][:30]!r})")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    markup = [line for line in lines if _is_markup_line(line)]
    if "```" in text:
        return Verdict(False, "markup_fragment", "the text holds a code fence")
    if lines and len(markup) / len(lines) > config.max_markup_line_share:
        return Verdict(False, "markup_fragment", f"{len(markup)} of {len(lines)} lines are "
                       f"formatting, e.g. {markup[0][:30]!r}")
    return OK


def _is_markup_line(line: str) -> bool:
    if set(line) <= set("-=*_#|~` :"):
        return True  # rules, fences, empty table rows, bare heading marks
    if line.startswith("|") and line.endswith("|"):
        return True
    return bool(_TAG.fullmatch(line))


def english_share(text: str) -> tuple[float, int]:
    """(share of words that are common English function words, number of words)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return 0.0, 0
    return sum(w in ENGLISH_WORDS for w in words) / len(words), len(words)


def _latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum("LATIN" in unicodedata.name(c, "") for c in letters) / len(letters)


def check_language(text: str, seed_text: str | None, config: ProblemCheckConfig) -> Verdict:
    """English seeds must give English candidates (other seeds are not judged)."""
    if not seed_text:
        return OK
    seed_share, seed_words = english_share(seed_text)
    if seed_words < 5 or seed_share < 0.2 or _latin_share(seed_text) < 0.8:
        return OK  # not recognisably English: no language judgement
    if _latin_share(text) < 0.5:
        return Verdict(False, "other_language", "most letters are not Latin script; the "
                       "seed is English")
    share, words = english_share(text)
    if words >= 8 and share < config.min_english_share:
        return Verdict(False, "other_language", f"only {share:.0%} of {words} words are common "
                       f"English words (seed: {seed_share:.0%})")
    return OK


def check_question(text: str, config: ProblemCheckConfig) -> Verdict:
    if not config.require_question:
        return OK
    about = _ABOUT_A_PROBLEM.search(text[:4000])
    if about:
        return Verdict(False, "about_a_problem", f"the text talks about a problem or its "
                       f"solution ({about.group(0)!r}) instead of posing one")
    if "?" in text or _TASK_WORDS.search(text):
        return OK
    return Verdict(False, "no_question", "the text asks nothing: no question mark and no "
                   "task word (find, compute, determine, how many, what, prove, ...)")


def _four_grams(text: str) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    return {tuple(words[i:i + 4]) for i in range(len(words) - 3)}


def check_echo(text: str, prompt_texts: Sequence[str], config: ProblemCheckConfig) -> Verdict:
    lowered = text.lower()
    for phrase in ECHO_PHRASES:
        if phrase in lowered:
            return Verdict(False, "prompt_echo", f"the text repeats the prompt's {phrase!r}")
    grams = _four_grams(text)
    if not grams or not prompt_texts:
        return OK
    echoed = set().union(*(_four_grams(t) for t in prompt_texts)) & grams
    if len(echoed) / len(grams) > config.max_echo_share:
        return Verdict(False, "prompt_echo", f"{len(echoed)} of {len(grams)} word 4-grams come "
                       f"from the prompt (the worked solution)")
    return OK


def _squash(text: str) -> str:
    """Spelling-insensitive form for leak search: no spaces, $, \\left/\\right, \\dfrac."""
    for noise in ("\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "$"):
        text = text.replace(noise, "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return "".join(text.split())


def _contains(haystack: str, needle: str) -> bool:
    if not _NUMBER.match(needle):
        return needle in haystack
    # a number leaks only as a whole number: 12 is not leaked by 120 or 3.12
    pattern = r"(?<![\d.,])" + re.escape(needle) + r"(?![\d]|[.,]\d)"
    return re.search(pattern, haystack) is not None


def check_answer_leak(text: str, answer: str, config: ProblemCheckConfig) -> Verdict:
    if "\\boxed" in text or "\\fbox" in text:
        return Verdict(False, "answer_leak", "the problem contains a \\boxed{} answer")
    gold = _squash(strip_gold(answer)) if isinstance(answer, str) else ""
    if not gold:
        return OK
    squashed = _squash(text)
    for match in _LEAK_PHRASE.finditer(squashed):
        if squashed[match.end():match.end() + len(gold) + 2].startswith(gold):
            return Verdict(False, "answer_leak", f"the text states 'the answer is {gold[:40]}'")
    if len(gold) >= config.leak_min_chars and _contains(squashed, gold):
        return Verdict(False, "answer_leak", f"the reference answer {gold[:40]!r} appears in the text")
    return OK


class NearDuplicateIndex:
    """Problems seen so far (a corpus, accepted problems) for near-duplicate checks."""

    def __init__(self, corpus: Mapping[str, str] | Iterable[str] = (),
                 config: ProblemCheckConfig | None = None) -> None:
        self.config = config or ProblemCheckConfig()
        self._lsh = LSHIndex(threshold=self.config.near_duplicate_threshold,
                             num_perm=self.config.num_perm, bands=self.config.bands,
                             ngram=self.config.ngram)
        self._exact: dict[str, str] = {}
        items = corpus.items() if isinstance(corpus, Mapping) else (
            (f"corpus-{i}", text) for i, text in enumerate(corpus))
        keys, texts = [], []
        for key, text in items:
            keys.append(str(key))
            texts.append(text)
        self.add(keys, texts)

    def __len__(self) -> int:
        return len(self._lsh)

    def add(self, keys: Sequence[str], texts: Sequence[str]) -> None:
        for key, text in zip(keys, texts, strict=True):
            self._exact.setdefault(normalize_text(text).lower(), key)
        self._lsh.add(keys, texts)

    def check(self, texts: Sequence[str]) -> list[Verdict]:
        """One verdict per text: `near_duplicate` naming the closest corpus item, or ok."""
        verdicts: list[Verdict] = []
        for text, match in zip(texts, self._lsh.query(texts), strict=True):
            exact = self._exact.get(normalize_text(text).lower())
            if exact is not None:
                verdicts.append(Verdict(False, "near_duplicate", f"identical to {exact}"))
            elif match is not None:
                verdicts.append(Verdict(False, "near_duplicate", f"similarity {match.similarity:.2f} "
                                        f"to {match.key} (threshold {self._lsh.threshold:.2f})"))
            else:
                verdicts.append(OK)
        return verdicts


def check_problem(text: object, answer: str, config: ProblemCheckConfig | None = None,
                  index: NearDuplicateIndex | None = None, *, seed_text: str | None = None,
                  prompt_texts: Sequence[str] = ()) -> Verdict:
    """All checks in order; the first failure, or `Verdict(True, "ok")`.

    `seed_text`: the seed problem (its language is the candidate's); `prompt_texts`: what
    the synthesis prompt showed (the seed solution), which the candidate must not echo.
    """
    config = config or ProblemCheckConfig()
    verdict = check_empty(text)
    if not verdict or not isinstance(text, str):  # the second test only narrows the type
        return verdict
    for check in (lambda: check_garbage(text, config), lambda: check_length(text, config),
                  lambda: check_markup(text, config),
                  lambda: check_language(text, seed_text, config),
                  lambda: check_answer_leak(text, answer, config),
                  lambda: check_question(text, config),
                  lambda: check_echo(text, prompt_texts, config)):
        verdict = check()
        if not verdict:
            return verdict
    if index is not None:
        return index.check([text])[0]
    return OK


def check_problems(items: Sequence[tuple[str, str]], config: ProblemCheckConfig | None = None,
                   index: NearDuplicateIndex | None = None) -> list[Verdict]:
    """Batch form over (text, answer) pairs; near-duplicates are looked up in one pass."""
    config = config or ProblemCheckConfig()
    verdicts = [check_problem(text, answer, config) for text, answer in items]
    if index is not None:
        passing = [i for i, v in enumerate(verdicts) if v]
        for i, verdict in zip(passing, index.check([items[i][0] for i in passing]), strict=True):
            verdicts[i] = verdict
    return verdicts
