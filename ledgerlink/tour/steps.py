"""The tour's two scenarios and their steps, and which step a portal page is about.

Pure data: the portal renders it (``web/portal/tour_pages.py``), the progress store keeps
step keys, and ``places`` turns a step's link into a real page of this installation.
A step names the least role that can *do* it; a user below that role is told so instead
of being sent to a page they cannot use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledgerlink.identity.roles import Role


@dataclass(frozen=True)
class Page:
    """A page a step is about, and where on it the step's callout goes.

    ``path`` is a regular expression over the URL path, or None for the step's own link
    (resolved for this installation). ``highlight`` is a CSS selector of the element the
    callout points at (outlined), ``anchor`` the element the callout is put after (before,
    when ``before``); the callout stays at the top of the page when neither is found.
    Selectors may name the installation's records (``{consent_ledger}``: ``places.Places.ids``).
    """

    path: str | None
    highlight: str
    anchor: str = ""
    before: bool = False

    def matches(self, path: str, own_link: str) -> bool:
        if self.path is None:
            return path == own_link.split("?", 1)[0]
        return re.fullmatch(self.path, path) is not None

    def selectors(self, ids: dict[str, int]) -> tuple[str, str]:
        """The highlight and anchor selectors, with the installation's ids filled in."""
        highlight = self.highlight.format(**ids)
        return highlight, (self.anchor.format(**ids) if self.anchor else highlight)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    #: What the user will see there, one line that follows "You will see".
    see: str
    #: The least role that can do the step; below it the step says so instead of linking.
    role: Role
    #: What the role is needed for, to finish "… needs the operator role".
    doing: str
    #: The pages the step is about, its own link's first.
    pages: tuple[Page, ...]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    summary: str
    steps: tuple[Step, ...]


MEMBERSHIP = Scenario(
    key="membership",
    title="A membership organisation on Sage Business Cloud",
    summary="Members kept in agreement with their customer accounts in SBC.",
    steps=(
        Step(
            key="connect-sbc",
            title="Connect Sage Business Cloud",
            see="the SBC connection, authorised with Connect to Sage, its business and "
            "card-clearing bank account chosen; Test connection checks it.",
            role=Role.ADMIN,
            doing="Connecting a ledger",
            pages=(
                Page(
                    None,
                    'form[action$="/sbc/connect"] button',
                    anchor='form[action$="/sbc/connect"]',
                ),
            ),
        ),
        Step(
            key="find-members",
            title="Find members without an account",
            see="the members with no SBC customer account yet; the demo links its "
            "members in the background, so the list shrinks as it goes.",
            role=Role.VIEWER,
            doing="",
            pages=(
                Page(None, '[data-testid="member-count"]'),
                Page(r"/members", '[data-testid="member-count"]'),
            ),
        ),
        Step(
            key="create-and-link",
            title="Create and link customer accounts",
            see="a bulk run creating an SBC customer for each member and linking it, with "
            "its progress; likely duplicates are set aside for you to link by hand.",
            role=Role.OPERATOR,
            doing="Creating customer accounts",
            pages=(  # above the run's progress (it redraws itself every second)
                Page(None, "", anchor="#bulk-progress", before=True),
                Page(r"/members/bulk/\d+", "", anchor="#bulk-progress", before=True),
            ),
        ),
        Step(
            key="sync",
            title="Sync with progress",
            see="Sync Now, which starts a run whose progress bar moves page by page, with "
            "the records done, errors and the time left.",
            role=Role.OPERATOR,
            doing="Starting a sync",
            pages=(
                Page(
                    r"/sync",
                    'form[action="/sync/run"]:has(input[name="connection_id"][value="{consent_ledger}"])'
                    ':not(:has(input[name="dry_run"])) button',
                    anchor="#settings_{consent_ledger}",
                    before=True,
                ),
                Page(r"/sync/runs/\d+", "#sync-progress progress", anchor="#sync-progress"),
            ),
        ),
    ),
)

CARD_PAYMENTS = Scenario(
    key="card-payments",
    title="Card payments into Sage 500",
    summary="Card payments taken in PayTrace posted once as Sage 500 receipts, and "
    "reconciled with the bank.",
    steps=(
        Step(
            key="payment-posted",
            title="A card payment posted",
            see="a PayTrace sale and the cash receipt posted for it in Sage 500, applied "
            "to its invoice, with the key that makes it post exactly once.",
            role=Role.VIEWER,
            doing="",
            pages=(
                Page(None, '[data-testid="event-postings"]'),
                Page(r"/payments/events/\d+", '[data-testid="event-postings"]'),
                Page(r"/payments", '[data-testid="payment-events"]'),
            ),
        ),
        Step(
            key="exception-resolved",
            title="Resolve an exception",
            see="the payments that could not post (an invoice that does not exist, a "
            "declined card), each with the actions that fit its reason.",
            role=Role.OPERATOR,
            doing="Resolving an exception",
            pages=(
                Page(
                    r"/payments/exceptions",
                    '[data-testid="payment-exception"]',
                    anchor='[data-testid="payment-exception"]',
                    before=True,
                ),
            ),
        ),
        Step(
            key="reconciliation",
            title="Reconcile with the bank",
            see="settlement batches matched to Sage 500 receipts and the bank statement, "
            "and the breaks left: a deposit short by a fee, a credit nobody explains.",
            role=Role.VIEWER,
            doing="",
            pages=(
                Page(None, '[data-testid="recon-summary"]'),
                Page(r"/recon/\d+", '[data-testid="recon-summary"]'),
            ),
        ),
    ),
)

SCENARIOS: tuple[Scenario, ...] = (MEMBERSHIP, CARD_PAYMENTS)
STEPS: tuple[Step, ...] = tuple(step for scenario in SCENARIOS for step in scenario.steps)
KEYS: frozenset[str] = frozenset(step.key for step in STEPS)

#: The paths any step may be about, so a page can tell without the database whether to
#: ask for a callout at all (the dashboard has its own panel).
_CANDIDATES = re.compile(
    r"/connections|/connections/\d+|/members|/members/bulk/\d+|/sync|/sync/runs/\d+|/payments"
    r"|/payments/events/\d+|/payments/exceptions|/recon/\d+"
)


def may_have_callout(path: str) -> bool:
    """Whether a step may be about the page at ``path`` (no database needed)."""
    return _CANDIDATES.fullmatch(path) is not None


def step(key: str) -> Step | None:
    return next((s for s in STEPS if s.key == key), None)


def scenario_of(key: str) -> Scenario:
    return next(s for s in SCENARIOS if any(step.key == key for step in s.steps))


def page_for(path: str, links: dict[str, str]) -> tuple[Step, Page] | None:
    """The step the page at ``path`` is about, and which of its pages it is: a step's own
    link first (so the demo's SBC connection is the *Connect* step's, not every
    connection), then the patterns, in the tour's order."""
    for own_link_only in (True, False):
        for candidate in STEPS:
            for page in candidate.pages:
                if (page.path is None) == own_link_only and page.matches(
                    path, links[candidate.key]
                ):
                    return candidate, page
    return None
