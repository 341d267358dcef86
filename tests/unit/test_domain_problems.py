"""What each domain and upstream error says over HTTP (web/domain_problems.py)."""

from __future__ import annotations

from ledgerlink.connectors.errors import RateLimited, Rejected, Unavailable
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.members import linking
from ledgerlink.members.registry import MemberNotFound
from ledgerlink.sync.runs import SyncError, SyncRunNotFound
from ledgerlink.web.domain_problems import page_error, problem_for


def test_an_upstream_failure_is_a_502_naming_the_system_with_its_message() -> None:
    problem = problem_for(Unavailable("sbc", "Sage did not answer within 30 s"))
    assert (problem.status, problem.title, problem.detail) == (
        502,
        "Sage Business Cloud unavailable",
        "Sage did not answer within 30 s",
    )
    assert problem_for(Rejected("sage500", "name can't be blank", field="name")).status == 502
    assert page_error(Unavailable("paytrace", "timed out")) == (502, "PayTrace: timed out")


def test_a_rate_limited_upstream_says_when_to_try_again() -> None:
    problem = problem_for(RateLimited("sbc", "too many requests", retry_after=12.5))
    assert problem.headers == {"Retry-After": "12"}


def test_link_refusals_keep_their_status_and_field() -> None:
    missing = problem_for(linking.LinkNotFound("bulk run 9 does not exist", "run_id"))
    assert (missing.status, missing.detail) == (404, "bulk run 9 does not exist")
    assert missing.errors == [{"field": "run_id", "message": "bulk run 9 does not exist"}]
    assert problem_for(linking.LinkFailed("Sage refused the contact")).status == 502


def test_likely_duplicates_name_each_candidate_customer() -> None:
    customer = CustomerAccount(system="sbc", id="c-1", number="ACME", name="Acme Ltd")
    candidate = linking.Candidate(customer, 95, ("same e-mail",))
    problem = problem_for(linking.LikelyDuplicates("M00001", [candidate]))
    assert (problem.status, problem.kind) == (409, "likely-duplicate")
    assert problem.errors == [
        {"field": "customer_id", "message": "same e-mail", "customer_id": "c-1"}
    ]


def test_not_found_and_conflicts_of_sync_and_members() -> None:
    assert problem_for(MemberNotFound("there is no member M9")).status == 404
    assert problem_for(SyncRunNotFound("there is no sync run 4")).status == 404
    assert problem_for(SyncError("run 4 is running, not a plan to apply")).status == 409
    assert page_error(SyncError("run 4 is running")) == (409, "run 4 is running")
