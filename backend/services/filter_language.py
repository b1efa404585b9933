"""The runs filter language, parsed by lark into a small typed tree (``Node``), with no SQL in sight.

A superset of what MLflow's ``search_runs`` accepts: ``and``, ``or``, ``not``, parentheses,
``= != <> < <= > >=``, ``in (...)`` and ``not in``, ``like`` / ``ilike`` and their ``not``,
``is null`` / ``is not null`` and ``exists``; keywords in any case, strings in single or double
quotes (backslash escapes), a field segment in backticks when it is no plain name. For example::

    config.tricks.mixup_alpha > 0 and (tag = "keep" or name ilike "%cosine%") and peak.valid_top1 >= 80

What a field names is ``backend.services.filter_sql``'s business. Every way the text can be absurd
ends here or there as a ``FilterError`` (a 422), never as a database error: the text, the nesting
and the ``in`` lists have caps, numbers must be finite, strings hold no control characters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from lark import Lark, Token, Transformer, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from trainer.config import CONTROL_CHARACTERS

MAX_LENGTH = 2000
MAX_DEPTH = 32  # parentheses and nots nested; a real filter uses three or four
MAX_IN_VALUES = 200

GRAMMAR = r"""
?start: or_
?or_: and_ (_OR and_)*
?and_: not_ (_AND not_)*
?not_: _NOT not_ -> negation
     | atom
?atom: "(" or_ ")"
     | field COMPARE value -> compare
     | field _IN values -> in_
     | field _NOT _IN values -> not_in
     | field LIKE STRING -> like
     | field _NOT LIKE STRING -> not_like
     | field _EXISTS -> exists
     | field _IS _NULL -> is_null
     | field _IS _NOT _NULL -> is_not_null
values: "(" value ("," value)* ","? ")"
field: SEGMENT ("." SEGMENT)*
value: NUMBER | STRING | TRUE | FALSE | NULL

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_IN.2: /in\b/i
_IS.2: /is\b/i
_NULL.2: /null\b/i
_EXISTS.2: /exists\b/i
LIKE.2: /i?like\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
COMPARE: "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
SEGMENT: /[A-Za-z_][A-Za-z0-9_]*/ | /`[^`]+`/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/

%import common.WS
%ignore WS
"""

# What a parse error's "expected" names, in words a user reads.
_WORDS = {
    "SEGMENT": "a field such as config.optim.lr or status",
    "COMPARE": "a comparison (= != < <= > >=)",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "LIKE": "like or ilike",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "DOT": ".",
    "_AND": "and",
    "_OR": "or",
    "_NOT": "not",
    "_IN": "in",
    "_IS": "is",
    "_NULL": "null",
    "_EXISTS": "exists",
    "$END": "the end of the filter",
}

Value = float | int | str | bool | None


class FilterError(ValueError):
    """A filter that cannot be used; the message names the position (1-based column) where it can."""


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # one of = != < <= > >=
    value: Value


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    field: Field
    pattern: str
    case_sensitive: bool
    negated: bool


@dataclass(frozen=True)
class Exists:
    field: Field


@dataclass(frozen=True)
class IsNull:
    field: Field
    negated: bool


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


Node = Compare | In | Like | Exists | IsNull | Not | BoolOp


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


def _string(token: Token) -> str:
    text = re.sub(r"\\(.)", r"\1", token[1:-1], flags=re.DOTALL)
    if CONTROL_CHARACTERS.search(text):
        raise FilterError(f"column {token.column}: a string holds no control characters")
    return text


def _number(token: Token) -> float | int:
    text = str(token)
    number: float | int
    number = int(text) if re.fullmatch(r"[+-]?\d+", text) and len(text) <= 18 else float(text)
    if isinstance(number, float) and not math.isfinite(number):
        raise FilterError(f"column {token.column}: {text} is no finite number")
    return number


class _ToNodes(Transformer[Token, Node]):
    def field(self, segments: list[Token]) -> Field:
        return Field(tuple(str(s).strip("`") for s in segments))

    def value(self, children: list[Token]) -> Value:
        (token,) = children
        if token.type == "NUMBER":
            return _number(token)
        if token.type == "STRING":
            return _string(token)
        return {"TRUE": True, "FALSE": False, "NULL": None}[token.type]

    def values(self, children: list[Value]) -> tuple[Value, ...]:
        if len(children) > MAX_IN_VALUES:
            raise FilterError(f"an in list holds at most {MAX_IN_VALUES} values, not {len(children)}")
        return tuple(children)

    def compare(self, children: list) -> Compare:
        field, op, value = children
        return Compare(field, {"==": "=", "<>": "!="}.get(str(op), str(op)), value)

    def in_(self, children: list) -> In:
        return In(children[0], children[1], negated=False)

    def not_in(self, children: list) -> In:
        return In(children[0], children[1], negated=True)

    def like(self, children: list) -> Like:
        field, op, pattern = children
        return Like(field, _string(pattern), case_sensitive=str(op).lower() == "like", negated=False)

    def not_like(self, children: list) -> Like:
        field, op, pattern = children
        return Like(field, _string(pattern), case_sensitive=str(op).lower() == "like", negated=True)

    def exists(self, children: list) -> Exists:
        return Exists(children[0])

    def is_null(self, children: list) -> IsNull:
        return IsNull(children[0], negated=False)

    def is_not_null(self, children: list) -> IsNull:
        return IsNull(children[0], negated=True)

    def negation(self, children: list) -> Not:
        return Not(children[0])

    def and_(self, children: list) -> BoolOp:
        return BoolOp("and", tuple(children))

    def or_(self, children: list) -> BoolOp:
        return BoolOp("or", tuple(children))


def _expected(names: set[str]) -> str:
    words = sorted({_WORDS.get(name, name.lower()) for name in names})
    return " or ".join(words) if words else "something else"


def _syntax_error(text: str, exc: UnexpectedInput) -> FilterError:
    column = getattr(exc, "column", None)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return FilterError(f"the filter ends too soon: expected {_expected(set(exc.expected))}")
    if isinstance(exc, UnexpectedToken):
        found = str(exc.token)[:40]
        return FilterError(f"column {column}: unexpected {found!r}; expected {_expected(set(exc.expected))}")
    if isinstance(exc, UnexpectedCharacters):
        start = exc.pos_in_stream or 0
        found = text[start]
        return FilterError(f"column {column}: unexpected {found!r}; expected {_expected(set(exc.allowed or ()))}")
    return FilterError(f"column {column}: cannot read the filter here")


def _depth(tree: Tree[Token]) -> int:
    """The nesting of the parsed tree, walked without recursion (a deep tree is what it measures)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return deepest


def parse_filter(text: str) -> Node | None:
    """The filter as a tree; None for an empty filter (every run)."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"a filter has at most {MAX_LENGTH} characters, not {len(text)}")
    if not text.strip():
        return None
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    # A comparison and its field take two levels of the tree; parentheses alone take none.
    if _depth(tree) - 2 > MAX_DEPTH:
        raise FilterError(f"a filter nests at most {MAX_DEPTH} levels of parentheses and nots")
    try:
        return _ToNodes().transform(tree)
    except VisitError as exc:  # lark wraps what the callbacks raise
        if isinstance(exc.orig_exc, FilterError):
            raise exc.orig_exc from None
        raise
