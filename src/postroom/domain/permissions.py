"""Who may do what: the one permission table for the three roles.

Every endpoint and page asks this table (through `web/deps.py` `require`);
docs/admin-guide.md prints it. Pure data: no users, no database, no HTTP.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")


class Permission(StrEnum):
    """One power a role may have. The value is the name docs and errors use."""

    # agent: their own work
    OWN_WORK = "own_work"  # take offers, reply, transfer, park, wrap up, own status
    # supervisor
    SEE_ALL_WORK = "see_all_work"  # every conversation, queue figures, other agents
    ACT_ON_BACKLOG = "act_on_backlog"  # assign, move, close waiting work
    MANAGE_AGENT_STATUS = "manage_agent_status"  # set another agent's presence
    MANAGE_CANNED = "manage_canned"  # create, edit and delete canned responses
    VIEW_CONFIG = "view_config"  # read queues, routes, rules, catalogs, members
    READ_METRICS = "read_metrics"  # scrape GET /metrics (Prometheus)
    # admin
    CONFIGURE = "configure"  # change queues, routes, rules, catalogs, members, webhooks
    MANAGE_USERS = "manage_users"  # create, disable, reset passwords, change roles
    MANAGE_TOKENS = "manage_tokens"  # create and revoke API tokens for anyone
    MANAGE_QUARANTINE = "manage_quarantine"  # retry, discard, release quarantined mail
    VIEW_AUDIT = "view_audit"  # read the audit log


_AGENT = frozenset({Permission.OWN_WORK})
_SUPERVISOR = _AGENT | {
    Permission.SEE_ALL_WORK,
    Permission.ACT_ON_BACKLOG,
    Permission.MANAGE_AGENT_STATUS,
    Permission.MANAGE_CANNED,
    Permission.VIEW_CONFIG,
    Permission.READ_METRICS,
}
_ADMIN = frozenset(Permission)

TABLE: dict[Role, frozenset[Permission]] = {
    "agent": _AGENT,
    "supervisor": frozenset(_SUPERVISOR),
    "admin": _ADMIN,
}


def allows(role: str, permission: Permission) -> bool:
    """Does `role` have `permission`? Unknown roles have none."""
    return permission in TABLE.get(role, frozenset())  # type: ignore[call-overload]


def roles_with(permission: Permission) -> tuple[Role, ...]:
    """The roles that have `permission`, lowest first (for error messages)."""
    return tuple(r for r in ROLES if permission in TABLE[r])


def at_most(role: str, ceiling: str) -> bool:
    """Is `role` no more powerful than `ceiling` (a token's role against its user's)?"""
    if role not in ROLES or ceiling not in ROLES:
        return False
    return TABLE[role] <= TABLE[ceiling]
