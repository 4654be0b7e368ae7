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
