"""The permission table: each role's powers, and that they nest."""

from __future__ import annotations

from postroom.domain.permissions import ROLES, TABLE, Permission, allows, at_most, roles_with


def test_agents_have_only_their_own_work() -> None:
    assert TABLE["agent"] == {Permission.OWN_WORK}


def test_supervisors_see_and_act_on_all_work_but_do_not_configure() -> None:
    assert allows("supervisor", Permission.ACT_ON_BACKLOG)
    assert allows("supervisor", Permission.MANAGE_CANNED)
    for power in (Permission.CONFIGURE, Permission.MANAGE_USERS, Permission.MANAGE_TOKENS):
        assert not allows("supervisor", power)


def test_admins_have_every_permission_and_roles_nest() -> None:
    assert TABLE["admin"] == frozenset(Permission)
    assert TABLE["agent"] < TABLE["supervisor"] < TABLE["admin"]
    assert [r for r in ROLES if at_most(r, "supervisor")] == ["agent", "supervisor"]


def test_unknown_roles_have_nothing() -> None:
    assert not allows("root", Permission.OWN_WORK)
    assert not at_most("root", "admin")
    assert roles_with(Permission.CONFIGURE) == ("admin",)
