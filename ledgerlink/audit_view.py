"""Audit entries in words a finance user reads: who, what, which object (named and
linked), when, and a field-by-field before → after.

The chain stores each change as two JSON documents (``before``/``after``, see
``store/audit.py``). People should not have to read JSON, so this module turns them into
rows of *field: before → after*, naming fields the way the portal's forms do, and never
shows a secret: a secret field only ever reads "changed" (or "set"/"removed"), even
though the chain already holds it masked — a masked value is still noise to a reader
and would hide that a secret was replaced by another.

Kinds that record only an ``after`` (events: a payment resolved, a period closed) show
their details as values set; deletions show what was removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ledgerlink.store.audit import ALWAYS_SECRET_FIELDS, REDACTED
from ledgerlink.store.models import AuditEntry

#: How an empty value reads.
EMPTY = "—"
#: A secret's value is never shown, only what happened to it.
SECRET_CHANGED = "changed"  # noqa: S105  (words shown instead of a secret)
SECRET_SET = "set"  # noqa: S105
SECRET_REMOVED = "removed"  # noqa: S105
#: The page shortens longer values (a mapping's YAML); the export keeps them whole.
SHORT_VALUE = 160

#: Keys under which connections record their secrets' (masked) state.
_SECRET_GROUPS = frozenset({"secrets"})
#: A key some write paths add to say which secrets a change replaced (never values).
SECRETS_CHANGED_KEY = "secrets_changed"

#: Object types: the word a reader uses, and where the object lives in the portal.
_OBJECTS: dict[str, tuple[str, str | None]] = {
    "member": ("Member", "/members/{id}"),
    "member_link": ("Member link", "/members/{id}"),
    "member_import": ("Member import", None),
    "membership_level": ("Membership level", None),
    "bulk_link_run": ("Bulk link run", "/members/bulk/{id}"),
    "connection": ("Connection", "/connections/{id}"),
    "user": ("User", None),
    "api_token": ("API token", None),
    "mapping": ("Mapping", "/settings/mappings/{id}"),
    "sync_run": ("Sync run", "/sync/runs/{id}"),
    "sync_schedule": ("Sync schedule", None),
    "payment_event": ("Payment", "/payments/events/{id}"),
    "payment_exception": ("Payment exception", None),
    "payment_charge": ("Card charge", None),
    "recon_scope": ("Reconciliation", "/recon/{id}"),
    "recon_break": ("Reconciliation break", None),
    "recon_period": ("Reconciliation period", None),
    "recon_run": ("Reconciliation run", None),
    "recon_statement": ("Bank statement", None),
    "recon_rules": ("Reconciliation rules", "/recon/rules"),
    "vault": ("Secret vault", None),
}

#: Actions whose generic reading ("Member updated") would be unclear.
_ACTIONS: dict[str, str] = {
    "user.password_changed": "Password changed",
    "api_token.created": "API token issued",
    "connection.authorised": "Connection authorised",
    "sync.settings_changed": "Sync settings changed",
    "sync.cancel_requested": "Sync cancel requested",
    "members.bulk_link.started": "Bulk link started",
    "members.bulk_link.finished": "Bulk link finished",
    "members.bulk_link.retried": "Bulk link retried",
    "recon.period.close": "Reconciliation period closed",
    "recon.period.reopen": "Reconciliation period reopened",
    "recon.statement.import": "Bank statement imported",
    "recon.run": "Reconciliation run",
    "recon.scope.settings": "Reconciliation settings changed",
    "recon.rules_saved": "Reconciliation rules saved",
    "vault.rotated": "Vault key rotated",
}

#: Field names the generic reading gets wrong.
_FIELDS: dict[str, str] = {
    "id": "ID",
    "is_active": "Active",
    "auth_status": "Authorisation",
    "auth_detail": "Authorisation detail",
    "sha256": "Content fingerprint (SHA-256)",
    "yaml": "Definition (YAML)",
    "address_line1": "Address line 1",
    "address_line2": "Address line 2",
    "reason_code": "Reason code",
}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of one entry: what it was and what it became, as text to show."""

    field: str
    before: str
    after: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class EntryView:
    """An audit entry as the Audit page and its export show it."""

    seq: int
    at: datetime
    actor: str
    action: str
    what: str
    object_type: str
    object_type_label: str
    object_id: str | None
    object_name: str | None
    object_href: str | None
    changes: tuple[FieldChange, ...]


def object_types() -> list[tuple[str, str]]:
    """(stored type, label) of every object type the filter offers, by label."""
    return sorted(((key, label) for key, (label, _) in _OBJECTS.items()), key=lambda t: t[1])


def object_type_label(entity_type: str) -> str:
    known = _OBJECTS.get(entity_type)
    return known[0] if known else _words(entity_type)


def describe_action(action: str) -> str:
    """``member.updated`` → "Member updated"; ``payment.exception.resolved`` →
    "Payment exception resolved"."""
    if action in _ACTIONS:
        return _ACTIONS[action]
    return _words(action.replace(".", " "))


def field_label(path: tuple[str, ...]) -> str:
    """("settings", "company_id") → "Settings: Company id"."""
    return ": ".join(_FIELDS.get(part, _words(part)) for part in path)


def _words(name: str) -> str:
    text = " ".join(name.replace("_", " ").split())
    return text[:1].upper() + text[1:]


def view(entry: AuditEntry) -> EntryView:
    """``entry`` in words, with its field-by-field changes."""
    before = entry.before or None
    after = entry.after or None
    label, href_pattern = _OBJECTS.get(entry.entity_type, (_words(entry.entity_type), None))
    href = (
        href_pattern.format(id=quote(entry.entity_id, safe=""))
        if href_pattern and entry.entity_id and "deleted" not in entry.action
        else _href_from_documents(entry.entity_type, {**(before or {}), **(after or {})})
    )
    return EntryView(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        what=describe_action(entry.action),
        object_type=entry.entity_type,
        object_type_label=label,
        object_id=entry.entity_id,
        object_name=_object_name(entry.entity_type, before, after),
        object_href=href,
        changes=(*implied_changes(entry.action), *changes(before, after)),
    )


def _href_from_documents(entity_type: str, doc: Mapping[str, Any]) -> str | None:
    """Objects that live under another one (a break under its reconciliation)."""
    scope = doc.get("scope_id")
    if entity_type == "payment_exception":
        return "/payments/exceptions"
    if not isinstance(scope, int):
        return None
    if entity_type == "recon_break" and isinstance(doc.get("break_id"), str | int):
        return f"/recon/{scope}/breaks/{quote(str(doc['break_id']), safe='')}"
    if entity_type in ("recon_period", "recon_run", "recon_statement"):
        return f"/recon/{scope}"
    return None


def _object_name(
    entity_type: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> str | None:
    """The name a person knows the object by, when the entry holds one."""
    doc = {**(before or {}), **(after or {})}
    if entity_type == "member":
        parts = [str(doc.get(k) or "").strip() for k in ("first_name", "last_name")]
        name = " ".join(p for p in parts if p) or str(doc.get("organisation") or "").strip()
        return name or None
    if entity_type == "user":
        return _text(doc.get("email")) if doc.get("email") else None
    for key in ("name", "version"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


#: State changes an action implies but its entry does not spell out (the write path
#: refuses the action from any other state, so the "before" is known): (field, before,
#: after) shown above the entry's own fields.
_IMPLIED: dict[str, tuple[str, str, str]] = {
    "payment.exception.retry": ("Exception", "open", "tried again"),
    "payment.exception.apply_to_invoice": ("Exception", "open", "applied to an invoice"),
    "payment.exception.on_account": ("Exception", "open", "put on account"),
    "payment.exception.ignore": ("Exception", "open", "ignored"),
    "recon.period.close": ("Period", "open", "closed"),
    "recon.period.reopen": ("Period", "closed", "open"),
    "api_token.revoked": ("Token", "active", "revoked"),
    "api_token.created": ("Token", EMPTY, "active"),
}


def implied_changes(action: str) -> list[FieldChange]:
    """The state change ``action`` stands for, when its entry records only details."""
    if action == "user.password_changed":
        return [FieldChange("Password", SECRET_SET, SECRET_CHANGED, True)]
    if action in _IMPLIED:
        return [FieldChange(*_IMPLIED[action])]
    return []


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[FieldChange]:
    """The fields that differ between ``before`` and ``after`` (all of ``after`` when
    there was no ``before``; all of ``before`` when the object went away)."""
    old = _flatten(before or {})
    new = _flatten(after or {})
    replaced = _secrets_replaced(after)
    for said_elsewhere in ((SECRETS_CHANGED_KEY,), ("id",)):  # the Object column has the ID
        new.pop(said_elsewhere, None)
        old.pop(said_elsewhere, None)
    rows: list[FieldChange] = []
    for path in _ordered_paths(old, new):
        had, has = path in old, path in new
        was, now = old.get(path), new.get(path)
        if _is_secret(path, was, now):
            rows.extend(_secret_change(path, had, has, was, now, replaced))
            continue
        if before is not None and after is not None and had and has and was == now:
            continue
        if before is None and _blank(now):
            continue  # a new object's empty fields say nothing
        rows.append(
            FieldChange(
                field_label(path),
                _text(was) if had else EMPTY,
                _text(now) if has else (EMPTY if before is None else "(removed)"),
            )
        )
    return rows


def _secrets_replaced(after: Mapping[str, Any] | None) -> frozenset[str]:
    named = (after or {}).get(SECRETS_CHANGED_KEY)
    if isinstance(named, list):
        return frozenset(str(n) for n in named)
    return frozenset()


def _secret_change(
    path: tuple[str, ...],
    had: bool,
    has: bool,
    was: Any,
    now: Any,
    replaced: frozenset[str],
) -> list[FieldChange]:
    was_set, is_set = had and not _blank(was), has and not _blank(now)
    label = field_label(path)
    if is_set and not was_set:
        return [FieldChange(label, EMPTY, SECRET_SET, True)]
    if path[-1] in replaced or (was_set and is_set and was != now):
        return [FieldChange(label, SECRET_SET, SECRET_CHANGED, True)]
    if was_set and not is_set:
        return [FieldChange(label, SECRET_SET, SECRET_REMOVED, True)]
    return []


def _is_secret(path: tuple[str, ...], *values: Any) -> bool:
    return (
        any(part in ALWAYS_SECRET_FIELDS for part in path)
        or (len(path) > 1 and path[0] in _SECRET_GROUPS)
        or any(isinstance(v, str) and REDACTED in v for v in values)
    )


def _ordered_paths(
    old: Mapping[tuple[str, ...], Any], new: Mapping[tuple[str, ...], Any]
) -> list[tuple[str, ...]]:
    """Fields in the order the writer recorded them (after first, then what went away)."""
    seen = dict.fromkeys(new)
    seen.update(dict.fromkeys(k for k in old if k not in seen))
    return list(seen)


def _flatten(doc: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in doc.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _text(value: Any) -> str:
    """A stored value as a person reads it (no JSON quotes or brackets)."""
    if _blank(value):
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{_words(str(k))}: {_text(v)}" for k, v in value.items())
    return str(value)


def short(text: str) -> str:
    """``text`` cut for the page (the export keeps it whole)."""
    if len(text) <= SHORT_VALUE:
        return text
    return f"{text[:SHORT_VALUE]}… ({len(text)} characters)"
