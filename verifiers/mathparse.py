r"""A small, strict parser from problem-text maths to sympy objects, built node by node.

The symbolic synthesizer reads arithmetic expressions and one-variable equations out
of problem texts. Problem texts can be model-written (earlier synthesis rounds), so
they never reach `sympify`/`parse_expr`: this recursive-descent parser accepts a small
grammar (numbers, one-letter variables, + - * / ^, parentheses and braces,
``\frac{a}{b}``, ``\times``, ``\cdot``, ``\div``), builds the expression from
`sympy.Integer` / `Rational` / `Symbol` with Python operators, and bounds its size,
literal magnitudes and exponents so no input can make sympy compute for long.

Every token keeps its character span, so callers can rewrite one literal in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy

MAX_CHARS = 300
MAX_TOKENS = 120
MAX_LITERAL = 10**12
MAX_EXPONENT = 20
# Bound on the size of an exact power: without it "((9)^{20})^{20}..." nested a few
# times makes sympy compute an integer of billions of digits.
MAX_POWER_BITS = 4096
_COMMANDS = {"\\times": "*", "\\cdot": "*", "\\div": "/", "\\frac": "frac"}
_IGNORED_COMMANDS = ("\\left", "\\right", "\\,", "\\;", "\\!", "\\ ")


class ParseError(ValueError):
    """The text is outside the accepted grammar or its limits."""


@dataclass(frozen=True)
class Token:
    kind: str  # num | var | op | frac
    text: str
    start: int
    end: int


def tokenize(text: str, names: frozenset[str] = frozenset()) -> list[Token]:
    """Tokens of `text`; multi-letter identifiers are accepted only when in `names`."""
    if len(text) > MAX_CHARS:
        raise ParseError(f"expression longer than {MAX_CHARS} characters")
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char.isdigit() or (char == "." and text[index + 1:index + 2].isdigit()):
            end = index
            while end < len(text) and (text[end].isdigit() or text[end] == "."):
                end += 1
            literal = text[index:end]
            if literal.count(".") > 1 or literal.endswith("."):
                raise ParseError(f"bad number {literal!r}")
            tokens.append(Token("num", literal, index, end))
            index = end
        elif char.isalpha() and char.isascii():
            end = index
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[index:end]
            if len(word) > 1 and word not in names:
                raise ParseError(f"unknown name {word!r}")
            tokens.append(Token("var", word, index, end))
            index = end
        elif char == "\\":
            ignored = next((c for c in _IGNORED_COMMANDS if text.startswith(c, index)), None)
            if ignored:
                index += len(ignored)
                continue
            end = index + 1
            while end < len(text) and text[end].isalpha():
                end += 1
            command = text[index:end]
            if command not in _COMMANDS:
                raise ParseError(f"unsupported LaTeX command {command!r}")
            meaning = _COMMANDS[command]
            tokens.append(Token("frac" if meaning == "frac" else "op", meaning, index, end))
            index = end
        elif char in "+-*/^(){}[]=":
            if text.startswith("**", index):
                tokens.append(Token("op", "^", index, index + 2))
                index += 2
                continue
            normal = {"{": "(", "}": ")", "[": "(", "]": ")"}.get(char, char)
            tokens.append(Token("op", normal, index, index + 1))
            index += 1
        else:
            raise ParseError(f"unexpected character {char!r}")
        if len(tokens) > MAX_TOKENS:
            raise ParseError(f"more than {MAX_TOKENS} tokens")
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            raise ParseError(f"expected {text or 'more input'}")
        self.position += 1
        return token

    def expression(self) -> sympy.Expr:
        value = self.term()
        while (token := self.peek()) is not None and token.text in ("+", "-"):
            self.take()
            right = self.term()
            value = value + right if token.text == "+" else value - right
        return value

    def term(self) -> sympy.Expr:
        value = self.unary()
        while (token := self.peek()) is not None:
            if token.text in ("*", "/"):
                self.take()
                right = self.unary()
                if token.text == "/":
                    if right == 0:
                        raise ParseError("division by zero")
                    value = value / right
                else:
                    value = value * right
            elif token.kind in ("var", "frac") or token.text == "(":
                value = value * self.power()  # implicit product: 2x, 3(x+1), (x+1)(x-2)
            else:
                break
        return value

    def unary(self) -> sympy.Expr:
        token = self.peek()
        if token is not None and token.text in ("+", "-"):
            self.take()
            inner = self.unary()
            return -inner if token.text == "-" else inner
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        if (token := self.peek()) is not None and token.text == "^":
            self.take()
            exponent = self.unary()
            if not (exponent.is_Integer and abs(int(exponent)) <= MAX_EXPONENT):
                raise ParseError(f"exponents must be integers within +-{MAX_EXPONENT}")
            if base == 0 and exponent < 0:
                raise ParseError("division by zero")
            if base.is_Rational:
                bits = max(abs(base.p).bit_length(), base.q.bit_length())
                if bits * abs(int(exponent)) > MAX_POWER_BITS:
                    raise ParseError(f"power too large (over {MAX_POWER_BITS} bits)")
            result = base**exponent
            if any(abs(power.exp) > MAX_EXPONENT for power in result.atoms(sympy.Pow)
                   if power.exp.is_Integer):
                raise ParseError(f"combined exponents must stay within +-{MAX_EXPONENT}")
            return result
        return base

    def atom(self) -> sympy.Expr:
        token = self.take()
        if token.kind == "num":
            fraction = Fraction(token.text)  # digits and one dot only, see tokenize
            value = sympy.Rational(fraction.numerator, fraction.denominator)
            if abs(value) > MAX_LITERAL:
                raise ParseError(f"literal {token.text} is larger than {MAX_LITERAL}")
            return value
        if token.kind == "var":
            return sympy.Symbol(token.text)
        if token.kind == "frac":
            self.take("(")
            numerator = self.expression()
            self.take(")")
            self.take("(")
            denominator = self.expression()
            self.take(")")
            if denominator == 0:
                raise ParseError("division by zero")
            return numerator / denominator
        if token.text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        raise ParseError(f"unexpected {token.text!r}")


def parse_tokens(tokens: list[Token]) -> sympy.Expr:
    if not tokens:
        raise ParseError("empty expression")
    parser = _Parser(tokens)
    value = parser.expression()
    if parser.peek() is not None:
        raise ParseError(f"unexpected {parser.peek().text!r}")
    return value


def parse_expression(text: str, names: frozenset[str] = frozenset()) -> sympy.Expr:
    """The sympy expression for `text` (no '=' allowed)."""
    tokens = tokenize(text, names)
    if any(t.text == "=" for t in tokens):
        raise ParseError("an expression may not contain '='")
    return parse_tokens(tokens)


def parse_equation(text: str) -> tuple[sympy.Expr, sympy.Expr]:
    """(left, right) of `left = right`; exactly one '=' allowed."""
    tokens = tokenize(text)
    splits = [i for i, t in enumerate(tokens) if t.text == "="]
    if len(splits) != 1:
        raise ParseError("an equation needs exactly one '='")
    return parse_tokens(tokens[:splits[0]]), parse_tokens(tokens[splits[0] + 1:])
