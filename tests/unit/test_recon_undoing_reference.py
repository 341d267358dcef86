"""The reference of a Sage 500 undoing entry is written and read by one definition.

``resolutions.reverse_duplicate`` writes it on the refund that undoes a duplicate receipt;
``sides`` reads it back to mark that receipt reversed and to leave the refund out of the
receipts side. Were the two to drift apart, the duplicate would come back as a break and
the refund as an orphan on the next run.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.sides import REFERENCE_LIMIT, undoing_reference, undone_receipt

RECEIPT_IDS = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=70
).filter(lambda text: text.strip() == text and not any(c.isspace() for c in text))


@given(RECEIPT_IDS)
def test_the_undoing_reference_reads_back_as_the_receipt_it_undoes(receipt_id: str) -> None:
    reference = undoing_reference(receipt_id)
    assert len(reference) <= REFERENCE_LIMIT
    assert undone_receipt(reference) == receipt_id


@pytest.mark.parametrize(
    "reference", ["", "PT 123456", "Reversal of duplicate receipt", "paytrace:1:sale", "Refund 7"]
)
def test_other_references_undo_nothing(reference: str) -> None:
    assert undone_receipt(reference) is None


def test_a_sage_500_payment_key_round_trips() -> None:
    assert undoing_reference("1043") == "Reversal of duplicate receipt 1043"
    assert undone_receipt("Reversal of duplicate receipt 1043") == "1043"


def test_a_receipt_id_that_cannot_fit_is_refused_not_cut() -> None:
    with pytest.raises(ReconRefused) as refused:
        undoing_reference("x" * REFERENCE_LIMIT)
    assert refused.value.field == "receipt_id"
