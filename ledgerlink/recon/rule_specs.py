"""The matching rules' versions: which spec runs use, and how an administrator changes it.

The active rules are the active version saved in ``recon_rule_specs`` (CLI, API, portal),
else the spec shipped in ``ledgerlink/recon/specs/default.yaml``. Their label is what
runs and every match record as ``spec_version``: ``recon_rules@v3`` for a saved version,
``recon_rules@package:<sha>`` for the shipped one (as mapping specs name theirs), so a
finance user can always tell which rules paired two records.

Saving compiles the text first (:func:`ledgerlink.recon.rules.load_spec`): a spec the
engine could not run is refused with its line and nothing is stored. A save deactivates
the previous version and appends an audit entry with who and why, in the caller's
transaction. Rolling back writes an earlier version's text again as a new version, so the
history only grows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.mapping.errors import SpecError
from ledgerlink.mapping.loader import digest
from ledgerlink.recon.problems import RulesSpecError
from ledgerlink.recon.rules import PACKAGED_FILE, CompiledSpec, load_spec, packaged_text
from ledgerlink.store.recon_rule_models import ReconRuleSpec
from ledgerlink.store.versioned_text import VersionedTexts

NAME = "recon_rules"
#: How the rules' versions are kept: one text, saved with a reason, audited as recon_rules.
VERSIONS = VersionedTexts(
    ReconRuleSpec,
    entity_type="recon_rules",
    saved_action="recon.rules_saved",
    rolled_back_action="recon.rules_rolled_back",
    note="reason",
)


class RuleVersionNotFound(LookupError):
    """A rollback named a version that was never saved."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the matching rules have no version {version}; "
            "see `ledgerlink recon rules history` (0 is the shipped default)"
        )
        self.version = version


class ReasonRequired(ValueError):
    """Changing the rules changes what reconciles: the audit trail must say why."""

    def __init__(self) -> None:
        super().__init__("reason: say why the matching rules change (it is kept in the audit log)")


@dataclass(frozen=True)
class ActiveRules:
    """The rules runs use now, and where they came from."""

    text: str
    file: str
    origin: str  # "database" or "package"
    version: int | None = None  # recon_rule_specs.version

    @property
    def sha256(self) -> str:
        return digest(self.text)

    @property
    def label(self) -> str:
        """What runs and matches record as ``spec_version``."""
        if self.origin == "database":
            return f"{NAME}@v{self.version}"
        return f"{NAME}@{self.origin}:{self.sha256[:12]}"


def packaged() -> ActiveRules:
    return ActiveRules(packaged_text(), PACKAGED_FILE, "package")


def active_row(session: Session) -> ReconRuleSpec | None:
    return VERSIONS.active_row(session)


def active(session: Session) -> ActiveRules:
    row = active_row(session)
    if row is None:
        return packaged()
    return ActiveRules(
        row.yaml_text, f"{NAME}.yaml (version {row.version})", "database", row.version
    )


def compiled(rules: ActiveRules) -> CompiledSpec:
    """``rules`` compiled, labelled with their version (what every match records)."""
    return replace(_load(rules.text, rules.file), version=rules.label)


@lru_cache(maxsize=16)
def _load(text: str, file: str) -> CompiledSpec:
    """``text`` compiled; a fault is a :class:`RulesSpecError` (named as the rules spec).

    Kept per text (the result is frozen all the way down): every run, every page showing
    the rules and every daily run of every scope compiled the same YAML again, 0.25 s of
    CPU each. A refused text is not kept, so it is checked again each time."""
    try:
        return load_spec(text, file)
    except RulesSpecError:
        raise
    except SpecError as exc:
        raise RulesSpecError(exc.problems) from None


def history(session: Session) -> list[ReconRuleSpec]:
    return VERSIONS.history(session)


def save(
    session: Session, principal: Principal, text: str, reason: str, *, file: str = ""
) -> ReconRuleSpec:
    """Compile ``text`` and make it the active rules (audited); :class:`RulesSpecError`
    with the line of every fault when it does not compile, and then nothing is written.
    ``file`` names the upload in those errors."""
    _load(text, file or f"{NAME}.yaml (submitted)")
    return _write(session, principal, text, reason, None)


def rollback(session: Session, principal: Principal, version: int, reason: str) -> ReconRuleSpec:
    """Make ``version``'s text active again as a new version (0: the shipped default)."""
    if version == 0:
        text = packaged_text()
    else:
        row = VERSIONS.version_row(session, version)
        if row is None:
            raise RuleVersionNotFound(version)
        text = row.yaml_text
    _load(text, f"{NAME}.yaml (version {version})")
    return _write(session, principal, text, reason, version)


def _write(
    session: Session,
    principal: Principal,
    text: str,
    reason: str,
    rolled_back_from: int | None,
) -> ReconRuleSpec:
    reason = reason.strip()
    if not reason:
        raise ReasonRequired()
    before = active(session)
    return VERSIONS.write(
        session,
        principal,
        entity_id=NAME,
        text=text,
        note=reason,
        before=(before.label, before.sha256),
        rolled_back_from=rolled_back_from,
    )


def version_out(row: ReconRuleSpec) -> dict[str, object]:
    """One saved version as the API, CLI and portal show it."""
    return {
        "version": row.version,
        "label": f"{NAME}@v{row.version}",
        "author": row.author,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
        "sha256": row.sha256,
        "is_active": row.is_active,
        "rolled_back_from": row.rolled_back_from,
    }
