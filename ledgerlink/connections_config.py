"""Connection configuration as a YAML file, so it can live in version control.

Secrets are never exported; an import creates or updates connections by name and leaves
stored secrets alone. Errors name the line, the field and the fix, and an import with any
error changes nothing.

A connection the file marks ``active: true`` is made active the way the portal's *Save*
does it (:func:`ledgerlink.connection_setup.save`): stored, tested, and active only when
every check passes. One whose test fails stays saved but inactive, and the import's
report says which and why: a connection is never active on settings nobody has tested.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink import connection_setup, connections
from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.vault import Vault
from ledgerlink.yaml_limits import YamlLimits, YamlTooLarge, check_yaml

FORMAT_VERSION = 1
#: Size, nesting and aliases an imported file may use (a few dozen connections is ~20 KiB).
LIMITS = YamlLimits(max_bytes=1024 * 1024)
MAX_NAME = 100  # connections.name is VARCHAR(100)


@dataclass
class ConfigError:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.field}: {self.message}"


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    #: Connections the file asks to be active whose checks passed: now active.
    activated: list[str] = field(default_factory=list)
    #: One sentence per connection the file asks to be active whose checks failed.
    not_activated: list[str] = field(default_factory=list)
    #: (id, name) of the connections to test and activate once the import is stored.
    to_test: list[tuple[int, str]] = field(default_factory=list)


async def import_connections(runtime: Runtime, by: Principal, text: str) -> ImportReport:
    """Store what ``text`` says (all of it, or nothing when it has errors), then test each
    connection it marks active through :func:`connection_setup.save`, the portal's *Save*:
    active exactly when every check passed, else saved and inactive, said in the report.
    Database work runs in a worker thread; the checks run on the event loop."""
    report = await asyncio.to_thread(_store, runtime, by, text)
    for connection_id, name in report.to_test:
        saved = await connection_setup.save(runtime, by, connection_id, activate=True)
        if saved.active:
            report.activated.append(name)
        else:
            report.not_activated.append(_not_activated(name, saved))
    return report


def _store(runtime: Runtime, by: Principal, text: str) -> ImportReport:
    with runtime.db.transaction() as session:
        report = import_yaml(session, runtime.vault, by, text)
        if report.errors:
            session.rollback()
    return report


def _not_activated(name: str, saved: connection_setup.Saved) -> str:
    failed = "; ".join(f"{check.name}: {check.detail}" for check in saved.failed)
    return (
        f"{name} was saved but not activated: its connection test failed ({failed}). "
        "Set its secrets or correct its settings on its page, then save it to test it again."
    )


def export_yaml(session: Session) -> str:
    rows = session.scalars(select(Connection).order_by(Connection.name))
    document = {
        "ledgerlink_connections": FORMAT_VERSION,
        "connections": [
            {
                "name": c.name,
                "kind": c.kind,
                "active": c.is_active,
                "settings": c.settings,
            }
            for c in rows
        ],
    }
    buffer = io.StringIO()
    buffer.write("# ledgerlink connection settings. Secrets are not included: set them in the\n")
    buffer.write("# portal (Accounting Integration) or with the API after importing.\n")
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _line(node: Any, key: str | int | None = None) -> int | None:
    if isinstance(node, CommentedMap):
        if key is not None and key in node:
            return int(node.lc.key(key)[0]) + 1
        return int(node.lc.line) + 1
    lc = getattr(node, "lc", None)
    return int(lc.line) + 1 if lc is not None else None


def import_yaml(session: Session, vault: Vault, by: Principal, text: str) -> ImportReport:
    """Validate ``text`` and store its connections in ``session``, none made active here:
    those it marks active are listed in ``report.to_test`` for :func:`import_connections`
    to test and activate (a file marking an active connection inactive deactivates it)."""
    report = ImportReport()
    try:
        check_yaml(text, LIMITS)
        document = YAML().load(text)
    except YamlTooLarge as exc:
        report.errors.append(ConfigError(exc.line, "file", exc.message))
        return report
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        report.errors.append(
            ConfigError(mark.line + 1 if mark else None, "file", f"not valid YAML: {exc}")
        )
        return report
    if not isinstance(document, CommentedMap) or "connections" not in document:
        report.errors.append(
            ConfigError(1, "connections", "expected a 'connections:' list (see an export)")
        )
        return report
    items = document["connections"]
    if not isinstance(items, list):
        report.errors.append(
            ConfigError(
                _line(document, "connections"), "connections", "must be a list of connections"
            )
        )
        return report
    planned: list[tuple[CommentedMap, str, str, dict[str, Any], bool]] = []
    for index, item in enumerate(items):
        where = f"connections[{index}]"
        if not isinstance(item, CommentedMap):
            report.errors.append(ConfigError(_line(items), where, "must be a mapping"))
            continue
        name = str(item.get("name") or "").strip()
        kind = str(item.get("kind") or "")
        if not name:
            report.errors.append(ConfigError(_line(item), f"{where}.name", "give a name"))
            continue
        if len(name) > MAX_NAME:
            report.errors.append(
                ConfigError(
                    _line(item, "name"), f"{where}.name", f"is longer than {MAX_NAME} characters"
                )
            )
            continue
        raw_settings = item.get("settings") or {}
        if not isinstance(raw_settings, dict):
            report.errors.append(
                ConfigError(
                    _line(item, "settings"),
                    f"{where}.settings",
                    "must be a mapping of setting: value (see an export)",
                )
            )
            continue
        try:
            clean = connections.validate_settings(kind, dict(raw_settings))
        except connections.InvalidConnection as exc:
            key = exc.field.split(".")[1] if exc.field.startswith("settings.") else None
            settings_node = item.get("settings")
            line = (
                _line(settings_node, key)
                if key and isinstance(settings_node, CommentedMap)
                else _line(item)
            )
            report.errors.append(ConfigError(line, f"{where}.{exc.field}", exc.message))
            continue
        existing_kind = session.scalar(select(Connection.kind).where(Connection.name == name))
        if existing_kind is not None and existing_kind != kind:
            report.errors.append(
                ConfigError(
                    _line(item, "kind"),
                    f"{where}.kind",
                    f"{name!r} exists as a {existing_kind} connection; kinds cannot change",
                )
            )
            continue
        planned.append((item, name, kind, clean, bool(item.get("active", False))))
    if report.errors:
        return report
    for _item, name, kind, clean, active in planned:
        existing = session.scalar(select(Connection).where(Connection.name == name))
        if existing is None:
            created = connections.create(session, vault, by, kind=kind, name=name, settings=clean)
            if active:
                report.to_test.append((created.id, name))
            report.created.append(name)
        elif existing.kind != kind:
            report.errors.append(
                ConfigError(
                    None, name, f"exists as a {existing.kind} connection; kinds cannot change"
                )
            )
        elif existing.settings == clean and existing.is_active == active:
            report.unchanged.append(name)
        else:
            # Activation is left to the test (a failing active connection is deactivated
            # there); only "active: false" is applied here, untested as Save does.
            connections.update(
                session,
                vault,
                by,
                existing,
                settings=clean,
                is_active=False if not active else None,
            )
            if active:
                report.to_test.append((existing.id, name))
            report.updated.append(name)
    return report
