"""Users: creation, login with lockout, updates, listing."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import Connection

from . import errors
from .cursor import check_limit, decode_cursor, paginate
from .database import Database
from .models import Page, Principal, User
from .passwords import check_strength, dummy_hash, hash_password, needs_rehash, verify_password

ROLES = ("admin", "biller", "dispatcher")
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{3,64}$"  # the app_user_username_check constraint
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60


def _check_role(role: str, dispatch_area: str | None) -> None:
    if role not in ROLES:
        raise errors.ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "dispatcher" and not dispatch_area:
        raise errors.DispatchAreaRequired("a dispatcher needs a dispatch area", field="dispatch_area")


def create_user(db: Database, username: str, password: str, role: str,
                dispatch_area: str | None = None, *, conn: Connection | None = None) -> User:
    """Create a user; dispatchers need a dispatch area. Raises UsernameTaken."""
    _check_role(role, dispatch_area)
    return db.one("create_user", {
        "username": username, "password_hash": hash_password(password),
        "role": role, "dispatch_area": dispatch_area,
    }, row=User, conn=conn)


def get_user(db: Database, user_id: int) -> User:
    user = db.one("get_user", {"id": user_id}, row=User)
    if user is None:
        raise errors.UserNotFound(f"user {user_id} not found")
    return user


def find_user(db: Database, username: str) -> User | None:
    return db.one("get_user_by_username", {"username": username}, row=User)


def get_principal(db: Database, user_id: int) -> Principal | None:
    """What a token check needs of a user, or None when the user is gone or deactivated."""
    row = db.one("get_principal", {"id": user_id}, row=dict)
    if row is None or not row["is_active"]:
        return None
    return Principal(row["id"], row["username"], row["role"], row["dispatch_area"], row["tokens_valid_after"])


def count_active_admins(db: Database) -> int:
    return db.scalar("count_active_admins")


def authenticate(db: Database, username: str, password: str) -> User:
    """Check a password. Five failures in a row lock the account for 15 minutes.

    Raises InvalidCredentials (unknown user, wrong password, inactive user) or
    AccountLocked; the error never tells which names exist.
    """
    login = db.one("get_login", {"username": username}, row=dict)
    if login is None:
        verify_password(dummy_hash(), password)
        raise errors.InvalidCredentials("wrong username or password")
    if login["locked"]:
        raise errors.AccountLocked(
            f"too many failed logins: locked until {login['locked_until'].isoformat(timespec='seconds')}")
    if not verify_password(login["password_hash"], password):
        locked = db.scalar("login_failed", {
            "id": login["id"], "max_failures": MAX_FAILURES, "lock_seconds": LOCK_SECONDS})
        if locked:
            raise errors.AccountLocked("too many failed logins: locked for 15 minutes")
        raise errors.InvalidCredentials("wrong username or password")
    if not login["is_active"]:
        raise errors.InvalidCredentials("this account is deactivated")
    rehash = hash_password(password) if needs_rehash(login["password_hash"]) else None
    return db.one("login_succeeded", {"id": login["id"], "password_hash": rehash}, row=User)


@dataclass(frozen=True)
class UserChanges:
    role: str | None = None
    dispatch_area: str | None = None
    clear_area: bool = False
    is_active: bool | None = None
    password: str | None = None


def update_user(db: Database, user_id: int, changes: UserChanges, *,
                conn: Connection | None = None) -> User:
    """Apply changes; the last active admin cannot be demoted or deactivated (LastAdmin)."""
    current = db.one("get_user", {"id": user_id}, row=User, conn=conn)
    if current is None:
        raise errors.UserNotFound(f"user {user_id} not found")
    role = changes.role or current.role
    area = None if changes.clear_area else (changes.dispatch_area or current.dispatch_area)
    _check_role(role, area)
    if changes.password is not None:
        check_strength(changes.password)
    user = db.one("update_user", {
        "id": user_id, "role": changes.role, "dispatch_area": changes.dispatch_area,
        "clear_area": changes.clear_area, "is_active": changes.is_active,
        "password_hash": hash_password(changes.password) if changes.password is not None else None,
    }, row=User, conn=conn)
    if user is None:
        raise errors.UserNotFound(f"user {user_id} not found")
    return user


def list_users(db: Database, limit: int = 50, cursor: str | None = None) -> Page[User]:
    after = decode_cursor(cursor) if cursor is not None else 0
    rows = db.many("list_users", {"after_id": after, "limit": check_limit(limit) + 1}, row=User, read=True)
    return paginate(rows, limit)


def ensure_admin(db: Database, username: str, password: str) -> User | None:
    """Create `username` as an admin unless it exists (bootstrap); the new user or None."""
    if find_user(db, username) is not None:
        return None
    try:
        return create_user(db, username, password, "admin")
    except errors.UsernameTaken:  # created concurrently by another process
        return None
