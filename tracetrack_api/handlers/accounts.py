"""Login, logout, the caller and their password, users, dispatch areas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from tracetrack_db import Page, areas, audit, users
from tracetrack_db.users import UserChanges

from ..answers import LoggedOut, LoginAnswer
from ..errors import RateLimited
from ..login_guard import FREE_TRIES, WINDOW_SECONDS
from ..table import Ctx


@contextmanager
def _guarded(ctx: Ctx, name: str) -> Iterator[None]:
    """The login guard's attempt for `name` from the caller's address, with its
    security log rows: a lockout when the free tries are used up, and a refused
    attempt (login_failed, reason rate_limited) once per refusal period."""
    guard, origin = ctx.services.login_guard, ctx.origin

    def lockout() -> None:
        details = {"free_tries": FREE_TRIES, "window_seconds": WINDOW_SECONDS}
        audit.record(ctx.db, "lockout", origin, username=name, reason="rate_limited", details=details)

    try:
        with guard.attempt(name, ctx.client, on_lockout=lockout):
            yield
    except RateLimited as refusal:
        if guard.first_refusal(name, ctx.client, refusal):
            details = {"limit": refusal.scope, "retry_after": refusal.retry_after}
            audit.record(ctx.db, "login_failed", origin, username=name, reason=refusal.code, details=details)
        raise


def login(ctx: Ctx, username: str, password: str) -> LoginAnswer:
    s = ctx.services
    with _guarded(ctx, users.login_name(username)):
        done = users.authenticate(ctx.db, username, password, origin=ctx.origin)
    token, expires = s.signer.issue(done.user.id, done.token_version)
    s.directory.forget(done.user.id)
    return LoginAnswer(token, datetime.fromtimestamp(expires, UTC), done.user)


def change_password(ctx: Ctx, current_password: str, new_password: str) -> LoginAnswer:
    """The caller's own new password: every older token ends (all devices), and
    this device gets a fresh one. A wrong current password counts as a failed
    login of that username from this address (the same throttle: a stolen token
    is no faster way to guess the password)."""
    s, me = ctx.services, ctx.caller
    users.check_new_password(new_password, me.username, current_password)  # a weak choice is no guess
    with s.login_guard.attempt(users.login_name(me.username), ctx.client):
        done = users.change_password(ctx.db, me.id, current_password, new_password, origin=ctx.origin)
    s.directory.forget(me.id)
    token, expires = s.signer.issue(me.id, done.token_version)
    return LoginAnswer(token, datetime.fromtimestamp(expires, UTC), done.user)


def logout(ctx: Ctx) -> LoggedOut:
    users.revoke_tokens(ctx.db, ctx.caller.id, origin=ctx.origin)
    ctx.services.directory.forget(ctx.caller.id)
    return LoggedOut(True)


def me(ctx: Ctx):
    return users.get_account(ctx.db, ctx.caller.id)


def list_users(ctx: Ctx, limit: int, cursor: str | None = None):
    return users.list_users(ctx.db, limit=limit, cursor=cursor)


def create_user(ctx: Ctx, username: str, password: str, role: str, dispatch_area: str | None = None):
    return users.create_user(ctx.db, username, password, role, dispatch_area, origin=ctx.origin, conn=ctx.conn)


def update_user(ctx: Ctx, user_id: int, **fields):
    password = fields.get("password")
    changes = UserChanges(
        role=fields.get("role"),
        dispatch_area=fields.get("dispatch_area"),
        clear_area="dispatch_area" in fields and fields["dispatch_area"] is None,
        is_active=fields.get("is_active"),
        password=password,
        # an admin who sets someone else's password knows it: that user must choose their own
        must_change_password=True if password is not None and user_id != ctx.caller.id else None,
    )
    user = users.update_user(ctx.db, user_id, changes, origin=ctx.origin, conn=ctx.conn)
    ctx.after_commit(lambda: ctx.services.directory.forget(user_id))
    return user


def list_areas(ctx: Ctx):
    return Page(areas.list_areas(ctx.db))


def create_area(ctx: Ctx, name: str, label: str | None = None):
    return areas.create_area(ctx.db, name, label, conn=ctx.conn)
