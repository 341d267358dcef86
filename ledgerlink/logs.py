"""Structured JSON logs that cannot leak a secret or a card number.

Every log line, ours or a library's (uvicorn, httpx, procrastinate), passes through
:func:`redact` before it is written: values under secret-sounding keys, bearer/basic
credentials, credential query parameters and card numbers, however their digit groups
are separated (``domain.card_numbers``), are masked. Card data must never reach a log
file, even by accident in an exception message.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import structlog
from structlog.typing import EventDict, WrappedLogger

from ledgerlink.domain.card_numbers import luhn_valid as luhn_valid  # re-exported
from ledgerlink.domain.card_numbers import mask_card_numbers

MASK: Final = "[REDACTED]"

# Keys whose values are credentials. Matched on the normalised key (lower case, '-'→'_').
_SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|secret|client_secret|api_key|apikey|token|access_token|"
    r"refresh_token|id_token|authorization|auth|cookie|set_cookie|session|csrf|"
    r"private_key|signing_key|vault_keys?|credentials?|pan|card_number|cc_number|"
    r"cvv|cvv2|csc|security_code|code_verifier)$"
)
# Keys that contain a secret word but hold no secret.
_SAFE_KEYS: Final = frozenset(
    {"token_type", "expires_in", "token_id", "token_name", "session_id_hash", "auth_method"}
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_CREDENTIAL_PARAM = re.compile(
    r"(?P<key>\b(?:password|client_secret|refresh_token|access_token|code|token)=)"
    r"(?P<value>[^&\s\"']+)",
    re.IGNORECASE,
)
# Keys whose values are bank account or routing numbers (ACH): shown as their last four
# digits. Only these keys, and text that names them, are touched: an ordinary number (an
# amount, an id) is never taken for an account number.
_BANK_KEY = re.compile(r"(^|_)(account_number|routing_number|check_account|check_routing)$")
_BANK_IN_TEXT = re.compile(
    r"(?P<key>\b(?:account_number|routing_number)[\"']?\s*[:=]\s*[\"']?)(?P<digits>\d{4,17})\b",
    re.IGNORECASE,
)
#: How a card number appears in a log line: its last four digits only.
_PAN_MASK: Final = "[PAN ****{last4}]"


def redact_text(text: str) -> str:
    """Mask credentials and card numbers inside free text (messages, URLs, tracebacks)."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _CREDENTIAL_PARAM.sub(lambda m: f"{m.group('key')}{MASK}", text)
    text = _BANK_IN_TEXT.sub(lambda m: m.group("key") + last_four(m.group("digits")), text)
    return mask_card_numbers(text, _PAN_MASK)


def last_four(value: object) -> str:
    """A bank account (or routing) number as it may be logged: ``xx`` and its last four
    digits."""
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return f"xx{digits[-4:]}"


def is_bank_key(key: object) -> bool:
    return isinstance(key, str) and _BANK_KEY.search(key.lower().replace("-", "_")) is not None


def is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normalised = key.lower().replace("-", "_")
    return normalised not in _SAFE_KEYS and _SECRET_KEY.search(normalised) is not None


def redact(value: Any) -> Any:
    """Recursively redact a log value: secret keys masked, text scrubbed, numbers checked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, Decimal):  # an amount: its digits, not repr's "Decimal('75.0')"
        return redact_text(str(value))
    if isinstance(value, int):
        text = str(value)
        return redact_text(text) if len(text) >= 13 and redact_text(text) != text else value
    if isinstance(value, Mapping):
        return {
            key: (
                MASK
                if is_secret_key(key) and item not in (None, "")
                else last_four(item)
                if is_bank_key(key) and isinstance(item, str | int) and item != ""
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item) for item in value]
    return redact_text(repr(value)) if not isinstance(value, (bytes, bytearray)) else MASK


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: runs last before rendering, so it sees formatted tracebacks."""
    redacted = redact(dict(event_dict))
    assert isinstance(redacted, dict)
    return redacted


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn duplicates the message with ANSI codes
    return event_dict


_configured: dict[str, str] = {}

#: Loggers whose warnings are per-request detail (stamina announces every retry it
#: schedules): kept in the log file, left off a person's console.
CHATTY_LOGGERS: Final = frozenset({"stamina"})


def configure_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog and the standard library through one redacting renderer: JSON lines
    (the default, for ``ledgerlink serve`` and log collectors) or ``console`` text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_formatter(_renderer(fmt)))
    _install([handler], logging.getLevelName(level.upper()))
    _configured.update(level=level, fmt=fmt)


def configure_console_logging(log_file: Path, level: str = "info", stream: Any = None) -> None:
    """For a person at a terminal (``make demo``): the full JSON log goes to ``log_file``
    at ``level``; the console gets only warnings and errors, one readable line each, and
    none of the per-request retry chatter (which stays in the file)."""
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(_formatter(structlog.processors.JSONRenderer()))
    to_file.setLevel(logging.getLevelName(level.upper()))
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(_formatter(_readable_line(log_file)))
    console.setLevel(logging.WARNING)
    console.addFilter(lambda record: record.name.split(".")[0] not in CHATTY_LOGGERS)
    _install([to_file, console], min(to_file.level, logging.WARNING))
    _configured.update(level=level, fmt="console", file=str(log_file))


def unconfigure_logging() -> None:
    """Take ledgerlink's handlers off the root logger and put structlog's defaults back:
    for code (tests, embedding) that set logging up for a while and must leave the process
    as it found it."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_ledgerlink", False):
            root.removeHandler(existing)
            existing.close()
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()
    _configured.clear()


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def _readable_line(log_file: Path) -> Any:
    """A structlog renderer: ``12:04:05 WARNING event: key=value …`` on one line; an
    exception shows its last line and where its traceback is."""

    def render(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
        values = dict(event_dict)
        at = str(values.pop("timestamp", ""))[11:19]
        level = str(values.pop("level", "")).upper()
        event = str(values.pop("event", ""))
        values.pop("logger", None)
        exception = str(values.pop("exception", "") or "").strip()
        details = " ".join(f"{key}={value}" for key, value in values.items())
        line = f"{at} {level} {event}" + (f": {details}" if details else "")
        if exception:
            line += f" ({exception.splitlines()[-1]}; traceback in {log_file})"
        return line

    return render


def _formatter(renderer: Any) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
    )


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
    ]


def _install(handlers: list[logging.Handler], numeric_level: int) -> None:
    """Replace ledgerlink's handlers on the root logger with ``handlers``."""
    structlog.configure(
        processors=[
            # First: a call below the level is dropped before any processor runs (a
            # filtered debug line otherwise cost ~20 µs: timestamp, level, context).
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_ledgerlink", False):
            root.removeHandler(existing)
            if isinstance(existing, logging.FileHandler):
                existing.close()
    for handler in handlers:
        handler._ledgerlink = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(numeric_level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "procrastinate"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def redacted_mapping(values: MutableMapping[str, Any]) -> dict[str, Any]:
    """A redacted copy of ``values`` for places that persist context (job errors, audit)."""
    result = redact(dict(values))
    assert isinstance(result, dict)
    return result
