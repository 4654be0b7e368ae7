"""Thread keys: the subject token and our own recognizable Message-IDs. Pure.

Deciding which stored thread a message joins needs the database and lives in
the intake pipeline; this module only computes and recognizes keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN_RE_CACHE: dict[str, re.Pattern[str]] = {}


def thread_token(prefix: str, thread_id: int) -> str:
    """The reference agents and customers see, e.g. ``PR-1042``."""
    return f"{prefix}-{thread_id}"


def subject_with_token(subject: str, token: str) -> str:
    tag = f"[#{token}]"
    return subject if tag in subject else f"{subject} {tag}".strip()


def _token_re(prefix: str) -> re.Pattern[str]:
    pattern = _TOKEN_RE_CACHE.get(prefix)
    if pattern is None:
        pattern = re.compile(r"\[#" + re.escape(prefix) + r"-(\d{1,12})\]", re.IGNORECASE)
        _TOKEN_RE_CACHE[prefix] = pattern
    return pattern


def tokens_in_subject(subject: str, prefix: str) -> list[int]:
    """Thread ids named by ``[#PREFIX-N]`` tokens in a subject, in order."""
    return [int(m.group(1)) for m in _token_re(prefix).finditer(subject)]


def outbound_message_id(token: str, unique: str, domain: str) -> str:
    """A Message-ID (without brackets) that names its thread: ``pr.PR-7.<unique>@domain``.

    RFC 5322 section 3.6.4 only asks for global uniqueness; `unique` must be
    random (the caller supplies it so this stays deterministic).
    """
    return f"pr.{token}.{unique}@{domain}"


def token_from_our_message_id(message_id: str, domain: str) -> str | None:
    local, _, dom = message_id.rpartition("@")
    if dom.lower() != domain.lower() or not local.startswith("pr."):
        return None
    parts = local.split(".")
    return parts[1] if len(parts) >= 3 else None


def reference_ids(in_reply_to: Iterable[str], references: Iterable[str]) -> list[str]:
    """Ids to look up, most specific first (In-Reply-To, then References newest first)."""
    seen: list[str] = []
    for mid in [*in_reply_to, *reversed(list(references))]:
        if mid and mid not in seen:
            seen.append(mid)
    return seen


# -- why a message joined its thread (recorded by intake, rendered at the edge) -----

THREAD_REASONS = (
    "in_reply_to",  # its In-Reply-To names a message of the thread, the sender took part
    "references",  # its References name one, the sender took part
    "subject_token",  # a [#PR-n] token names the thread, the sender took part
    "reply_arrived_first",  # a reply to it arrived earlier and joined the thread
    "not_participant",  # new thread: it named a thread the sender is not a participant of
    "reopen_window_passed",  # new thread: it matched a thread closed too long ago
    "no_match",  # new thread: nothing it names is known
)


def thread_reason(code: str, **ids: int | str | None) -> dict[str, int | str | None]:
    """The stored form: ``{"code": ..., <ids>}`` (None values left out)."""
    if code not in THREAD_REASONS:
        raise ValueError(f"unknown thread reason {code!r}")
    return {"code": code, **{k: v for k, v in ids.items() if v is not None}}


def describe_thread_reason(reason: object) -> str | None:
    """One sentence for people, from the stored form; None for none or an unknown one."""
    if not isinstance(reason, dict):
        return None
    code = reason.get("code")
    thread = reason.get("thread")
    message = reason.get("message")
    header_id = reason.get("message_id")
    named = f"message {message}" if message is not None else f"<{header_id}>"
    if code == "in_reply_to":
        return f"In-Reply-To matched {named} of thread {thread}, and the sender is a participant"
    if code == "references":
        return f"References matched {named} of thread {thread}, and the sender is a participant"
    if code == "subject_token":
        return f"subject token [#{reason.get('token')}] and the sender is a participant"
    if code == "reply_arrived_first":
        return f"a reply to this message arrived first and joined thread {thread}"
    if code == "not_participant":
        return f"new thread: the sender is not a participant of thread {thread} that it names"
    if code == "reopen_window_passed":
        days = reason.get("days")
        return f"new thread: thread {thread} matched but was closed more than {days} days before"
    if code == "no_match":
        return "new thread: no match"
    return None
