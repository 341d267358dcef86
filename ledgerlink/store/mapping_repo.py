"""Where a mapping spec comes from, and its versions.

The active text of a spec or shared table is, in order: the active version saved in the
database (portal / API), else ``<var_dir>/mappings/<name>.yaml`` (configuration under
review elsewhere), else the default shipped in ``ledgerlink/mapping/specs``. Loading
returns the compiled mapping with its version reference (``name@v3``,
``name@config:1a2b…``, ``name@package:9f8e…``) so every run records what it used.

Saving validates first (a spec must compile against the active shared tables), writes a
new version, deactivates the previous one and appends an audit entry, all in the
caller's transaction. Rolling back writes the earlier text again as a new version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.mapping.engine import CompiledMapping, compile_spec, load_table
from ledgerlink.mapping.errors import SpecError, SpecProblem
from ledgerlink.mapping.loader import (
    LoadedDocument,
    config_names,
    config_text,
    digest,
    load_document,
    packaged_file,
    packaged_names,
    packaged_text,
)
from ledgerlink.mapping.preview import PreviewSource, SampleSource, sample_records
from ledgerlink.mapping.spec import MappingSpec
from ledgerlink.mapping.tables import LookupTable
from ledgerlink.store.mapping_models import MappingVersion
from ledgerlink.store.versioned_text import VersionedTexts


class UnknownMapping(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"there is no mapping spec or table named {name!r}")
        self.name = name


@dataclass(frozen=True)
class SpecText:
    """The active text of one spec or table and where it came from."""

    name: str
    text: str
    file: str
    origin: str  # "database", "config" or "package"
    version: int | None = None  # database version number
    version_id: int | None = None  # mapping_versions.id

    @property
    def sha256(self) -> str:
        return digest(self.text)

    @property
    def ref(self) -> str:
        if self.origin == "database":
            return f"{self.name}@v{self.version}"
        return f"{self.name}@{self.origin}:{self.sha256[:12]}"


@dataclass(frozen=True)
class ActiveMapping:
    """A compiled spec and exactly which versions produced it."""

    compiled: CompiledMapping
    spec: SpecText
    tables: dict[str, str]  # shared table name → its version ref

    @property
    def version(self) -> str:
        return self.spec.ref


_COMPILED: dict[tuple[str, ...], CompiledMapping] = {}

#: Parsed and validated documents by (name, file, text): parsing a spec's YAML costs about
#: 10 ms, and create-and-link loads the same active specs again for every member (a bulk
#: run of 200 parsed them 400 times). A LoadedDocument is frozen; a text that fails to
#: parse is not kept, so it fails the same way each time.
_PARSED: dict[tuple[str, str, str], LoadedDocument] = {}

#: How mapping versions are kept: per name, saved with a comment, audited as "mapping".
VERSIONS = VersionedTexts(
    MappingVersion,
    entity_type="mapping",
    saved_action="mapping.saved",
    rolled_back_action="mapping.rolled_back",
    note="comment",
    named=True,
)

#: Providers of "the N most recent real records" by record kind (``paytrace.transaction``).
#: Connectors register theirs; the preview falls back to uploaded samples without one.
RecentSourceFactory = Callable[[Any, int], PreviewSource]
RECENT_SOURCES: dict[str, RecentSourceFactory] = {}


def register_recent_source(record_kind: str, factory: RecentSourceFactory) -> None:
    """Hook for connectors: ``factory(runtime, limit)`` returns a :class:`PreviewSource`
    reading the ``limit`` most recent ``record_kind`` records from the live system."""
    RECENT_SOURCES[record_kind] = factory


class MappingRepository:
    """The mapping specs of one installation: database versions over the configuration
    directory's files over the shipped specs. Built once by the composition root
    (``Runtime.mappings``); ``config_dir`` is required so no caller can silently lose an
    installation's overrides."""

    def __init__(self, config_dir: Path | None) -> None:
        self.config_dir = config_dir

    # ---- reading ------------------------------------------------------------------------

    def names(self, session: Session) -> list[str]:
        stored = session.scalars(select(MappingVersion.name).distinct())
        return sorted(set(packaged_names()) | set(config_names(self.config_dir)) | set(stored))

    def active_row(self, session: Session, name: str) -> MappingVersion | None:
        return VERSIONS.active_row(session, name)

    def base_text(self, name: str) -> SpecText | None:
        """The text that applies without any database version: config dir, else package."""
        found = config_text(self.config_dir, name)
        if found is not None:
            return SpecText(name, found[0], found[1], "config")
        shipped = packaged_text(name)
        if shipped is not None:
            return SpecText(name, shipped, packaged_file(name), "package")
        return None

    def text(self, session: Session, name: str) -> SpecText:
        row = self.active_row(session, name)
        if row is not None:
            return SpecText(
                name,
                row.yaml_text,
                f"{name}.yaml (version {row.version})",
                "database",
                row.version,
                row.id,
            )
        found = self.base_text(name)
        if found is None:
            raise UnknownMapping(name)
        return found

    def history(self, session: Session, name: str) -> list[MappingVersion]:
        return VERSIONS.history(session, name)

    def version_row(self, session: Session, name: str, version: int) -> MappingVersion | None:
        return VERSIONS.version_row(session, version, name)

    def document(self, text: SpecText) -> LoadedDocument:
        key = (text.name, text.file, text.text)
        loaded = _PARSED.get(key)
        if loaded is None:
            loaded = load_document(text.text, text.file, expected_name=text.name)
            if len(_PARSED) > 256:
                _PARSED.clear()
            _PARSED[key] = loaded
        return loaded

    def shared_tables(
        self, session: Session, names: list[str], drafts: Mapping[str, str] | None = None
    ) -> tuple[dict[str, LookupTable], dict[str, str]]:
        """The tables ``names`` include, by name, and the version of each (its ref)."""
        tables, sources = self._tables(session, names, drafts)
        return tables, {name: source.ref for name, source in sources.items()}

    def _tables(
        self, session: Session, names: list[str], drafts: Mapping[str, str] | None = None
    ) -> tuple[dict[str, LookupTable], dict[str, SpecText]]:
        tables: dict[str, LookupTable] = {}
        sources: dict[str, SpecText] = {}
        for name in names:
            if drafts and name in drafts:
                source = SpecText(name, drafts[name], f"{name}.yaml (draft)", "draft")
            else:
                try:
                    source = self.text(session, name)
                except UnknownMapping:
                    continue  # compile_spec names the missing table with its line
            tables[name] = load_table(self.document(source))
            sources[name] = source
        return tables, sources

    def load(
        self,
        session: Session,
        name: str,
        *,
        draft: str | None = None,
        draft_tables: Mapping[str, str] | None = None,
    ) -> ActiveMapping:
        """The compiled active spec (or ``draft`` text of it, for a preview)."""
        if draft is not None:
            source = SpecText(name, draft, f"{name}.yaml (draft)", "draft")
        else:
            source = self.text(session, name)
        loaded = self.document(source)
        if not isinstance(loaded.document, MappingSpec):
            raise SpecError(
                [
                    loaded.problem(
                        ("kind",), f"{name} is a shared table; preview a spec that uses it"
                    )
                ]
            )
        tables, sources = self._tables(session, loaded.document.include_tables, draft_tables)
        refs = {name: table.ref for name, table in sources.items()}
        cacheable = source.origin != "draft" and not draft_tables
        # by content, not only version: "rates@v1" of one database is not another's (a
        # process serving several, as the test suite does, must not mix them)
        key = (
            source.ref,
            source.sha256,
            *sorted(f"{name}={table.sha256}" for name, table in sources.items()),
        )
        compiled = _COMPILED.get(key) if cacheable else None
        if compiled is None:
            compiled = compile_spec(loaded, tables)
            compiled.version = source.ref
            compiled.table_versions = refs
            if cacheable:
                if len(_COMPILED) > 256:
                    _COMPILED.clear()
                _COMPILED[key] = compiled
        return ActiveMapping(compiled, source, refs)

    def validate(self, session: Session, name: str, text: str) -> LoadedDocument:
        """Check ``text`` as the next version of ``name``; :class:`SpecError` if it is not."""
        file = f"{name}.yaml (submitted)"
        loaded = load_document(text, file, expected_name=name)
        document = loaded.document
        if isinstance(document, MappingSpec):
            tables, _ = self.shared_tables(session, document.include_tables)
            compile_spec(loaded, tables)
        else:
            load_table(loaded)
            self._check_users_of_table(session, name, text)
        return loaded

    def _check_users_of_table(self, session: Session, table: str, text: str) -> None:
        problems: list[SpecProblem] = []
        for other in self.names(session):
            if other == table:
                continue
            try:
                source = self.text(session, other)
                loaded = self.document(source)
            except (SpecError, UnknownMapping):
                continue
            if isinstance(loaded.document, MappingSpec) and table in loaded.document.include_tables:
                try:
                    self.load(session, other, draft=source.text, draft_tables={table: text})
                except SpecError as exc:
                    problems.extend(exc.problems)
        if problems:
            raise SpecError(problems)

    # ---- writing ------------------------------------------------------------------------

    def save(
        self, session: Session, principal: Principal, name: str, text: str, comment: str = ""
    ) -> MappingVersion:
        """Validate ``text`` and make it the active version of ``name`` (audited)."""
        if self.base_text(name) is None and self.active_row(session, name) is None:
            raise UnknownMapping(name)
        loaded = self.validate(session, name, text)
        return self._write(session, principal, name, loaded, text, comment, None)

    def rollback(
        self, session: Session, principal: Principal, name: str, version: int, comment: str = ""
    ) -> MappingVersion:
        """Make ``version``'s text active again, as a new version (0: the shipped default)."""
        if version == 0:
            base = self.base_text(name)
            if base is None:
                raise UnknownMapping(name)
            text = base.text
        else:
            row = self.version_row(session, name, version)
            if row is None:
                raise LookupError(f"{name} has no version {version}")
            text = row.yaml_text
        loaded = self.validate(session, name, text)
        note = comment or f"rolled back to version {version}"
        return self._write(session, principal, name, loaded, text, note, version)

    def _write(
        self,
        session: Session,
        principal: Principal,
        name: str,
        loaded: LoadedDocument,
        text: str,
        comment: str,
        rolled_back_from: int | None,
    ) -> MappingVersion:
        before = self.text(session, name)
        return VERSIONS.write(
            session,
            principal,
            entity_id=name,
            name=name,
            text=text,
            note=comment,
            before=(before.ref, before.sha256),
            rolled_back_from=rolled_back_from,
            kind=loaded.document.kind,
        )


# ---- previews -----------------------------------------------------------------------------


class PreviewUnavailable(LookupError):
    """Recent real records were asked for but no connector provides them yet."""


def preview_source(
    record_kind: str,
    *,
    runtime: Any,
    samples: list[dict[str, Any]] | None,
    recent: bool,
    limit: int,
) -> PreviewSource:
    """Where a preview's records come from: the live system's most recent records (when a
    connector registered a source for ``record_kind``), else the uploaded ``samples``,
    else the samples shipped with ledgerlink."""

    if recent:
        factory = RECENT_SOURCES.get(record_kind)
        if factory is None:
            raise PreviewUnavailable(
                f"no connector provides recent {record_kind} records yet; "
                "upload sample records instead"
            )
        return factory(runtime, limit)
    if samples:
        return SampleSource(samples, f"{len(samples)} uploaded record(s)")
    return SampleSource(sample_records(record_kind), f"ledgerlink's sample {record_kind} records")


def exact_numbers(value: Any) -> Any:
    """JSON floats (as a JSON body arrives) as the Decimal their shortest text names, so
    ``12.5`` is exactly 12.5 and money parsing never sees binary floating point."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: exact_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact_numbers(v) for v in value]
    return value


def mapping_repository(settings: Any) -> MappingRepository:
    """The repository of an installation: overrides in ``<var_dir>/mappings``."""
    return MappingRepository(settings.var_dir / "mappings")
