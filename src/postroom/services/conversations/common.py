"""Values the conversation reads share: the states a list may filter by, the held
states, and instants as ISO strings. No queries here."""

from __future__ import annotations

from datetime import datetime

from postroom.store.db import as_utc

STATES = ("queued", "alerting", "connected", "parked", "wrapup", "closed")
HELD = ("connected", "parked", "wrapup")


def iso(value: datetime | None) -> str | None:
    v = as_utc(value)
    return v.isoformat() if v is not None else None
