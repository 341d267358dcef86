"""A text kept in versions: save a version, list them, activate one, roll back, audited.

Mapping specs and shared tables (``mapping_versions``, several texts by name) and the
reconciliation matching rules (``recon_rule_specs``, one text) keep their versions the
same way, and this module is that one way: every save is a new row with the next version
number and becomes the only active row (a partial unique index guarantees one), the
previous active row is deactivated, a rollback writes an earlier text again as a new
version (so the history only grows and every run can name what it used), and each change
appends an audit entry with who, why and both versions, in the caller's transaction.

The repositories say only what differs: the table, what the note column is called
(``comment`` or ``reason``), how a text is checked before it is saved, and what applies
when nothing is saved (config or shipped files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.mapping.loader import digest
from ledgerlink.store import audit
from ledgerlink.store.models import Base

Row = TypeVar("Row", bound=Base)


@dataclass(frozen=True)
class VersionedTexts(Generic[Row]):
    """The versions kept in ``model``'s table.

    ``model`` has ``version``, ``yaml_text``, ``sha256``, ``author``, ``is_active``,
    ``rolled_back_from``, ``created_at`` and the ``note`` column; with ``named`` also a
    ``name`` column, and every method then works on the versions of one name.
    """

    model: type[Row]
    entity_type: str  # the audit entry's entity type
    saved_action: str  # the audit action of a save ...
    rolled_back_action: str  # ... and of a rollback
    note: str  # the column that says why: "comment" or "reason"
    named: bool = False

    def _table(self) -> Any:
        return self.model

    def _of(self, name: str | None) -> list[Any]:
        if not self.named:
            return []
        if name is None:
            raise ValueError(f"{self.entity_type} versions are kept per name; name one")
        return [self._table().name == name]

    def active_row(self, session: Session, name: str | None = None) -> Row | None:
        table = self._table()
        found: Row | None = session.scalar(select(table).where(*self._of(name), table.is_active))
        return found

    def history(self, session: Session, name: str | None = None) -> list[Row]:
        """Every version, newest first."""
        table = self._table()
        query = select(table).where(*self._of(name)).order_by(table.version.desc())
        return list(session.scalars(query))

    def version_row(self, session: Session, version: int, name: str | None = None) -> Row | None:
        table = self._table()
        found: Row | None = session.scalar(
            select(table).where(*self._of(name), table.version == version)
        )
        return found

    def write(
        self,
        session: Session,
        principal: Principal,
        *,
        entity_id: str,
        text: str,
        note: str,
        before: tuple[str, str],
        rolled_back_from: int | None = None,
        name: str | None = None,
        **columns: Any,
    ) -> Row:
        """Save ``text`` as the next version and make it the active one (audited).

        ``before`` is the version reference and sha256 of what applied until now (the
        caller knows: a saved version, a config file or the shipped text); the audit entry
        names the new version ``<entity_id>@v<n>``. ``columns`` fill the table's own
        further columns (a mapping's ``kind``). The caller has checked ``text``.
        """
        table = self._table()
        current = self.active_row(session, name)
        latest = session.scalar(select(func.max(table.version)).where(*self._of(name)))
        if current is not None:
            current.is_active = False  # type: ignore[attr-defined]
            session.flush()  # the partial unique index allows one active row
        values: dict[str, Any] = {
            "version": (latest or 0) + 1,
            "yaml_text": text,
            "sha256": digest(text),
            "author": principal.actor,
            self.note: note[:500],
            "is_active": True,
            "rolled_back_from": rolled_back_from,
            **columns,
        }
        if self.named:
            values["name"] = name
        row = self.model(**values)
        session.add(row)
        session.flush()
        saved: Any = row
        audit.record(
            session,
            actor=principal.actor,
            action=self.rolled_back_action if rolled_back_from is not None else self.saved_action,
            entity_type=self.entity_type,
            entity_id=entity_id,
            before={"version": before[0], "sha256": before[1]},
            after={
                "version": f"{entity_id}@v{saved.version}",
                "sha256": saved.sha256,
                self.note: getattr(saved, self.note),
                "rolled_back_from": rolled_back_from,
                "yaml": text,
            },
        )
        return row
