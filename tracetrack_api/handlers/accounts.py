"""Login, the caller, users, dispatch areas."""

from __future__ import annotations

from datetime import UTC, datetime

from tracetrack_db import Page, areas, users
from tracetrack_db.users import UserChanges

from ..answers import LoggedOut, LoginAnswer
from ..table import Ctx


def login(ctx: Ctx, username: str, password: str) -> LoginAnswer:
    s = ctx.services
    with s.login_guard.attempt(users.login_name(username), ctx.client):
        done = users.authenticate(ctx.db, username, password)
    token, expires = s.signer.issue(done.user.id, done.token_version)
    s.directory.forget(done.user.id)
    return LoginAnswer(token, datetime.fromtimestamp(expires, UTC), done.user)


def logout(ctx: Ctx) -> LoggedOut:
    users.revoke_tokens(ctx.db, ctx.caller.id)
    ctx.services.directory.forget(ctx.caller.id)
    return LoggedOut(True)


def me(ctx: Ctx):
    return users.get_user(ctx.db, ctx.caller.id)


def list_users(ctx: Ctx, limit: int, cursor: str | None = None):
    return users.list_users(ctx.db, limit=limit, cursor=cursor)


def create_user(ctx: Ctx, username: str, password: str, role: str, dispatch_area: str | None = None):
    return users.create_user(ctx.db, username, password, role, dispatch_area, conn=ctx.conn)


def update_user(ctx: Ctx, user_id: int, **fields):
    changes = UserChanges(
        role=fields.get("role"),
        dispatch_area=fields.get("dispatch_area"),
        clear_area="dispatch_area" in fields and fields["dispatch_area"] is None,
        is_active=fields.get("is_active"),
        password=fields.get("password"),
    )
    user = users.update_user(ctx.db, user_id, changes, conn=ctx.conn)
    ctx.after_commit(lambda: ctx.services.directory.forget(user_id))
    return user


def list_areas(ctx: Ctx):
    return Page(areas.list_areas(ctx.db))


def create_area(ctx: Ctx, name: str, label: str | None = None):
    return areas.create_area(ctx.db, name, label, conn=ctx.conn)
