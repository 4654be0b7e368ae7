"""Errors users and operators can meet, each with a message that says what to do.

Edges (SMTP replies, HTTP status codes, CLI exit codes) translate these; the
core raises them and never formats protocol replies itself.
"""

from __future__ import annotations


class PostroomError(Exception):
    """Base of every error Postroom reports to a person."""


class ConfigError(PostroomError):
    """The configuration file or an environment variable is invalid."""


class NoRouteError(PostroomError):
    """No configured route matches any recipient of a message."""

    def __init__(self, recipients: list[str]) -> None:
        shown = ", ".join(recipients) or "(none)"
        super().__init__(
            f"no route matches the recipients {shown}; add a [[routes]] entry for one of "
            "these addresses (or *@their-domain) to the configuration, then retry the message"
        )
        self.recipients = recipients


class NotFoundError(PostroomError):
    """A named object does not exist."""


class MessageTooLargeError(PostroomError):
    """A message exceeds the configured size limit."""


# -- outbound mail ----------------------------------------------------------------


class OutboundError(PostroomError):
    """An outbound message cannot be composed or queued as asked."""


class NoRecipientError(OutboundError):
    def __init__(self) -> None:
        super().__init__("the message has no recipient; add at least one To, Cc or Bcc address")


class InvalidAddressError(OutboundError):
    def __init__(self, value: str) -> None:
        shown = value if len(value) <= 200 else value[:200] + "..."
        super().__init__(
            f"{shown!r} is not an email address; write one address as user@domain "
            "(a display name in front of <user@domain> is fine)"
        )
        self.value = value


class TooManyRecipientsError(OutboundError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"the message has {count} recipients, more than the limit of {limit}; send it to "
            "fewer people or raise [outbound] max_recipients"
        )
        self.count, self.limit = count, limit


class TooManyAttachmentsError(OutboundError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"the message has {count} attachments, more than the limit of {limit}; remove some "
            "or raise [outbound] max_attachments"
        )
        self.count, self.limit = count, limit


class OutboundTooLargeError(OutboundError, MessageTooLargeError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the message is {size} bytes, more than the limit of {limit}; remove or shrink "
            "attachments (or raise [outbound] max_message_size if the relay accepts more)"
        )
        self.size, self.limit = size, limit


class NoReplyAddressError(OutboundError):
    def __init__(self, conversation_id: int) -> None:
        super().__init__(
            f"conversation {conversation_id} has no address to reply from; set reply_from on "
            "the route that received it"
        )
        self.conversation_id = conversation_id


class NoQueueAddressError(OutboundError):
    """A new email cannot go out from a queue that no route gives an address."""

    def __init__(self, queue: str) -> None:
        super().__init__(
            f"queue {queue!r} has no address to send from; add a [[routes]] entry with "
            f'queue = "{queue}" and an exact address or a reply_from, or send from another queue'
        )
        self.queue = queue


# -- webhooks -----------------------------------------------------------------------


class InvalidWebhookError(PostroomError, ValueError):
    """A webhook's URL, event types, name or secret is not acceptable (a ValueError
    too, so the shared schema's validators report it beside the field)."""


# -- administration (admin API, pages and CLI) -----------------------------------------


class InvalidConfigField(PostroomError):
    """A configuration change names something that does not exist or is not allowed
    here; `field` is where (e.g. "queue", "then.queue", "imap.password")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(PostroomError):
    """A change the current state does not allow: a name or address that is taken,
    an order that no longer fits the list, a queue that still holds work, a skill
    agents still have. The message says what to change first; `field`, when
    known, is the input it is about."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ThreadChangeError(PostroomError):
    """A split or merge that cannot be done as asked: the message is not in the
    conversation, nothing would remain, or a conversation merged into itself."""


class ThreadChangeConflict(ConflictError):
    """A split or merge the conversations' state does not allow now: the source is
    held by an agent, the target is closed, or the two have different customers."""
