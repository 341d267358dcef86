"""A tiny, safe expression language for mapping specs.

Parsed once by a hand-written tokenizer and recursive-descent parser into a small tree,
then compiled into nested closures; user text is never given to ``eval``, ``exec`` or
``ast``. What an expression can do is exactly the whitelisted function table
(``functions.py``), reading fields of four names, and comparing values::

    upper(trim(source.last_name))
    money(source.amount, coalesce(source.currency, params.currency))
    lookup('gl_accounts', source.transaction_type, source.payment_method)
    if(source.account_type == 'corporate', source.company_name, source.last_name)

Grammar (lowest precedence first)::

    expr    := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := primary (('=='|'!='|'<'|'<='|'>'|'>=') primary)?
    primary := NUMBER | '-' NUMBER | STRING | 'true' | 'false' | 'null'
             | NAME '(' [expr (',' expr)*] ')'          -- a whitelisted function
             | ROOT ('.' FIELD)*                        -- source, existing, target, params
             | '[' [expr (',' expr)*] ']' | '(' expr ')'

Field access reads keys of records (dicts) only; there is no attribute access on Python
objects, so ``source.__class__`` is just a missing field and names starting with ``_``
are refused outright.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from ledgerlink.mapping.errors import ExpressionError, MappingValueError
from ledgerlink.mapping.scope import Scope
from ledgerlink.mapping.tables import LookupTable
from ledgerlink.mapping.transforms.currency import ISO_4217, CurrencyTable, Rounding
from ledgerlink.mapping.transforms.customer_ids import DEFAULT_FORMATS, IdFormat

Closure = Callable[[Scope], Any]

ROOTS: Final = ("source", "existing", "target", "vars", "params")
MAX_LENGTH: Final = 4000
MAX_DEPTH: Final = 40

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>\d+(?:\.\d+)?)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|,|\.|\[|\]|-)
    )""",
    re.VERBOSE,
)
_ESCAPES: Final = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
_KEYWORDS: Final = {"true": True, "false": False, "null": None}
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


# ---- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, string, name, op, end
    text: str
    column: int  # 1-based
    value: Any = None


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    tokens: list[Token] = []
    position = 0
    end = len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + 1 + (len(text[position:]) - len(text[position:].lstrip()))
            bad = text[column - 1]
            hint = (
                " (write text in quotes)" if bad not in "+*/%" else " (arithmetic is not allowed)"
            )
            raise ExpressionError(f"unexpected character {bad!r}{hint}", column)
        kind = match.lastgroup or "op"
        raw = match.group(kind)
        column = match.start(kind) + 1
        value: Any = None
        if kind == "number":
            value = Decimal(raw) if "." in raw else int(raw)
        elif kind == "string":
            value = _unquote(raw, column)
        tokens.append(Token(kind, raw, column, value))
        position = match.end()
    tokens.append(Token("end", "", end + 1))
    return tokens


def _unquote(raw: str, column: int) -> str:
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    chars = iter(body)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            if nxt not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{nxt} in a string", column)
            out.append(_ESCAPES[nxt])
        else:
            out.append(char)
    return "".join(out)


# ---- tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: Any
    column: int


@dataclass(frozen=True, slots=True)
class Path:
    root: str
    fields: tuple[str, ...]
    column: int

    @property
    def text(self) -> str:
        return ".".join((self.root, *self.fields))


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node
    column: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" / "or"
    items: tuple[Node, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    column: int


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]
    column: int


Node = Const | Path | Call | Compare | BoolOp | Not | ListLit


class _Parser:
    def __init__(self, tokens: list[Token], functions: Mapping[str, Function]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0
        self.functions = functions

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.take()
        if token.text != text:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise ExpressionError(f"expected {text!r} but found {found}", token.column)
        return token

    def parse(self) -> Node:
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(
                f"unexpected {token.text!r} after a complete expression", token.column
            )
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nests deeper than {MAX_DEPTH} levels", self.peek().column
            )
        first = self.and_()
        items = [first]
        while self.peek().kind == "name" and self.peek().text == "or":
            self.take()
            items.append(self.and_())
        self.depth -= 1
        return first if len(items) == 1 else BoolOp("or", tuple(items), _column(first))

    def and_(self) -> Node:
        first = self.not_()
        items = [first]
        while self.peek().kind == "name" and self.peek().text == "and":
            self.take()
            items.append(self.not_())
        return first if len(items) == 1 else BoolOp("and", tuple(items), _column(first))

    def not_(self) -> Node:
        token = self.peek()
        if token.kind == "name" and token.text == "not":
            self.take()
            return Not(self.not_(), token.column)
        return self.compare()

    def compare(self) -> Node:
        left = self.primary()
        token = self.peek()
        if token.kind == "op" and token.text in _COMPARE:
            self.take()
            return Compare(token.text, left, self.primary(), token.column)
        return left

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("number", "string"):
            return Const(token.value, token.column)
        if token.kind == "op" and token.text == "-":
            number = self.take()
            if number.kind != "number":
                raise ExpressionError("'-' is only allowed before a number", token.column)
            return Const(-number.value, token.column)
        if token.kind == "op" and token.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if token.kind == "op" and token.text == "[":
            return ListLit(tuple(self.arguments("]")), token.column)
        if token.kind != "name":
            found = "the end of the expression" if token.kind == "end" else repr(token.text)
            raise ExpressionError(f"expected a value but found {found}", token.column)
        if token.text in _KEYWORDS:
            return Const(_KEYWORDS[token.text], token.column)
        if self.peek().text == "(":
            if token.text not in self.functions:
                raise ExpressionError(
                    f"unknown function {token.text!r}; allowed functions: "
                    + ", ".join(sorted(self.functions)),
                    token.column,
                )
            self.take()
            return Call(token.text, tuple(self.arguments(")")), token.column)
        if token.text not in ROOTS:
            raise ExpressionError(
                f"unknown name {token.text!r}; an expression can read {', '.join(ROOTS)} "
                "(e.g. source.email), call a function, or use 'quoted text'",
                token.column,
            )
        fields: list[str] = []
        while self.peek().text == ".":
            self.take()
            name = self.take()
            if name.kind != "name":
                raise ExpressionError("expected a field name after '.'", name.column)
            if name.text.startswith("_"):
                raise ExpressionError(
                    f"field names cannot start with '_' ({name.text!r}); only record fields "
                    "can be read",
                    name.column,
                )
            fields.append(name.text)
        return Path(token.text, tuple(fields), token.column)

    def arguments(self, close: str) -> list[Node]:
        args: list[Node] = []
        if self.peek().text == close:
            self.take()
            return args
        while True:
            args.append(self.expr())
            token = self.take()
            if token.text == close:
                return args
            if token.text != ",":
                found = "the end" if token.kind == "end" else repr(token.text)
                raise ExpressionError(f"expected ',' or {close!r} but found {found}", token.column)


def _column(node: Node) -> int:
    return node.column


# ---- compiling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """What a spec fixes at compile time: its tables, currency rules, ID formats, params."""

    tables: Mapping[str, LookupTable] = field(default_factory=dict)
    rounding: Rounding = Rounding.HALF_UP
    target_digits: CurrencyTable = ISO_4217
    source_digits: CurrencyTable = ISO_4217
    id_formats: Mapping[str, IdFormat] = field(default_factory=lambda: dict(DEFAULT_FORMATS))
    params: Mapping[str, Any] = field(default_factory=dict)


Builder = Callable[["Compiler", Sequence[Node], Call], Closure]


@dataclass(frozen=True)
class Function:
    """One whitelisted function. ``impl`` takes the argument values; ``build`` (for lazy
    forms and functions that need the spec or the run context) compiles the call itself."""

    name: str
    min_args: int
    max_args: int | None
    doc: str
    impl: Callable[..., Any] | None = None
    build: Builder | None = None
    pure: bool = True  # same arguments, same result: folded at compile time when constant

    @property
    def signature(self) -> str:
        return self.doc.split(":", 1)[0]


class Compiled:
    """An expression ready to run: ``evaluate(scope)``."""

    __slots__ = ("constant", "evaluate", "text", "value")

    def __init__(self, text: str, evaluate: Closure, constant: bool, value: Any) -> None:
        self.text = text
        self.evaluate = evaluate
        self.constant = constant
        self.value = value


class Compiler:
    def __init__(
        self, env: Env, functions: Mapping[str, Function], variables: Sequence[str] = ()
    ) -> None:
        self.env = env
        self.functions = functions
        self.variables = tuple(variables)
        # closure id → (closure, value); holding the closure keeps its id from being reused
        self._constants: dict[int, tuple[Closure, Any]] = {}

    def constant(self, value: Any) -> Closure:
        def const(_scope: Scope) -> Any:
            return value

        self._constants[id(const)] = (const, value)
        return const

    def is_constant(self, closure: Closure) -> bool:
        found = self._constants.get(id(closure))
        return found is not None and found[0] is closure

    def constant_value(self, closure: Closure) -> Any:
        return self._constants[id(closure)][1]

    def literal_text(self, node: Node, what: str) -> str:
        if isinstance(node, Const) and isinstance(node.value, str):
            return node.value
        raise ExpressionError(f"{what} must be written as 'quoted text'", node.column)

    def compile(self, node: Node) -> Closure:
        if isinstance(node, Const):
            return self.constant(node.value)
        if isinstance(node, Path):
            return self._path(node)
        if isinstance(node, ListLit):
            items = [self.compile(item) for item in node.items]
            if all(self.is_constant(i) for i in items):
                return self.constant([self.constant_value(i) for i in items])
            return lambda s: [item(s) for item in items]
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Not):
            inner = self.compile(node.item)
            return lambda s: not inner(s)
        if isinstance(node, BoolOp):
            items = [self.compile(item) for item in node.items]
            if node.op == "and":
                return lambda s: all(item(s) for item in items)
            return lambda s: any(item(s) for item in items)
        return self._call(node)

    def _compare(self, node: Compare) -> Closure:
        left, right = self.compile(node.left), self.compile(node.right)
        op = _COMPARE[node.op]
        shown = node.op

        def compare(s: Scope) -> bool:
            a, b = left(s), right(s)
            try:
                return op(a, b)
            except TypeError:
                raise MappingValueError(
                    f"cannot compare {type(a).__name__} {a!r} {shown} {type(b).__name__} {b!r}",
                    "compare like with like (text with text, money with money)",
                ) from None

        return compare

    def _path(self, node: Path) -> Closure:
        if node.root == "params":
            if not node.fields:
                raise ExpressionError("read one parameter, e.g. params.currency", node.column)
            value: Any = self.env.params
            for name in node.fields:
                if not isinstance(value, Mapping) or name not in value:
                    known = ", ".join(sorted(self.env.params)) or "none are defined"
                    raise ExpressionError(
                        f"unknown parameter {node.text!r}; the spec's params are: {known}",
                        node.column,
                    )
                value = value[name]
            return self.constant(value)
        root = node.root
        fields = node.fields
        text = node.text
        if root == "vars":
            if not fields:
                raise ExpressionError("read one variable, e.g. vars.amount", node.column)
            if fields[0] not in self.variables:
                known = ", ".join(self.variables) or "none are defined (before this one)"
                raise ExpressionError(
                    f"unknown variable {node.text!r}; variables defined before it: {known}",
                    node.column,
                )
        if not fields:
            if root == "source":
                return lambda s: s.source
            if root == "existing":
                return lambda s: s.existing
            return lambda s: s.target
        if len(fields) == 1:
            key = fields[0]
            if root == "source":
                # the engine hands every record in as a dict
                return lambda s: s.source.get(key)
            if root == "existing":
                return lambda s: _read(s.existing, key, "existing")
            if root == "vars":
                return lambda s: s.vars.get(key)
            return lambda s: _read(s.target, key, "target")

        if root == "source" and len(fields) == 2:
            first, second = fields
            where = f"source.{first}"

            def source2(s: Scope) -> Any:
                value = s.source.get(first)
                if type(value) is dict:
                    return value.get(second)
                return _read(value, second, where)

            return source2

        def deep(s: Scope) -> Any:
            value = (
                s.source
                if root == "source"
                else s.existing
                if root == "existing"
                else s.vars
                if root == "vars"
                else s.target
            )
            walked = root
            for name in fields:
                value = _read(value, name, walked)
                walked = f"{walked}.{name}"
            return value

        deep.__qualname__ = f"path<{text}>"
        return deep

    def _call(self, node: Call) -> Closure:
        fn = self.functions[node.name]
        count = len(node.args)
        if count < fn.min_args or (fn.max_args is not None and count > fn.max_args):
            wanted = (
                f"{fn.min_args}"
                if fn.max_args == fn.min_args
                else f"{fn.min_args} or more"
                if fn.max_args is None
                else f"{fn.min_args} to {fn.max_args}"
            )
            raise ExpressionError(
                f"{node.name}() takes {wanted} argument(s), got {count}: {fn.doc}", node.column
            )
        if fn.build is not None:
            return fn.build(self, node.args, node)
        impl = fn.impl
        assert impl is not None
        args = [self.compile(arg) for arg in node.args]
        if fn.pure and all(self.is_constant(a) for a in args):
            try:
                return self.constant(impl(*[self.constant_value(a) for a in args]))
            except MappingValueError as exc:
                raise ExpressionError(f"{node.name}(): {exc.message}", node.column) from None
        if len(node.args) == 1:
            only = node.args[0]
            if isinstance(only, Path) and len(only.fields) == 1 and only.root in ("source", "vars"):
                key = only.fields[0]  # the commonest shapes, f(source.x) and f(vars.x), in one call
                if only.root == "source":
                    return lambda s: impl(s.source.get(key))
                return lambda s: impl(s.vars.get(key))
        if len(args) == 2 and self.is_constant(args[1]):
            first, second = args[0], self.constant_value(args[1])
            return lambda s: impl(first(s), second)
        if len(args) == 2:
            head = node.args[0]
            if isinstance(head, Path) and head.root == "source" and len(head.fields) == 1:
                key, other = head.fields[0], args[1]
                return lambda s: impl(s.source.get(key), other(s))
        return _apply(impl, args)


def _apply(impl: Callable[..., Any], args: list[Closure]) -> Closure:
    if len(args) == 0:
        return lambda s: impl()
    if len(args) == 1:
        (a,) = args
        return lambda s: impl(a(s))
    if len(args) == 2:
        a, b = args
        return lambda s: impl(a(s), b(s))
    if len(args) == 3:
        a, b, c = args
        return lambda s: impl(a(s), b(s), c(s))
    return lambda s: impl(*[arg(s) for arg in args])


def _read(value: Any, key: str, where: str) -> Any:
    if type(value) is dict:
        return value.get(key)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(key)
    raise MappingValueError(
        f"{where} is {type(value).__name__} {value!r}, not a record, so it has no field {key!r}"
    )


def parse(text: str, functions: Mapping[str, Function] | None = None) -> Node:
    """The tree of ``text``; :class:`ExpressionError` with a column if it is not valid."""
    # cycle: functions.py builds its table from this module's types (imported here, whole)
    from ledgerlink.mapping.functions import FUNCTIONS

    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    return _Parser(tokenize(text), functions or FUNCTIONS).parse()


def compile_expression(
    text: str,
    env: Env | None = None,
    functions: Mapping[str, Function] | None = None,
    variables: Sequence[str] = (),
) -> Compiled:
    """Parse and compile ``text``; raises :class:`ExpressionError` naming what is wrong.
    ``variables`` are the names ``vars.<name>`` may read."""
    from ledgerlink.mapping.functions import FUNCTIONS  # cycle: as in parse()

    table = functions or FUNCTIONS
    compiler = Compiler(env or Env(), table, variables)
    closure = compiler.compile(parse(text, table))
    constant = compiler.is_constant(closure)
    return Compiled(text, closure, constant, compiler.constant_value(closure) if constant else None)
