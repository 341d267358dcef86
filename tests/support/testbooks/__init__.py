"""Test Books: a third ledger kind that exists only in the tests.

It is what a new ledger kind costs: this adapter package (``ledger.py``, an in-memory
system and its adapter) and one registration (``kind.py``, its registry descriptor). No
production file names it; the contract suite (``tests/contract``) registers it with
``registry.registered(TESTBOOKS)`` and runs it like Sage Business Cloud and Sage 500. It
has no settings form of its own, so the portal shows the generic one.
"""

from tests.support.testbooks.kind import TESTBOOKS
from tests.support.testbooks.ledger import SYSTEMS, Books, BooksLedger

__all__ = ["SYSTEMS", "TESTBOOKS", "Books", "BooksLedger"]
