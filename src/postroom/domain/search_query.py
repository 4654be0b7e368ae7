"""The search language, pure: what a person types in a search box becomes a `Query`
(words, "quoted phrases" and `from:` `to:` `queue:` `state:` `ref:` operators), and
text becomes the tokens both search indexes hold. Also where the words of a query
occur in a text, for highlighted snippets, and which mail domains are free-mail.

No input makes it raise: NUL characters, unbalanced quotes, search-engine syntax
(`*`, `NEAR`, `^`, `:`) and very long input are read as plain words (or dropped
beyond the limits below). It knows nothing of databases or HTML; the search adapters
(services/search/) build their own syntax from the tokens only, so no character a
person typed reaches a MATCH or tsquery expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

# Limits: a query reads at most MAX_QUERY characters and keeps MAX_TERMS terms; an
# indexed field keeps its first MAX_FIELD_TOKENS tokens, each at most MAX_TOKEN long
# (longer ones — base64, hashes — are dropped: nobody searches for them).
MAX_QUERY = 2000
MAX_TERMS = 16
MAX_TOKEN = 64
MAX_FIELD_TOKENS = 10_000
MAX_OPERATOR_VALUE = 320

OPERATORS = ("from", "to", "queue", "state", "ref")

# Letters and digits of any script; everything else separates tokens (plain text,
# never HTML: the indexes are given messages' text parts).
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str | None, limit: int = MAX_FIELD_TOKENS) -> list[str]:
    """The lower-cased words of `text`, as both indexes store them."""
    out: list[str] = []
    if not text:
        return out
    for m in _TOKEN.finditer(text.lower()):
        tok = m.group(0)
        if len(tok) <= MAX_TOKEN:
            out.append(tok)
            if len(out) >= limit:
                break
    return out


def token_text(text: str | None, limit: int = MAX_FIELD_TOKENS) -> str:
    """`tokens` joined by spaces: the text an index is given for one field."""
    return " ".join(tokens(text, limit))


# The indexed fields, in the order the adapters store them.
FIELDS = ("subject", "sender", "recipients", "reference", "attachments", "body")


def _header_values(headers: Any, *names: str) -> list[str]:
    return [
        str(item[1])
        for item in headers or []
        if isinstance(item, list | tuple) and len(item) == 2 and str(item[0]).lower() in names
    ]


def index_fields(
    *,
    subject: str | None,
    sender: str | None,
    headers: Any,
    text: str | None,
    thread_id: int | None,
    filenames: Sequence[str],
    prefix: str,
) -> dict[str, str]:
    """The indexed text of one message, field by field (FIELDS): subject, sender
    (address and From display name), recipients (To and Cc, names and addresses),
    the thread's reference (PR-12), attachment file names and the text."""
    pairs = getaddresses(_header_values(headers, "to", "cc"))
    return {
        "subject": token_text(subject),
        "sender": token_text(" ".join([sender or "", *_header_values(headers, "from")])),
        "recipients": token_text(" ".join(f"{name} {addr}" for name, addr in pairs)),
        "reference": token_text(f"{prefix}-{thread_id}") if thread_id else "",
        "attachments": token_text(" ".join(filenames)),
        "body": token_text(text),
    }


@dataclass(frozen=True, slots=True)
class Term:
    """Words that must occur in this order (one word, or a quoted phrase)."""

    words: tuple[str, ...]
    phrase: bool = False  # typed in quotes


@dataclass(frozen=True, slots=True)
class Query:
    terms: tuple[Term, ...] = ()
    senders: tuple[str, ...] = ()  # from: an address or a domain, lower-cased
    recipients: tuple[Term, ...] = ()  # to: the words of an address, in order
    queues: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    refs: tuple[int, ...] = ()  # ref:PR-12 (or a bare PR-12): thread 12
    dropped: tuple[str, ...] = ()  # what was not understood

    @property
    def empty(self) -> bool:
        return not (
            self.terms or self.senders or self.recipients or self.queues or self.states
            or self.refs
        )  # fmt: skip

    @property
    def words(self) -> tuple[str, ...]:
        """Every word of the text terms (what snippets mark)."""
        return tuple(w for t in (*self.terms, *self.recipients) for w in t.words)

    @property
    def has_text(self) -> bool:
        """Does the query need the full-text index (words, phrases or to:)?"""
        return bool(self.terms or self.recipients)


def _chunks(text: str) -> Iterator[tuple[str, bool]]:
    """(piece, quoted) in order: quoted pieces are phrases; an unbalanced quote runs
    to the end of the input; `op:"two words"` stays one piece."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            yield text[i + 1 : end], True
            i = end + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            if text[j] == '"' and j > i and text[j - 1] == ":":
                end = text.find('"', j + 1)
                j = n if end < 0 else end + 1
                break
            j += 1
        yield text[i:j], False
        i = j


def reference_number(value: str, prefix: str) -> int | None:
    """12 for "PR-12" (any case) with prefix "PR"; None for anything else."""
    head, sep, number = value.strip().rpartition("-")
    if not sep or head.lower() != prefix.lower():
        return None
    if not number.isascii() or not number.isdigit() or len(number) > 12:
        return None
    return int(number)


def parse(text: str | None, *, prefix: str = "PR") -> Query:
    """Read a search box. Never raises; see the module docstring."""
    raw = (text or "").replace("\x00", " ")[:MAX_QUERY]
    terms: list[Term] = []
    senders: list[str] = []
    recipients: list[Term] = []
    queues: list[str] = []
    states: list[str] = []
    refs: list[int] = []
    dropped: list[str] = []

    def add(words: Sequence[str], phrase: bool, piece: str) -> None:
        if words and len(terms) < MAX_TERMS:
            terms.append(Term(tuple(words), phrase or len(words) > 1))
        elif piece.strip():
            dropped.append(piece)

    for piece, quoted in _chunks(raw):
        if quoted:
            add(tokens(piece, MAX_TERMS * 4), True, piece)
            continue
        key, sep, value = piece.partition(":")
        key = key.lower()
        if sep and key in OPERATORS:
            value = value.strip('"').strip()[:MAX_OPERATOR_VALUE]
            if not value:
                dropped.append(piece)
            elif key == "from":
                senders.append(value.lower().lstrip("@"))
            elif key == "to":
                words = tokens(value, MAX_TERMS)
                if words:
                    recipients.append(Term(tuple(words), True))
                else:
                    dropped.append(piece)
            elif key == "queue":
                queues.append(value)
            elif key == "state":
                states.append(value.lower())
            else:
                number = reference_number(value, prefix)
                if number is None and value.isascii() and value.isdigit() and len(value) <= 12:
                    number = int(value)
                if number is None:
                    dropped.append(piece)
                else:
                    refs.append(number)
            continue
        number = reference_number(piece, prefix)
        if number is not None:
            refs.append(number)
            continue
        add(tokens(piece, MAX_TERMS * 4), False, piece)
    return Query(
        tuple(terms),
        tuple(senders),
        tuple(recipients),
        tuple(queues),
        tuple(states),
        tuple(refs),
        tuple(dropped),
    )


def unparse(query: Query, *, prefix: str = "PR") -> str:
    """Search box text that parses back to `query` (less what was dropped)."""
    parts: list[str] = []
    for t in query.terms:
        parts.append('"' + " ".join(t.words) + '"' if t.phrase else t.words[0])
    parts += [f'from:"{s}"' for s in query.senders if '"' not in s]
    parts += ['to:"' + " ".join(t.words) + '"' for t in query.recipients]
    parts += [f'queue:"{q}"' for q in query.queues if '"' not in q]
    parts += [f'state:"{s}"' for s in query.states if '"' not in s]
    parts += [f"ref:{prefix}-{n}" for n in query.refs]
    return " ".join(parts)


# -- snippets ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    marked: bool


def snippet(text: str | None, words: Iterable[str], *, width: int = 24) -> tuple[Piece, ...]:
    """About `width` words of `text` around the first place a query word occurs, as
    plain and marked pieces (the matching words); without a match, the start of the
    text. The caller escapes every piece for its output."""
    if not text:
        return ()
    wanted = {w for w in words if w}
    body = text[:200_000]
    spans = [(m.start(), m.end(), m.group(0).lower()) for m in _TOKEN.finditer(body)]
    if not spans:
        return ()
    first = next((i for i, s in enumerate(spans) if s[2] in wanted), 0)
    lo = max(0, first - width // 3)
    hi = min(len(spans), lo + width)
    out: list[Piece] = []
    if lo > 0:
        out.append(Piece("… ", False))
    pos = spans[lo][0]
    for s, e, tok in spans[lo:hi]:
        if tok in wanted:
            if s > pos:
                out.append(Piece(_flat(body[pos:s]), False))
            out.append(Piece(body[s:e], True))
            pos = e
    end = spans[hi - 1][1]
    if end > pos:
        out.append(Piece(_flat(body[pos:end]), False))
    if hi < len(spans):
        out.append(Piece(" …", False))
    return tuple(out)


def _flat(text: str) -> str:
    """Runs of white space (the line breaks of a quoted reply) as one space."""
    collapsed = " ".join(text.split())
    if not collapsed:
        return " "
    if text[:1].isspace():
        collapsed = " " + collapsed
    if text[-1:].isspace():
        collapsed += " "
    return collapsed


# -- customers -------------------------------------------------------------------

# Mail providers whose addresses belong to unrelated people: the customer panel does
# not treat "the same domain" there as the same company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk",
        "hotmail.fr", "live.com", "live.co.uk", "msn.com", "yahoo.com", "yahoo.co.uk",
        "yahoo.fr", "yahoo.de", "ymail.com", "rocketmail.com", "icloud.com", "me.com",
        "mac.com", "aol.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "t-online.de",
        "mail.com", "mail.ru", "yandex.ru", "yandex.com", "proton.me", "protonmail.com",
        "pm.me", "tutanota.com", "zoho.com", "qq.com", "163.com", "126.com", "naver.com",
        "orange.fr", "free.fr", "laposte.net", "libero.it", "fastmail.com", "hey.com",
    }
)  # fmt: skip


def address_domain(address: str | None) -> str | None:
    """The domain of an address, lower-cased; None without one."""
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return domain or None


def shared_domain(address: str | None) -> str | None:
    """The domain whose other senders count as the same customer: None for free-mail
    providers (two gmail.com senders are strangers)."""
    domain = address_domain(address)
    if domain is None or domain in FREE_MAIL_DOMAINS:
        return None
    return domain
