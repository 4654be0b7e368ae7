"""A token's effective role: its own when it is at most the user's, the user's
otherwise (a user demoted after the token was made), the user's when unbound."""

from __future__ import annotations

import pytest

from postroom.services.users import effective_role


@pytest.mark.parametrize(
    ("user_role", "token_role", "expected"),
    [
        ("admin", None, "admin"),
        ("admin", "agent", "agent"),
        ("admin", "supervisor", "supervisor"),
        ("supervisor", "supervisor", "supervisor"),
        ("agent", "admin", "agent"),  # demoted below the token: the user's role wins
        ("supervisor", "admin", "supervisor"),
        ("agent", "emperor", "agent"),
    ],
)
def test_effective_role(user_role: str, token_role: str | None, expected: str) -> None:
    assert effective_role(user_role, token_role) == expected
