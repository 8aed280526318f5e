"""argon2id hashing (argon2-cffi) with the library's password rules.

A password is 12-1,024 characters, not only whitespace, not the username,
not one of the 30,000 most common passwords (the list zxcvbn ships), and not
one zxcvbn rates too easy to guess (a score under 2 of 4: repeats,
sequences, keyboard walks, a common word with digits around it).
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_SCORE = 2
# argon2id, 64 MiB, 3 passes, one lane: the memory and time argon2-cffi's
# defaults use, but on one core (~0.17 s here) instead of four lanes that take
# every core of a small server for ~0.12 s, starving the scans during a login
# burst (bench/RESULTS.md). Older hashes are upgraded at their next login.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_strength(password: object, username: str | None = None) -> None:
    """WeakPassword (field password) unless `password` follows the rules above."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters", field="password")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_LENGTH} characters", field="password")
    if not password.strip():
        raise WeakPassword("a password cannot be only whitespace", field="password")
    if username and password.strip().lower() == username.strip().lower():
        raise WeakPassword("a password cannot be the username", field="password")
    if password.lower() in _common():
        raise WeakPassword("this is one of the most common passwords: choose another", field="password")
    from zxcvbn import zxcvbn

    # zxcvbn refuses more than 72 characters (its cost grows fast with length): it
    # rates the first 64, and a long passphrase is strong well before that
    if zxcvbn(password[:64], user_inputs=[username] if username else [])["score"] < MIN_SCORE:
        raise WeakPassword(
            "this password is too easy to guess (a repeat, a sequence or a common word): try a few unrelated words",
            field="password",
        )


def hash_password(password: str, username: str | None = None) -> str:
    check_strength(password, username)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def rehash(password: str) -> str:
    """A fresh hash of a password already accepted (at login): no rules, which
    a password set before they tightened need not meet."""
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@cache
def dummy_hash() -> str:
    """A hash to verify against when there is no user to check, so every
    refused login costs one password check, like a real one."""
    return _hasher.hash("tracetrack-no-such-user")
