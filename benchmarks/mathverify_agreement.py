"""How often `svs grade` gives math-verify's verdict on math-verify's own test tables.

Fetches Math-Verify's released source archive for the installed version (`pip download
--no-binary :all:` into a temporary directory; nothing is kept or committed), reads the
parametrized rows of its tests that compare with default options, and grades each row
twice:

  (a) plain math-verify: `verify(parse(gold), parse(pred))`, the specification;
  (b) svs: `VerifierPool.grade([(gold, pred)])`, the completion through svs's extraction.

A row counts as agreeing when svs's `correct` equals the row's expected verdict. Every
disagreement is printed with svs's reason and extraction method; docs/verifier-tests.md
lists each one as a deliberate decision.

    python benchmarks/mathverify_agreement.py [--archive path/to/math_verify-X.tar.gz]
"""

from __future__ import annotations

import argparse
import ast
import logging
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

# Test functions whose rows call `compare_strings(gold, pred, match_types=["latex", "expr"])`
# (math-verify's default extraction targets, precision 6, strict) or `verify(parse(gold),
# parse(pred))`. Tables run with other options (expr only, latex only, other precision,
# strict=False, set relations) are not the default path and are left out.
DEFAULT_OPTION_TESTS = {
    "test_simple_fraction_notation", "test_sets_handling", "test_percent_notation",
    "test_math_extraction_edge_cases", "test_math_extraction_additional_cases",
    "test_boxed", "test_numina_cases", "test_open_thoughts", "test_string_extraction",
}
# This table has a precision column; its rows at the default precision (6) count.
PRECISION_COLUMN_TESTS = {"test_complex_math_expressions"}


def fetch_archive(dest: Path) -> Path:
    """Download math-verify's source archive for the installed version into `dest`."""
    wanted = version("math-verify")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--quiet", f"math-verify=={wanted}", "-d", str(dest)], check=True)
    return next(dest.glob("math_verify-*.tar.gz"))


def _rows_of(function: ast.FunctionDef) -> list[tuple]:
    for decorator in function.decorator_list:
        if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "parametrize"):
            rows = []
            for element in decorator.args[1].elts:
                try:
                    rows.append(tuple(ast.literal_eval(element)))
                except ValueError:  # a row built by a call: not a plain table row
                    continue
            return rows
    return []


def default_option_rows(archive: Path) -> list[tuple[str, str, bool, str]]:
    """(gold, pred, expected, origin) for every default-option row of the archive's tests."""
    rows = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 3 or parts[-2] != "tests" or not parts[-1].endswith(".py"):
                continue
            source = tar.extractfile(member).read().decode("utf-8")
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.FunctionDef):
                    continue
                origin = f"{parts[-1]}::{node.name}"
                if node.name in DEFAULT_OPTION_TESTS:
                    rows += [(g, p, bool(e), origin) for g, p, e in _rows_of(node)]
                elif node.name in PRECISION_COLUMN_TESTS:
                    rows += [(g, p, bool(e), origin) for g, p, e, precision in _rows_of(node)
                             if precision == 6]
    return rows


def plain_verdicts(rows) -> list[bool]:
    from math_verify import parse, verify

    return [bool(verify(parse(gold), parse(pred))) for gold, pred, _, _ in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="a math_verify sdist already downloaded")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    from svs.verifiers.grader import VerifierPool

    with tempfile.TemporaryDirectory() as tmp:
        archive = args.archive or fetch_archive(Path(tmp))
        rows = default_option_rows(archive)
    plain = plain_verdicts(rows)
    with VerifierPool(workers=2, timeout_s=5.0) as pool:
        grades = pool.grade([(gold, pred) for gold, pred, _, _ in rows])
    svs_agree = plain_agree = 0
    for (gold, pred, expected, origin), grade, reference in zip(rows, grades, plain, strict=True):
        plain_agree += reference == expected
        if grade.correct == expected:
            svs_agree += 1
            continue
        print(f"DISAGREE {origin}: gold={gold!r} pred={pred[-160:]!r} expected={expected} "
              f"svs={grade.reason}/{grade.method} extracted={grade.extracted!r}")
    total = len(rows)
    print(f"math-verify {version('math-verify')} default-option rows: {total}; "
          f"plain verify(parse, parse) agrees on {plain_agree}/{total}")
    print(f"svs grade agrees with math-verify's expected verdicts on {svs_agree}/{total} rows "
          f"({100 * svs_agree / total:.1f}%), agreement ratio {svs_agree / total:.3f}")


if __name__ == "__main__":
    main()
