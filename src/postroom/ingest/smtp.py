"""The SMTP listener: aiosmtpd hooks that accept mail for configured routes only.

One hook per SMTP command (RFC 5321): RCPT checks the route and the recipient
limit, DATA hands the bytes to the spool and answers 250 only once they are
durable. Size is advertised and enforced by aiosmtpd (RFC 1870, SIZE), on the
encoded message. Lines of any length are accepted up to that size, as Postfix
does (real mail has lines over RFC 5321's 1,000), and every error reply carries
an RFC 3463 enhanced status code. The listener never parses or routes mail itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from postroom.domain.errors import ConfigError
from postroom.domain.routes import Route, find_route
from postroom.ingest.ports import IntakeSink

log = logging.getLogger("postroom.smtp")

# Reply texts, named like aiosmtpd names its own (RFC 3463 enhanced codes).
REPLY_NO_SUCH_USER = "550 5.1.1 Recipient address rejected: no route for this address"
REPLY_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
REPLY_TEMP_FAILURE = "451 4.3.0 Temporary failure storing the message, try again later"
REPLY_NO_RECIPIENTS = "554 5.5.1 No valid recipients"
REPLY_TOO_BIG = "552 5.3.4 Message too big for system"

# aiosmtpd's own replies that need more than an added enhanced code.
_REPLACED = {
    "552 Error: Too much mail data": REPLY_TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message size exceeds fixed maximum message size"
    ),
    # Lines may be as long as the whole message (see PostroomSMTP): a longer line
    # means the message is too big.
    "500 Line too long (see RFC5321 4.5.3.1.6)": REPLY_TOO_BIG,
}
# The enhanced code for an aiosmtpd reply that has none, by reply code (RFC 3463).
_ENHANCED = {
    "421": "4.7.0",
    "451": "4.3.0",
    "500": "5.5.2",  # syntax error, command unrecognized or too long
    "501": "5.5.4",  # invalid command arguments
    "502": "5.5.1",  # command not implemented
    "503": "5.5.1",  # bad sequence of commands
    "504": "5.5.4",
    "530": "5.7.0",
    "550": "5.1.1",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.7.0",  # "Command refused due to lack of security" (failed TLS)
    "555": "5.5.4",  # MAIL FROM/RCPT TO parameters not recognized
}
_HAS_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?: |$)")


def with_enhanced_code(reply: str) -> str:
    """`reply` with an RFC 3463 enhanced status code when it is an error without one."""
    if reply in _REPLACED:
        return _REPLACED[reply]
    code, sep, text = reply[:3], reply[3:4], reply[4:]
    if code[:1] not in ("4", "5") or sep not in (" ", "-") or _HAS_ENHANCED.match(text):
        return reply
    enhanced = _ENHANCED.get(code, f"{code[0]}.0.0")
    return f"{code}{sep}{enhanced} {text}"


class PostroomSMTP(SMTP):
    """aiosmtpd's SMTP with long lines accepted and enhanced codes on its replies."""

    def __init__(self, handler: Any, *, data_size_limit: int, **kwargs: Any) -> None:
        # aiosmtpd reads every line, DATA included, through one StreamReader whose
        # buffer limit is this; it refuses longer DATA lines with "500 Line too
        # long". A DATA line may be as long as the message may be; a command line
        # is still refused beyond aiosmtpd's command size limit (512 bytes).
        self.line_length_limit = max(SMTP.line_length_limit, data_size_limit or 2**31)
        super().__init__(handler, data_size_limit=data_size_limit, **kwargs)

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = with_enhanced_code(status)
        await super().push(status)


class IntakeHandler:
    """aiosmtpd handler: RCPT and DATA hooks."""

    def __init__(
        self,
        sink: IntakeSink,
        routes: Callable[[], Sequence[Route]],
        *,
        max_recipients: int = 50,
    ) -> None:
        self.sink = sink
        self.routes = routes
        self.max_recipients = max_recipients

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return REPLY_TOO_MANY_RCPTS
        # Never an open relay: only addresses some route claims are accepted.
        if find_route(list(self.routes()), [address]) is None:
            return REPLY_NO_SUCH_USER
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not envelope.rcpt_tos:
            return REPLY_NO_RECIPIENTS
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        try:
            accepted = await self.sink.accept(
                raw,
                source="smtp",
                envelope_from=envelope.mail_from,
                envelope_to=list(envelope.rcpt_tos),
            )
        except Exception:
            log.exception("spool failed; answering 451", extra={"peer": str(session.peer)})
            return REPLY_TEMP_FAILURE
        log.info(
            "message spooled",
            extra={"message_pk": accepted.message_pk, "size": len(raw), "source": "smtp"},
        )
        return f"250 2.0.0 OK queued as {accepted.message_pk}"


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the SMTP TLS certificate {cert} / key {key}: {exc}; check "
            "smtp.tls_cert and smtp.tls_key"
        ) from exc
    return ctx


async def start_smtp_server(
    handler: IntakeHandler,
    *,
    host: str,
    port: int,
    hostname: str,
    max_message_size: int,
    tls: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """Listen on (host, port) in the running loop; return the server (close() to stop)."""
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return PostroomSMTP(
            handler,
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="Postroom ESMTP",
            tls_context=tls,
            require_starttls=False,
            timeout=300,
        )

    return await loop.create_server(factory, host=host, port=port)
