"""The whitelisted functions an expression may call. Nothing else is callable.

Text functions pass ``null`` through (``trim(null)`` is ``null``) so that ``coalesce``
and a field's ``default`` can take over. Each entry's doc is shown to users in errors
and on the portal's reference list.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import phonenumbers

from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.mapping.errors import ExpressionError, MappingValueError
from ledgerlink.mapping.expressions import Call, Closure, Compiler, Function, Node
from ledgerlink.mapping.scope import Note, Scope
from ledgerlink.mapping.transforms import addresses, currency, gl_accounts, names, payment_status
from ledgerlink.mapping.transforms.customer_ids import LINK_ONLY, harmonise, normalise_id

_GUID_NAMESPACE: Final = uuid.UUID("6b1f3c9e-2f4a-5d7e-9c1b-4a8e2d6f0b35")
_SPACES: Final = re.compile(r"\s+")
_US_DATE: Final = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s.*)?$")
_ISO_DATE: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")


# ---- plain functions ----------------------------------------------------------------------


def _text(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return None
    if isinstance(value, Money):
        return value.format_plain()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _trim(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.strip()


def _clean(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else " ".join(text.split())


def _upper(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.upper()


def _lower(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.lower()


def _concat(*parts: Any) -> str:
    return "".join([p if type(p) is str else (_text(p) or "") for p in parts])


def _left(value: Any, count: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if type(count) is not int or count < 0:
        raise MappingValueError(f"left() needs a whole number of characters, got {count!r}")
    return text[:count]


def _replace(value: Any, old: Any, new: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.replace(_text(old) or "", _text(new) or "")


def _digits(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else "".join(c for c in text if c.isdigit())


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is str:
        return not value.strip()
    return isinstance(value, (list, dict)) and len(value) == 0


def _number(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise MappingValueError(f"{value!r} is a float", "send numbers as decimal strings")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingValueError(f"{value!r} is not a number") from None


def _money(amount: Any, code: Any) -> Money | None:
    if type(amount) is str and type(code) is str and amount and code:
        try:
            return Money.parse(amount, code)
        except MoneyError as exc:
            raise MappingValueError(
                str(exc), "send the amount as a decimal string like '12.50'"
            ) from None
    if amount is None or (isinstance(amount, str) and not amount.strip()):
        return None
    if isinstance(amount, Money):
        return amount
    if code is None or (isinstance(code, str) and not code.strip()):
        raise MappingValueError(
            "the amount has no currency", "map a currency, e.g. coalesce(source.currency, 'USD')"
        )
    try:
        return Money.parse(amount, str(code))
    except MoneyError as exc:
        raise MappingValueError(
            str(exc), "send the amount as a decimal string like '12.50'"
        ) from None


def _need_money(value: Any, fn: str) -> Money:
    if type(value) is not Money and not isinstance(value, Money):
        raise MappingValueError(
            f"{fn}() needs money, got {value!r}", "make the amount with money(amount, currency)"
        )
    return value


def _minor(value: Any) -> int | None:
    return None if value is None else _need_money(value, "minor").minor


def _currency_of(value: Any) -> str | None:
    return None if value is None else _need_money(value, "currency_of").currency


def _amount(value: Any) -> str | None:
    return None if value is None else _need_money(value, "amount").format_plain()


def _abs(value: Any) -> Money | Decimal | None:
    if type(value) is Money:
        return -value if value.minor < 0 else value
    if value is None:
        return None
    number = _number(value)
    return None if number is None else abs(number)


def _negate(value: Any) -> Money | Decimal | None:
    if value is None:
        return None
    if isinstance(value, Money):
        return -value
    number = _number(value)
    return None if number is None else -number


def _is_negative(value: Any) -> bool:
    if isinstance(value, Money):
        return value.is_negative
    number = _number(value)
    return number is not None and number < 0


_DATES: dict[str, str] = {}


def _date(value: Any) -> str | None:
    """ISO date from ISO text, a datetime, or PayTrace's ``M/D/YYYY h:mm:ss AM``."""
    if type(value) is str:
        found = _DATES.get(value)
        if found is not None:
            return found
        parsed = _parse_date(value)
        if parsed is not None and len(_DATES) < 4096:
            _DATES[value] = parsed
        return parsed
    return _parse_date(value)


def _parse_date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        if match := _ISO_DATE.match(text):
            return dt.date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        if match := _US_DATE.match(text):
            return dt.date(int(match[3]), int(match[1]), int(match[2])).isoformat()
    except ValueError:
        pass
    raise MappingValueError(f"{text!r} is not a date", "use YYYY-MM-DD (or PayTrace's M/D/YYYY)")


def _email(value: Any) -> str | None:
    text = _trim(value)
    if not text:
        return text
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise MappingValueError(f"{text!r} is not an e-mail address", "correct the address")
    # The domain is case-insensitive; the local part is the mailbox owner's, and the member
    # registry keeps it as typed: lower-casing it would make every synced e-mail differ.
    return f"{local}@{domain.lower()}"


def _phone(value: Any, region: Any = None) -> str | None:
    text = _trim(value)
    if not text:
        return text
    try:
        parsed = phonenumbers.parse(text, (_text(region) or "US").upper())
    except phonenumbers.NumberParseException:
        raise MappingValueError(
            f"{text!r} is not a phone number",
            "write it with its country code, e.g. +1 555 123 4567",
        ) from None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _country(value: Any) -> str | None:
    text = _trim(value)
    return text if not text else addresses.country_code(text, 2)


def _country3(value: Any) -> str | None:
    text = _trim(value)
    return text if not text else addresses.country_code(text, 3)


def _address(*parts: Any) -> dict[str, str]:
    values = [(_text(p) or "") for p in parts] + [""] * (6 - len(parts))
    return dict(addresses.normalise_address(*values[:6]))


def _address_line(value: Any) -> str | None:
    return None if value is None else addresses.clean_line(_text(value))


def _full_name(first: Any, last: Any) -> str:
    return names.full_name(_text(first), _text(last))


def _first_name(full: Any, known_last: Any = None) -> str | None:
    return None if full is None else names.split_name(_text(full), _text(known_last))[0]


def _last_name(full: Any, known_last: Any = None) -> str | None:
    return None if full is None else names.split_name(_text(full), _text(known_last))[1]


# ---- functions compiled with the spec or the run context ----------------------------------


def _concat_build(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    items = [compiler.compile(a) for a in args]
    if all(compiler.is_constant(i) for i in items):
        return compiler.constant(_concat(*[compiler.constant_value(i) for i in items]))
    template = ""
    getters: list[Closure] = []
    for item in items:
        if compiler.is_constant(item):
            template += (
                (_text(compiler.constant_value(item)) or "").replace("{", "{{").replace("}", "}}")
            )
        else:
            template += "{}"
            getters.append(item)
    fill = template.format

    def concat(s: Scope) -> str:
        return fill(*[v if type(v := g(s)) is str else (_text(v) or "") for g in getters])

    return concat


def _if(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    test, then, other = (compiler.compile(a) for a in args)
    if compiler.is_constant(test):
        return then if compiler.constant_value(test) else other
    return lambda s: then(s) if test(s) else other(s)


def _coalesce(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    items = [compiler.compile(a) for a in args]
    if len(items) == 2 and compiler.is_constant(items[1]):
        first, fallback = items[0], compiler.constant_value(items[1])

        def coalesce2(s: Scope) -> Any:
            value = first(s)
            return fallback if value is None or value == "" else value

        return coalesce2

    def coalesce(s: Scope) -> Any:
        for item in items:
            value = item(s)
            if value is not None and value != "":
                return value
        return None

    return coalesce


def _table(compiler: Compiler, node: Node, fn: str) -> tuple[str, str | None]:
    name = compiler.literal_text(node, f"the table name of {fn}()")
    table, _, column = name.partition(".")
    found = compiler.env.tables.get(table)
    if found is None:
        known = ", ".join(sorted(compiler.env.tables)) or "none"
        raise ExpressionError(
            f"unknown table {table!r}; this spec's tables: {known} (add it under tables:, "
            "or list a shared table under include_tables:)",
            node.column,
        )
    if column and column not in found.values:
        raise ExpressionError(
            f"table {table!r} has no value column {column!r}; it has {', '.join(found.values)}",
            node.column,
        )
    return table, column or None


def _lookup(compiler: Compiler, args: Sequence[Node], call: Call) -> Closure:
    name, column = _table(compiler, args[0], "lookup")
    table = compiler.env.tables[name]
    if column is None:
        if len(table.values) != 1:
            raise ExpressionError(
                f"table {name!r} has several value columns ({', '.join(table.values)}); "
                f"choose one as '{name}.<column>'",
                args[0].column,
            )
        column = table.values[0]
    if len(args) - 1 != len(table.keys):
        raise ExpressionError(
            f"table {name!r} is looked up by {len(table.keys)} key(s) "
            f"({', '.join(table.keys)}), got {len(args) - 1}",
            call.column,
        )
    keys = [compiler.compile(a) for a in args[1:]]
    col = column
    if len(keys) == 1:
        (k1,) = keys
        return lambda s: table.get(col, k1(s))
    if len(keys) == 2:
        k1, k2 = keys
        return lambda s: table.get(col, k1(s), k2(s))
    return lambda s: table.get(col, *[k(s) for k in keys])


def _gl_account(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    name = "gl_accounts"
    column = "gl_account"
    if len(args) == 3:
        name, picked = _table(compiler, args[2], "gl_account")
        column = picked or column
    elif "gl_accounts" not in compiler.env.tables:
        raise ExpressionError(
            "gl_account() needs a table named gl_accounts under tables:", args[0].column
        )
    table = compiler.env.tables[name]
    if column not in table.values:
        raise ExpressionError(f"table {name!r} has no column {column!r}", args[0].column)
    kind, method = compiler.compile(args[0]), compiler.compile(args[1])
    memo: dict[tuple[Any, Any], str] = {}

    def gl_account(s: Scope) -> str:
        key = (kind(s), method(s))
        try:
            return memo[key]
        except KeyError:
            found = gl_accounts.gl_account_for(table, key[0], key[1], column)
            if len(memo) < 1024:
                memo[key] = found
            return found
        except TypeError:  # a key that cannot be remembered (a list): look it up each time
            return gl_accounts.gl_account_for(table, key[0], key[1], column)

    return gl_account


def _payment_state(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    target = compiler.literal_text(args[1], "the target of payment_state()")
    table = compiler.env.tables.get("payment_status")
    if table is None:
        raise ExpressionError(
            "payment_state() needs the payment_status table: add include_tables: [payment_status]",
            args[0].column,
        )
    if target not in table.values:
        raise ExpressionError(
            f"payment_status has no column {target!r}; it has {', '.join(table.values)}",
            args[1].column,
        )
    status = compiler.compile(args[0])
    memo: dict[Any, str] = {}

    def payment_state(s: Scope) -> str:
        value = status(s)
        try:
            return memo[value]
        except (KeyError, TypeError):
            found = payment_status.translate_status(table, value, target)
            if type(value) is str and len(memo) < 256:
                memo[value] = found
            return found

    return payment_state


def _target_amount(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    value = compiler.compile(args[0])
    digits_table = compiler.env.target_digits
    rounding = compiler.env.rounding
    overrides = digits_table.digits

    def target_amount(s: Scope) -> str | None:
        money = value(s)
        if money is None:
            return None
        if type(money) is not Money:
            money = _need_money(money, "target_amount")
        if not overrides:
            return money.format_plain()
        moved = currency.to_target(money, digits_table, rounding)
        if moved.remainder:
            s.note(
                "rounding",
                original=money.format_plain(),
                currency=money.currency,
                rounded=moved.text,
                remainder_minor=moved.remainder,
                rule=rounding.value,
            )
        return moved.text

    return target_amount


def _source_money(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    amount, code = compiler.compile(args[0]), compiler.compile(args[1])
    table, rounding = compiler.env.source_digits, compiler.env.rounding

    def source_money(s: Scope) -> Money | None:
        raw, cur = amount(s), code(s)
        if raw is None or raw == "":
            return None
        if cur is None or cur == "":
            raise MappingValueError("the amount has no currency")
        found = currency.from_source(raw, str(cur), table, rounding)
        if found.remainder:
            s.note(
                "rounding",
                original=str(raw),
                currency=found.money.currency,
                rounded=found.money.format_plain(),
                remainder_minor=found.remainder,
                source_digits=found.source_digits,
                rule=rounding.value,
            )
        return found.money

    return source_money


def _convert(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    value, quote = compiler.compile(args[0]), compiler.compile(args[1])
    rounding = compiler.env.rounding

    def convert(s: Scope) -> Money | None:
        money = value(s)
        if money is None:
            return None
        money = _need_money(money, "convert")
        rates = s.context.rates
        code = str(quote(s) or "")
        if rates is None and code.upper() != money.currency:
            raise MappingValueError(
                f"converting {money.currency} to {code} needs exchange rates",
                "give the run a rate source",
            )
        result = currency.convert(
            money, code, rates or currency.FixedRates({}), s.context.business_date(), rounding
        )
        if result.rate.base != result.rate.quote:
            s.note("exchange_rate", **result.as_dict())
        return result.amount

    return convert


def _customer_id(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    value = compiler.compile(args[0])
    systems = [compiler.literal_text(a, "the system of customer_id()") for a in args[1:]]
    formats = compiler.env.id_formats
    allowed = sorted(set(formats) | LINK_ONLY)
    for node, system in zip(args[1:], systems, strict=True):
        if system not in allowed:
            raise ExpressionError(
                f"unknown system {system!r}; use one of {', '.join(allowed)}", node.column
            )
    from_system, to_system = systems
    memo: dict[Any, Any] = {}
    memo_links: Any = None

    def customer_id(s: Scope) -> str | None:
        nonlocal memo_links
        raw = value(s)
        if raw is None or raw == "":
            return None
        links = s.context.links
        if links is not memo_links:  # a run with other links: forget what was found
            memo.clear()
            memo_links = links
        found = memo.get(raw)
        if found is None:
            harmonised = harmonise(raw, from_system, to_system, links, formats)
            detail = None
            if harmonised.how == "derived":
                detail = {
                    "from_system": from_system,
                    "to_system": to_system,
                    "value": harmonised.value,
                }
            found = (harmonised.value, detail)
            if len(memo) < 10_000:
                memo[raw] = found
        if found[1] is not None:
            s.notes.append(Note(s.field, "id_derived", found[1]))
        return found[0]

    return customer_id


def _normalise_id(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    value = compiler.compile(args[0])
    system = compiler.literal_text(args[1], "the system of normalise_id()")
    fmt = compiler.env.id_formats.get(system)
    if fmt is None:
        raise ExpressionError(
            f"unknown system {system!r}; use one of {', '.join(sorted(compiler.env.id_formats))}",
            args[1].column,
        )
    return lambda s: None if (raw := value(s)) in (None, "") else normalise_id(raw, fmt, system)


def _guid(*parts: Any) -> str:
    """32 hex characters derived from ``parts`` (a UUID 5): the same event, the same id."""
    return uuid.uuid5(_GUID_NAMESPACE, "\x1f".join(_text(p) or "" for p in parts)).hex


def _today(compiler: Compiler, args: Sequence[Node], _call: Call) -> Closure:
    return lambda s: s.context.business_date().isoformat()


def _f(
    name: str,
    min_args: int,
    max_args: int | None,
    doc: str,
    impl: Any = None,
    build: Any = None,
    pure: bool = True,
) -> Function:
    return Function(name, min_args, max_args, doc, impl, build, pure)


FUNCTIONS: Final[dict[str, Function]] = {
    f.name: f
    for f in (
        # text
        _f("trim", 1, 1, "trim(text): without leading and trailing spaces", _trim),
        _f("clean", 1, 1, "clean(text): trimmed, runs of spaces made one", _clean),
        _f("upper", 1, 1, "upper(text): in capitals", _upper),
        _f("lower", 1, 1, "lower(text): in lower case", _lower),
        _f("text", 1, 1, "text(value): as text", _text),
        _f("concat", 1, None, "concat(a, b, …): joined; null counts as empty", build=_concat_build),
        _f("left", 2, 2, "left(text, n): the first n characters", _left),
        _f("replace", 3, 3, "replace(text, old, new): every old replaced by new", _replace),
        _f("guid", 1, None, "guid(a, b, …): 32 hex characters derived from the values", _guid),
        _f("digits", 1, 1, "digits(text): only the digits", _digits),
        _f("email", 1, 1, "email(text): trimmed, domain in lower case, checked for an @", _email),
        _f("phone", 1, 2, "phone(text, country?): E.164 (+15551234567)", _phone),
        # logic
        _f("if", 3, 3, "if(condition, then, else): then when condition holds", build=_if),
        _f(
            "coalesce",
            1,
            None,
            "coalesce(a, b, …): the first that is not null/empty",
            build=_coalesce,
        ),
        _f("is_empty", 1, 1, "is_empty(value): true for null, '' and empty lists", _is_empty),
        _f("number", 1, 1, "number(text): an exact decimal number", _number),
        # money
        _f("money", 2, 2, "money(amount, currency): exact money (ISO 4217 digits)", _money),
        _f(
            "source_money",
            2,
            2,
            "source_money(amount, currency): money from an amount with the source's digits "
            "(currency.source_digits), rounded by currency.rounding, remainder noted",
            build=_source_money,
        ),
        _f(
            "target_amount",
            1,
            1,
            "target_amount(money): decimal text with the target's digits "
            "(currency.target_digits, else ISO 4217), rounded by currency.rounding, "
            "remainder noted",
            build=_target_amount,
        ),
        _f("amount", 1, 1, "amount(money): decimal text such as 12.50", _amount),
        _f("minor", 1, 1, "minor(money): whole minor units (cents)", _minor),
        _f("currency_of", 1, 1, "currency_of(money): its ISO code", _currency_of),
        _f("abs", 1, 1, "abs(money or number): without sign", _abs),
        _f("negate", 1, 1, "negate(money or number): sign flipped", _negate),
        _f("is_negative", 1, 1, "is_negative(money or number): below zero", _is_negative),
        _f(
            "convert",
            2,
            2,
            "convert(money, currency): at the run's exchange rate (recorded)",
            build=_convert,
        ),
        # dates
        _f("date", 1, 1, "date(value): YYYY-MM-DD from ISO or M/D/YYYY", _date),
        _f("today", 0, 0, "today(): the run's business date", build=_today),
        # lookups and finance transforms
        _f(
            "lookup",
            2,
            None,
            "lookup('table' or 'table.column', key, …): a value from a table of the spec",
            build=_lookup,
        ),
        _f(
            "gl_account",
            2,
            3,
            "gl_account(transaction_type, payment_method, 'table'?): from the gl_accounts table",
            build=_gl_account,
        ),
        _f(
            "transaction_type",
            1,
            1,
            "transaction_type(text): sale, refund, fee or chargeback",
            gl_accounts.transaction_type,
        ),
        _f(
            "payment_method",
            1,
            1,
            "payment_method(text): card, ach, cash, check or other",
            gl_accounts.payment_method,
        ),
        _f(
            "paytrace_status",
            1,
            1,
            "paytrace_status(transaction): approved, declined, settled, voided or refunded",
            payment_status.paytrace_status,
        ),
        _f(
            "payment_state",
            2,
            2,
            "payment_state(status, 'sage500'|'sbc'|'action'): from the payment_status table",
            build=_payment_state,
        ),
        _f(
            "customer_id",
            3,
            3,
            "customer_id(id, 'from_system', 'to_system'): through links, else derived",
            build=_customer_id,
        ),
        _f(
            "normalise_id",
            2,
            2,
            "normalise_id(id, 'system'): in the system's ID format",
            build=_normalise_id,
        ),
        # addresses and names
        _f(
            "address",
            1,
            6,
            "address(line1, line2, city, region, postal_code, country): normalised record",
            _address,
        ),
        _f("address_line", 1, 1, "address_line(text): trimmed and cased", _address_line),
        _f("country_code", 1, 1, "country_code(text): ISO 3166 alpha-2 (US)", _country),
        _f("country_code3", 1, 1, "country_code3(text): ISO 3166 alpha-3 (USA)", _country3),
        _f("full_name", 2, 2, "full_name(first, last): 'First Last'", _full_name),
        _f("first_name", 1, 2, "first_name(full, known_last?): the first name(s)", _first_name),
        _f("last_name", 1, 2, "last_name(full, known_last?): the last name", _last_name),
    )
}


def reference() -> list[tuple[str, str]]:
    """(name, doc) of every function, for the portal and error messages."""
    return [(f.name, f.doc) for f in sorted(FUNCTIONS.values(), key=lambda f: f.name)]
