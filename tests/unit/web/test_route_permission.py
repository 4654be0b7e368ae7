"""`deps.route_permission` reads what a route declares: a permission dependency
anywhere in its dependencies, `openapi_extra` for pages, or nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from postroom.domain.permissions import Permission
from postroom.services.users import User
from postroom.web.app import routes
from postroom.web.deps import PUBLIC, CanConfigure, CurrentUser, needs, route_permission


def _nested(user: CanConfigure) -> User:
    return user


def test_route_permission_finds_each_kind_of_declaration() -> None:
    app = FastAPI()

    @app.get("/direct")
    def direct(user: CurrentUser) -> None: ...

    @app.get("/nested")
    def nested(user: Annotated[User, Depends(_nested)]) -> None: ...

    @app.get("/page", openapi_extra=needs(Permission.MANAGE_USERS))
    def page() -> None: ...

    @app.get("/open", openapi_extra=PUBLIC)
    def open_() -> None: ...

    @app.get("/silent")
    def silent() -> None: ...

    found = {r.path_format: route_permission(r) for r in routes(app)}
    assert found == {
        "/direct": "own_work",
        "/nested": "configure",
        "/page": "manage_users",
        "/open": "public",
        "/silent": None,
    }
