"""Fixtures for integration tests that need a real peer server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.dovecot import Dovecot


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A fresh Dovecot on a free loopback port with support@example.org:secret.

    Skips when Dovecot is not installed; fails instead when CI=true.
    """
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def dovecot_tls() -> Iterator[Dovecot]:
    """Like `dovecot`, plus STARTTLS on `port` and TLS on `ssl_port` (CA in `cafile`)."""
    server = Dovecot(tls=True)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
