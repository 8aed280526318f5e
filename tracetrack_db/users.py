"""Users: creation, login, updates, password changes, token revocation, listing.

A username is ASCII (A-Z a-z 0-9 _ . @ -) and matched case-insensitively;
`login_name` is the one place a typed name becomes the form every lookup and
every login throttle uses, so no two spellings of a name (Python and
PostgreSQL lowercase some non-ASCII letters differently) can reach one user.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import Connection

from . import audit, errors
from .audit import LIBRARY, Origin
from .cursor import check_limit, decode_cursor, paginate
from .database import Database
from .models import Account, Page, Principal, User
from .passwords import check_strength, dummy_hash, hash_password, needs_rehash, rehash, verify_password
from .rawsql import behind_pooler

ROLES = ("admin", "biller", "dispatcher")
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{3,64}$"  # the app_user_username_check constraint


def login_name(username: str) -> str:
    """The form a typed username is looked up and throttled by: ASCII,
    lowercased. A name that is not ASCII cannot be anyone's (InvalidUsername),
    so it is refused rather than folded into some other name."""
    if not isinstance(username, str) or not username.isascii():
        raise errors.InvalidUsername("a username is ASCII: A-Z a-z 0-9 _ . @ -", field="username")
    return username.lower()


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A successful login (or password change): the user as they see themselves,
    and the token version their new token carries."""

    user: Account
    token_version: int


def _check_role(role: str, dispatch_area: str | None) -> None:
    if role not in ROLES:
        raise errors.ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "dispatcher" and not dispatch_area:
        raise errors.DispatchAreaRequired("a dispatcher needs a dispatch area", field="dispatch_area")


def create_user(
    db: Database,
    username: str,
    password: str,
    role: str,
    dispatch_area: str | None = None,
    *,
    origin: Origin = LIBRARY,
    conn: Connection | None = None,
) -> User:
    """Create a user; dispatchers need a dispatch area. Raises UsernameTaken.
    Logged (user_created, with the role and area) in the same transaction."""
    _check_role(role, dispatch_area)
    if not isinstance(username, str) or not re.fullmatch(USERNAME_PATTERN, username):
        raise errors.InvalidUsername("a username is 3-64 characters of A-Z a-z 0-9 _ . @ -", field="username")
    password_hash = hash_password(password, username)
    with db.transaction(conn) as tx:
        user_id = db.scalar(
            "create_user",
            {"username": username, "password_hash": password_hash, "role": role, "dispatch_area": dispatch_area},
            conn=tx,
        )
        audit.record(
            db,
            "user_created",
            origin,
            user_id=user_id,
            username=username,
            details={"role": role, "dispatch_area": dispatch_area},
            conn=tx,
        )
        return db.one("get_user", {"id": user_id}, row=User, conn=tx)


def get_user(db: Database, user_id: int) -> User:
    user = db.one("get_user", {"id": user_id}, row=User)
    if user is None:
        raise errors.UserNotFound(f"user {user_id} not found")
    return user


def get_account(db: Database, user_id: int) -> Account:
    """A user as they see themselves: the User and must_change_password."""
    account = db.one("get_account", {"id": user_id}, row=Account)
    if account is None:
        raise errors.UserNotFound(f"user {user_id} not found")
    return account


def find_user(db: Database, username: str) -> User | None:
    try:
        name = login_name(username)
    except errors.InvalidUsername:
        return None
    return db.one("get_user_by_username", {"username": name}, row=User)


def get_principal(db: Database, user_id: int) -> Principal | None:
    """What a token check needs of a user, or None when the user is gone or deactivated."""
    row = db.one("get_principal", {"id": user_id}, row=dict)
    if row is None or not row["is_active"]:
        return None
    return Principal(
        row["id"],
        row["username"],
        row["role"],
        row["dispatch_area"],
        row["token_version"],
        must_change_password=row["must_change_password"],
    )


def count_active_admins(db: Database) -> int:
    return db.scalar("count_active_admins")


def authenticate(db: Database, username: str, password: str, *, origin: Origin = LIBRARY) -> Authenticated:
    """Check a password: InvalidCredentials, one message for an unknown name, a
    wrong password and a deactivated account (even with its right password).

    Either way the security log gets a row (`origin`'s address and user agent):
    login_succeeded, written by the statement that records the login (no extra
    round trip), or login_failed with reason invalid_credentials and, for the
    log's readers only, the cause (unknown_user, wrong_password, inactive).

    Every call runs exactly one argon2 check (against a dummy hash when there
    is no such user), so neither the answer nor its time tells which names
    exist. There is no account lock here, which anyone could trigger: callers
    throttle guesses per name and client address (the HTTP service does).
    """
    name = login_name(username)
    login = db.one("get_login", {"username": name}, row=dict)
    right = verify_password(login["password_hash"] if login else dummy_hash(), password)
    if not right or login is None or not login["is_active"]:
        cause = "unknown_user" if login is None else "wrong_password" if not right else "inactive"
        audit.record(
            db,
            "login_failed",
            origin,
            user_id=login["id"] if login else None,
            username=name,
            reason=errors.InvalidCredentials.code,
            details={"cause": cause},
        )
        raise errors.InvalidCredentials("wrong username or password")
    fresh = rehash(password) if needs_rehash(login["password_hash"]) else None
    version = db.scalar(
        "login_succeeded",
        {"id": login["id"], "password_hash": fresh, "address": origin.address, "user_agent": origin.user_agent},
    )
    return Authenticated(get_account(db, login["id"]), version)


def check_new_password(new_password: str, username: str, current_password: str | None = None) -> None:
    """WeakPassword (field new_password) unless `new_password` follows the rules
    of any password (passwords.check_strength) and differs from the current one.
    Cheap next to a password check: callers run it first, so a weak choice costs
    no argon2 check and counts as no guess of the current password."""
    try:
        check_strength(new_password, username)
    except errors.WeakPassword as exc:
        raise errors.WeakPassword(exc.message, field="new_password") from None
    if current_password is not None and new_password == current_password:
        raise errors.WeakPassword("the new password must differ from the current one", field="new_password")


def change_password(
    db: Database, user_id: int, current_password: str, new_password: str, *, origin: Origin = LIBRARY
) -> Authenticated:
    """A user's own new password, given the current one (WrongPassword, field
    current_password, otherwise); the new one follows check_new_password
    (WeakPassword). Clears must_change_password and ends every older token of
    the user (token_version); the answer carries the new version, for a fresh
    token on the device that asked.

    One argon2 check of the current password, as a login; callers throttle
    wrong ones as they throttle logins (the HTTP service counts them with the
    login attempts of that username). If the password changed between the check
    and the write (an admin's reset, another change), nothing is written and the
    current password given counts as wrong.

    Logged: password_changed and tokens_revoked in the change's transaction,
    or password_change_failed (reason wrong_password)."""
    row = db.one("get_password", {"id": user_id}, row=dict)
    if row is None or not row["is_active"]:
        raise errors.UserNotFound(f"user {user_id} not found")
    check_new_password(new_password, row["username"], current_password)
    refused = errors.WrongPassword("the current password is not right", field="current_password")
    if verify_password(row["password_hash"], current_password):
        new_hash = hash_password(new_password, row["username"])
        with db.transaction() as tx:
            version = db.scalar(
                "change_password",
                {"id": user_id, "checked_hash": row["password_hash"], "password_hash": new_hash},
                conn=tx,
            )
            if version is not None:
                whom = {"user_id": user_id, "username": row["username"], "conn": tx}
                audit.record(db, "password_changed", origin, **whom)
                audit.record(db, "tokens_revoked", origin, reason="password_changed", **whom)
        if version is not None:
            return Authenticated(get_account(db, user_id), version)
        refused = errors.WrongPassword(
            "the password changed while this change was checked: try again with the current one",
            field="current_password",
        )
    audit.record(db, "password_change_failed", origin, user_id=user_id, username=row["username"], reason=refused.code)
    raise refused


def revoke_tokens(db: Database, user_id: int, *, origin: Origin = LIBRARY) -> int:
    """End every token of a user (a logout); the user's new token version.
    Logged as logout and tokens_revoked (reason logout)."""
    with db.transaction() as tx:
        version = db.scalar("revoke_tokens", {"id": user_id}, conn=tx)
        if version is None:
            raise errors.UserNotFound(f"user {user_id} not found")
        audit.record(db, "logout", origin, user_id=user_id, conn=tx)
        audit.record(db, "tokens_revoked", origin, user_id=user_id, reason="logout", conn=tx)
    return version


@dataclass(frozen=True)
class UserChanges:
    role: str | None = None
    dispatch_area: str | None = None
    clear_area: bool = False
    is_active: bool | None = None
    password: str | None = None
    # with a password: the user must replace it at next login (an admin's reset
    # of someone else's password); None keeps the flag as it is
    must_change_password: bool | None = None


def update_user(
    db: Database, user_id: int, changes: UserChanges, *, origin: Origin = LIBRARY, conn: Connection | None = None
) -> User:
    """Apply changes; the last active admin cannot be demoted or deactivated (LastAdmin).
    `changes.must_change_password` true: the user may do nothing but change their
    password (GET /api/me and logout aside) until they do (change_password).

    Logged in the same transaction, a row per change: role_changed,
    area_changed, active_changed (each with from and to), password_reset (a
    password set by someone else) or password_changed (one's own), and
    tokens_revoked when the change ended the user's tokens."""
    current = db.one("get_user", {"id": user_id}, row=User, conn=conn)
    if current is None:
        raise errors.UserNotFound(f"user {user_id} not found")
    role = changes.role or current.role
    area = None if changes.clear_area else (changes.dispatch_area or current.dispatch_area)
    _check_role(role, area)
    if changes.password is not None:
        check_strength(changes.password, current.username)
    params = {
        "id": user_id,
        "role": changes.role,
        "dispatch_area": changes.dispatch_area,
        "clear_area": changes.clear_area,
        "is_active": changes.is_active,
        "must_change_password": changes.must_change_password,
        "password_hash": hash_password(changes.password, current.username) if changes.password is not None else None,
    }
    with db.transaction(conn) as tx:
        done = db.one("update_user", params, row=dict, conn=tx)
        if done is None:
            raise errors.UserNotFound(f"user {user_id} not found")
        for kind, reason, details in _user_changes(done, changes, origin, user_id):
            audit.record(
                db, kind, origin, user_id=user_id, username=done["username"], reason=reason, details=details, conn=tx
            )
        return db.one("get_user", {"id": user_id}, row=User, conn=tx)


def _user_changes(
    done: dict, changes: UserChanges, origin: Origin, user_id: int
) -> list[tuple[str, str | None, dict | None]]:
    """The security log rows (kind, reason, details) of an update_user."""
    rows: list[tuple[str, str | None, dict | None]] = []
    for kind, column in (("role_changed", "role"), ("area_changed", "dispatch_area"), ("active_changed", "is_active")):
        if done[f"old_{column}"] != done[column]:
            rows.append((kind, None, {"from": done[f"old_{column}"], "to": done[column]}))
    if changes.password is not None:
        rows.append(("password_changed" if origin.actor_id == user_id else "password_reset", None, None))
    if done["tokens_revoked"]:  # what ended them: the query's rule, in the same order
        if changes.password is not None:
            reason = rows[-1][0]
        elif done["old_is_active"] and not done["is_active"]:
            reason = "deactivated"
        else:
            reason = "role_changed"
        rows.append(("tokens_revoked", reason, None))
    return rows


def list_users(db: Database, limit: int = 50, cursor: str | None = None) -> Page[User]:
    after = decode_cursor(cursor) if cursor is not None else 0
    rows = db.many("list_users", {"after_id": after, "limit": check_limit(limit) + 1}, row=User, read=True)
    return paginate(rows, limit)


def ensure_admin(db: Database, username: str, password: str) -> User | None:
    """Create `username` as an admin unless it exists (bootstrap); the new user or None."""
    if find_user(db, username) is not None:
        return None
    try:
        return create_user(db, username, password, "admin", origin=Origin(actor="bootstrap"))
    except errors.UsernameTaken:  # created concurrently by another process
        return None


CHANGES_CHANNEL = "tracetrack_user"  # NOTIFYed by the app_user_changed trigger


class CannotListen(RuntimeError):
    """The listener's connection goes through a pooler: LISTEN would hear nothing."""


def watch_changes(
    conninfo: str, stop: threading.Event, on_listening: Callable[[], None] = lambda: None
) -> Iterator[int]:
    """The ids of users whose role, area, active flag or token version changed,
    as each change commits, until `stop` is set. Connects on its own (LISTEN
    holds its connection); a lost connection raises DatabaseUnavailable, a
    pooler in the way (PgBouncer: LISTEN lands on a pooled server connection
    and nothing arrives) CannotListen."""
    with (
        errors.wrap_errors(),
        psycopg.connect(conninfo, autocommit=True, connect_timeout=5, application_name="tracetrack-listener") as conn,
    ):
        if behind_pooler(conn):
            raise CannotListen(
                "its connection goes through a pooler (PgBouncer), where LISTEN hears nothing: "
                "set TRACETRACK_LISTEN_URL to PostgreSQL itself"
            )
        conn.execute(f"LISTEN {CHANGES_CHANNEL}")
        on_listening()
        while not stop.is_set():
            for note in conn.notifies(timeout=1.0):
                if note.payload.isdigit():
                    yield int(note.payload)
