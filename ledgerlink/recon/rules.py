"""The matching rules as a YAML spec: what keys tie a receipt to a card transaction and a
deposit to a settlement batch, how references are normalised, the tolerances, and
whether deposits are net of fees. Loaded like mapping specs (ruamel keeps the lines,
pydantic checks the structure) and then *compiled*: every pattern must build in both
Python's and polars' regex engines and capture an ``id`` group, so a spec that the
engine could not run is refused on load with its line, never half-way through a run.

The rule names given here are what every match records (with the spec's version), so a
finance user can read why two records were paired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from ruamel.yaml.comments import CommentedMap

from ledgerlink.mapping.errors import SpecError, SpecProblem
from ledgerlink.mapping.loader import digest, field_path, line_of, parse_yaml, plain

RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
PACKAGED_FILE = "ledgerlink/recon/specs/default.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalise(_Model):
    """How an id or reference is made comparable: ``" pt-000123 "`` and ``"123"`` are the
    same transaction once trimmed, upper-cased, prefix ``PT-`` and leading zeros gone."""

    trim: StrictBool = True
    case: Literal["upper", "lower", "keep"] = "upper"
    strip_prefixes: list[str] = Field(default_factory=list, max_length=20)
    strip_leading_zeros: StrictBool = True


class Normalisation(_Model):
    transaction_id: Normalise = Normalise()
    batch_number: Normalise = Normalise()


class Tolerance(_Model):
    #: Largest difference, in minor units, still counted as the same amount.
    amount_minor: StrictInt = Field(default=0, ge=0, le=1_000_000)
    #: Largest distance in days between a batch's settlement and its deposit when they
    #: are paired by amount (a deposit paired by its reference may come any day).
    days: StrictInt = Field(default=3, ge=0, le=366)


class ReceiptKey(_Model):
    """One way to find the PayTrace transaction a receipt is for; tried in order."""

    rule: RuleName
    column: Literal["txn_id", "idempotency_key", "reference"]
    #: A regex with a group ``(?P<id>...)``; without one the whole column is the id.
    pattern: str | None = None


class Toggle(_Model):
    rule: RuleName
    enabled: StrictBool = True


class ReceiptRules(_Model):
    keys: list[ReceiptKey] = Field(min_length=1, max_length=10)
    #: 1:N: a payment split over invoices, several receipts summing to one transaction.
    split_payments: Toggle = Toggle(rule="split_over_invoices")
    #: A sale voided or refunded in PayTrace and reversed (or refunded) in the ledger.
    reversed_both_sides: Toggle = Toggle(rule="reversed_both_sides")
    #: A sale voided in PayTrace before any receipt was posted: nothing is owed.
    voided_before_posting: Toggle = Toggle(rule="voided_before_posting")


class DepositReference(_Model):
    rule: RuleName
    pattern: str


class DepositRules(_Model):
    #: Deposits are net: gross - fees - withheld chargebacks. Off: deposits are gross.
    fee_netting: StrictBool = True
    by_reference: DepositReference
    #: 1:N: one batch paid out in several deposits carrying its reference.
    split_deposits: Toggle = Toggle(rule="batch_in_several_deposits")
    #: N:1: the batches settled on one day paid in one deposit without a reference.
    combined_batches: Toggle = Toggle(rule="batches_in_one_deposit")
    #: 1:1: a deposit without a reference equal to one batch's net within the days.
    by_amount: Toggle = Toggle(rule="deposit_by_amount_and_date")


class RuleSpec(_Model):
    kind: Literal["recon_rules"] = "recon_rules"
    name: RuleName
    version: StrictInt = Field(ge=1)
    description: str = ""
    normalise: Normalisation = Normalisation()
    tolerance: Tolerance = Tolerance()
    receipts: ReceiptRules
    deposits: DepositRules


ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "": tuple(RuleSpec.model_fields),
    "normalise": tuple(Normalisation.model_fields),
    "normalise.*": tuple(Normalise.model_fields),
    "tolerance": tuple(Tolerance.model_fields),
    "receipts": tuple(ReceiptRules.model_fields),
    "receipts.keys[]": tuple(ReceiptKey.model_fields),
    "receipts.*": tuple(Toggle.model_fields),
    "deposits": tuple(DepositRules.model_fields),
    "deposits.by_reference": tuple(DepositReference.model_fields),
    "deposits.*": tuple(Toggle.model_fields),
}


@dataclass(frozen=True)
class CompiledSpec:
    """A spec checked to run: what :func:`ledgerlink.recon.engine.reconcile` takes."""

    spec: RuleSpec
    text: str
    file: str
    #: Recorded on every match: ``<name>@<version>``.
    version: str
    #: Regex group number of ``id`` in each receipt key's pattern (0: no pattern).
    key_groups: tuple[int, ...] = field(default=())
    deposit_group: int = 1

    @property
    def sha256(self) -> str:
        return digest(self.text)


def load_spec(text: str, file: str = "<rules>", *, version: int | None = None) -> CompiledSpec:
    """Validate and compile ``text``; :class:`SpecError` lists every problem with its line.
    ``version`` (the store's version number) overrides the one written in the file."""
    tree = parse_yaml(text, file)
    if not isinstance(tree, CommentedMap):
        raise SpecError(
            [SpecProblem(file, 1, "", "a rules spec is a YAML mapping starting with name:")]
        )
    data = plain(tree)
    if version is not None:
        data["version"] = version
    try:
        spec = RuleSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc, tree, file)) from None
    problems: list[SpecProblem] = []
    key_groups: list[int] = []
    for index, key in enumerate(spec.receipts.keys):
        loc = ("receipts", "keys", index, "pattern")
        group = 0
        if key.pattern is not None:
            group = _compile(key.pattern, tree, file, loc, problems)
        key_groups.append(group)
    deposit_group = _compile(
        spec.deposits.by_reference.pattern,
        tree,
        file,
        ("deposits", "by_reference", "pattern"),
        problems,
    )
    for name in ("transaction_id", "batch_number"):
        for index, prefix in enumerate(getattr(spec.normalise, name).strip_prefixes):
            _compile(
                prefix,
                tree,
                file,
                ("normalise", name, "strip_prefixes", index),
                problems,
                needs_id=False,
            )
    seen: dict[str, tuple[Any, ...]] = {}
    for loc, rule in _rule_names(spec):
        if rule in seen:
            problems.append(
                SpecProblem(
                    file,
                    line_of(tree, loc),
                    field_path(loc),
                    f"rule name {rule!r} is already used at {field_path(seen[rule])}; "
                    "each rule needs its own name so a match says which one made it",
                )
            )
        seen.setdefault(rule, loc)
    if problems:
        raise SpecError(problems)
    return CompiledSpec(
        spec=spec,
        text=text,
        file=file,
        version=f"{spec.name}@{spec.version}",
        key_groups=tuple(key_groups),
        deposit_group=deposit_group,
    )


def _rule_names(spec: RuleSpec) -> list[tuple[tuple[Any, ...], str]]:
    names: list[tuple[tuple[Any, ...], str]] = [
        (("receipts", "keys", i, "rule"), key.rule) for i, key in enumerate(spec.receipts.keys)
    ]
    for part in ("split_payments", "reversed_both_sides", "voided_before_posting"):
        names.append((("receipts", part, "rule"), getattr(spec.receipts, part).rule))
    names.append((("deposits", "by_reference", "rule"), spec.deposits.by_reference.rule))
    for part in ("split_deposits", "combined_batches", "by_amount"):
        names.append((("deposits", part, "rule"), getattr(spec.deposits, part).rule))
    return names


def _compile(
    pattern: str,
    tree: Any,
    file: str,
    loc: tuple[Any, ...],
    problems: list[SpecProblem],
    *,
    needs_id: bool = True,
) -> int:
    """The group number of ``id`` in ``pattern``; a problem is added when the pattern does
    not build in Python or in polars (Rust regex: no look-around, no back-references)."""
    line, where = line_of(tree, loc), field_path(loc)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        problems.append(SpecProblem(file, line, where, f"is not a valid pattern: {exc}"))
        return 0
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError:
        problems.append(
            SpecProblem(
                file,
                line,
                where,
                "uses regex features the matcher cannot run (look-ahead, look-behind or "
                "back-references); rewrite it without them",
            )
        )
        return 0
    if not needs_id:
        return 0
    if "id" not in compiled.groupindex:
        problems.append(
            SpecProblem(
                file,
                line,
                where,
                "has no group named id; mark the part to keep, e.g. 'BATCH\\s*(?P<id>\\d+)'",
            )
        )
        return 0
    return compiled.groupindex["id"]


def _allowed_for(loc: tuple[Any, ...]) -> tuple[str, ...]:
    parent = loc[:-1]
    path = ".".join(str(p) for p in parent if not isinstance(p, int))
    if len(parent) == 3 and parent[:2] == ("receipts", "keys"):
        return ALLOWED_KEYS["receipts.keys[]"]
    if path in ALLOWED_KEYS:
        return ALLOWED_KEYS[path]
    if len(parent) == 2:
        return ALLOWED_KEYS.get(f"{parent[0]}.*", ())
    return ()


def _problems(exc: ValidationError, tree: Any, file: str) -> list[SpecProblem]:
    found: list[SpecProblem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        value = error.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_for(loc)
            message = f"unknown key {loc[-1]!r}" + (
                f"; allowed: {', '.join(allowed)}" if allowed else ""
            )
        elif kind == "missing":
            message = "is required but missing"
        elif isinstance(value, float):
            message = f"{value!r} is a floating-point number; give a whole number"
        elif kind == "string_pattern_mismatch":
            message = "use lower_case_with_underscores (a letter first, at most 63 characters)"
        else:
            message = str(error["msg"])
            if kind.endswith("_type") or kind.endswith("_error"):
                message += f" (found {value!r})"
        found.append(SpecProblem(file, line_of(tree, loc), field_path(loc), message))
    return found


def packaged_text() -> str:
    """The shipped default spec's YAML."""
    return (resources.files("ledgerlink.recon") / "specs" / "default.yaml").read_text("utf-8")


def default_spec() -> CompiledSpec:
    """The shipped default rules, compiled."""
    return load_spec(packaged_text(), PACKAGED_FILE)
