"""Declarative, previewable transformations between the member registry, SBC, Sage 500
and PayTrace.

A mapping spec (YAML) says how a record of one system becomes a record of another:
target fields computed by expressions over a small whitelisted function set, with
lookups, defaults and conditions. Specs ship in ``mapping/specs``; the configuration
directory and the portal override them (see ``ledgerlink/store/mapping_repo.py``).
This package is pure: no database, no HTTP.
"""

from ledgerlink.mapping.engine import CompiledMapping, MappingResult, compile_spec, load_table
from ledgerlink.mapping.errors import FieldError, SpecError, SpecProblem
from ledgerlink.mapping.loader import LoadedDocument, load_document
from ledgerlink.mapping.scope import MappingContext, Note

__all__ = [
    "CompiledMapping",
    "FieldError",
    "LoadedDocument",
    "MappingContext",
    "MappingResult",
    "Note",
    "SpecError",
    "SpecProblem",
    "compile_spec",
    "load_document",
    "load_table",
]
