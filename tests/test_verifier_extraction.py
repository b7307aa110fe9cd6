"""The workers' completion reader is math-verify's own extraction.

`verifiers.sandbox.make_completion_reader` repeats the steps of math-verify's
`extract_target_from_pred` so that it can say which pattern won (the graded row's
`method`). On every completion of the regression table it must return exactly what
`math_verify.parse(completion)` returns, except where the one deliberate difference
applies (a box math-verify could not parse: no guess), which must then be no answer.
"""

import json
import logging
from pathlib import Path

import pytest

from svs.verifiers.sandbox import make_completion_reader

math_verify = pytest.importorskip("math_verify")
logging.getLogger("math_verify").setLevel(logging.CRITICAL)

TABLE = Path(__file__).parent / "data" / "verifier_regression.jsonl"
COMPLETIONS = [json.loads(line)["completion"] for line in TABLE.read_text(encoding="utf-8").splitlines()
               if line]
SHAPES = [
    "We get $\\boxed{1}, \\boxed{2}$ and $\\boxed{3}$.",
    "Final Answer: The volume of $ABCD$ is 120.",
    "so the ratio is\n\\frac{10}{9}",
    "First $\\boxed{4}$, then the final answer is $5$. I hope it is correct.",
    "The roots are $32, 349$.",
    "It tends to $x \\leftarrow \\infty$.",
    "Answer: .25",
    "The answer is 3.",
]


@pytest.fixture(scope="module")
def read_completion():
    return make_completion_reader()


@pytest.mark.parametrize("completion", COMPLETIONS + SHAPES)
def test_reader_returns_what_parse_returns(read_completion, completion):
    if len(completion) > 5000:
        pytest.skip("long hostile-size rows are read from their tail; not a parse() comparison")
    ours, _, method = read_completion(completion)
    reference = math_verify.parse(completion)
    assert method in {"boxed", "final_answer", "latex_tail", "last_number", "none"}
    if [str(x) for x in ours] == [str(x) for x in reference]:
        return
    # the deliberate difference: math-verify guessed past a box it could not parse
    assert "\\boxed" in completion and not ours and method == "none", (ours, reference)
    assert reference


def test_methods_name_the_pattern(read_completion):
    assert read_completion("So $\\boxed{7}$.")[2] == "boxed"
    assert read_completion("The final answer is $7$. I hope it is correct.")[2] == "final_answer"
    assert read_completion("Answer: 7")[2] == "final_answer"
    assert read_completion("We compute $3+4$ and get $7$")[2] == "latex_tail"
    assert read_completion("adding gives 3 then 7")[2] == "last_number"
