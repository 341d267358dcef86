"""Typed run state reads what earlier versions stored and writes the same shape, so runs
and plans survive an upgrade in either direction."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.store.sync_models import SyncRecord
from ledgerlink.sync.plan import Checkpoint, PlanHashes, RecordItem

DATA_SETS = st.sampled_from(["member_details", "transactions", "balances", "card_profiles"])


def test_checkpoints_as_earlier_versions_stored_them() -> None:
    stored = {"member_details": 412, "balances": "done", "transactions": "done"}
    checkpoint = Checkpoint.from_json(stored)
    assert checkpoint.resume_after("member_details") == 412
    assert checkpoint.is_done("balances")
    assert not checkpoint.is_done("member_details")
    assert checkpoint.as_json() == stored
    assert Checkpoint.from_json({}).resume_after("member_details") == 0
    assert Checkpoint.from_json(None).as_json() == {}
    assert Checkpoint.from_json({"member_details": "17"}).resume_after("member_details") == 17


@given(st.dictionaries(DATA_SETS, st.one_of(st.just("done"), st.integers(1, 10**9))))
def test_a_checkpoint_round_trips_through_its_stored_form(
    stored: dict[str, str | int],
) -> None:
    assert Checkpoint.from_json(stored).as_json() == stored


def test_a_done_data_set_starts_nowhere_and_a_page_moves_on() -> None:
    checkpoint = Checkpoint().with_page("member_details", 5).with_page("member_details", 9)
    assert checkpoint.as_json() == {"member_details": 9}
    assert checkpoint.with_done("member_details").as_json() == {"member_details": "done"}
    assert checkpoint.with_done("member_details").resume_after("member_details") == 0


def test_a_planned_record_keeps_its_hashes_where_earlier_versions_did() -> None:
    item = RecordItem(
        run_id=7,
        data_set="member_details",
        record_key="M00042",
        member_id=42,
        direction="to_ledger",
        action="update",
        status="planned",
        changes={"email": {"before": "a@example.org", "after": "b@example.org"}},
        message="to ledger: email",
        hashes=PlanHashes("r1", "l1"),
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    row = item.row()
    assert row["changes"] == {
        "email": {"before": "a@example.org", "after": "b@example.org"},
        "_hashes": {"registry": "r1", "ledger": "l1"},
    }
    assert RecordItem.from_record(SyncRecord(**row)) == item


def test_a_record_stored_without_hashes_never_matches_a_side_read_now() -> None:
    hashes = PlanHashes.from_changes({"email": {}})
    assert hashes.registry is None
    assert hashes.ledger is None
    assert hashes.registry != ""


def test_failing_a_record_keeps_the_rest() -> None:
    item = RecordItem(7, "card_profiles", "C1", None, "to_ledger", "update", "done")
    failed = item.failed("refused", "fix it")
    assert (failed.status, failed.message, failed.fix) == ("failed", "refused", "fix it")
    assert failed.record_key == "C1"
    assert item.status == "done"
