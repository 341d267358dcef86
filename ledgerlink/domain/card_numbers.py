"""Finding full card numbers (PANs) in free text, however they are written.

ledgerlink never stores, logs or returns a card number, so every inbound field, CSV cell
and log line is checked with :func:`contains_card_number` (refused) or
:func:`mask_card_numbers` (logs). People and misconfigured systems write card numbers
in many ways (``4111111111111111``, ``4111 1111 1111 1111``, ``4111.1111.1111.1111``,
``4111/1111/1111/1111``, ``4111_1111_1111_1111``, Amex's ``3782 822463 10005``, with
a no-break space, or a mix), so the rule is about the digits, not the separators:

* a **digit group** is a run of decimal digits (any script: full-width digits count)
  that does not touch a letter or another digit: digits inside a longer alphanumeric
  token (``ab4111111111111111``, a UUID's ``a716...``) are never a card number;
* a **candidate** is either one group of 13 to 19 digits, or two or more groups of 3 to
  6 digits each (every layout cards are printed or typed in: 4-4-4-4, 4-6-5, 4-6-4,
  4-4-4-4-3, 4-3-3-3), the last of which may be as short as one digit (fours counted
  off mechanically: 4-4-4-1, 4-4-4-4-2), joined by one or two characters that are
  neither letters, digits nor line breaks, taken as a whole (the longest such chain;
  a last group of one or two digits may also be left off: ``4111 1111 1111 1111 12/25``);
* a candidate is a card number when it has 13 to 19 digits, does not start with 0 (no
  card issuer's number does) and passes the Luhn check.

So ordinary data is left alone: dates and times (a 2-digit group ends a chain and only
a 3 to 6 digit group starts one: ``2026-12-06 22:47:47``), phone numbers
(``+1 415 555 0100`` has 11 digits; two of them in a list make 20), amounts
(``1,234,567.89``), UUIDs (letters touch the digits), PayTrace transaction ids (9 digits:
too short alone, too long to be one group of a chain, so a list of them is never a
candidate), zero-padded ids. What is not caught: a card number whose digits are split
into groups of one or two, or run into a further 3 to 6 digit group with one or two
separators (``4111 1111 1111 1111 123`` is 19 digits that fail Luhn as a whole). What
may be taken for one: a standalone Luhn-valid 13 to 19 digit number that is something
else (one random number in ten passes Luhn), or a list of 3 to 6 digit numbers that
happens to add up to one.
"""

from __future__ import annotations

import re
from typing import Final

#: A letter or digit in any script: what a digit group must not touch.
_ALNUM: Final = r"[^\W_]"
#: One or two characters between groups: not a letter, not a digit, not a line break.
_SEPARATOR: Final = r"(?:[^\w\r\n\v\f\x85\u2028\u2029]|_){1,2}"
#: The first digit of a candidate: not preceded by a letter or digit. (The pattern starts
#: with ``\d`` so the regex engine skips quickly over text without digits.)
_START: Final = rf"\d(?<!{_ALNUM}\d)"
_GROUP: Final = rf"\d{{3,6}}(?!{_ALNUM})"
_LAST_SHORT_GROUP: Final = rf"\d{{1,2}}(?!{_ALNUM})"
_CANDIDATE: Final = re.compile(
    rf"{_START}(?:"
    rf"\d{{12,18}}(?!{_ALNUM})"  # one group of 13-19 digits
    rf"|\d{{2,5}}(?!{_ALNUM})(?:{_SEPARATOR}{_GROUP})*"  # or a chain of 3-6 digit groups
    rf"(?:{_SEPARATOR}{_GROUP}|(?P<short>{_SEPARATOR}{_LAST_SHORT_GROUP})))"
)
_DIGIT: Final = re.compile(r"\d")

#: How :func:`mask_card_numbers` writes a masked number; ``{last4}`` is its last four digits.
DEFAULT_MASK: Final = "****{last4}"


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn check used by card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_digits(candidate: str) -> str | None:
    """The candidate's digits (ASCII) when they make a card number, else None."""
    found = _DIGIT.findall(candidate)
    if not 13 <= len(found) <= 19:
        return None
    digits = "".join(found)
    if not digits.isascii():
        digits = "".join(str(int(char)) for char in digits)  # full-width and other scripts
    return digits if digits[0] != "0" and luhn_valid(digits) else None


def _card(match: re.Match[str]) -> tuple[str, str] | None:
    """(the card number's digits, the text after it) when ``match`` holds one: the whole
    chain, or the chain without a last 1-2 digit group (``4111 1111 1111 1111 12/25``)."""
    digits = _card_digits(match.group())
    if digits is not None:
        return digits, ""
    if match.group("short") is not None:
        cut = match.start("short") - match.start()
        digits = _card_digits(match.group()[:cut])
        if digits is not None:
            return digits, match.group()[cut:]
    return None


def contains_card_number(text: str) -> bool:
    """True when ``text`` holds what looks like a full card number, written with any
    separators between its digit groups (see the module's rule)."""
    return any(_card(match) for match in _CANDIDATE.finditer(text))


def mask_card_numbers(text: str, template: str = DEFAULT_MASK) -> str:
    """``text`` with every card number replaced by ``template`` (its last four digits kept:
    ``"paid with 4111.1111.1111.1111"`` → ``"paid with ****1111"``); everything else as
    it was."""

    def mask(match: re.Match[str]) -> str:
        found = _card(match)
        if found is None:
            return match.group()
        digits, after = found
        return template.format(last4=digits[-4:]) + after

    return _CANDIDATE.sub(mask, text)
