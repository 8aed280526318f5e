"""Signed bearer tokens: verified with one HMAC, no database round trip."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    version: int  # the user's token_version when issued: a logout, a password
    issued_at: int  # change, a deactivation or a role change bumps it
    expires_at: int


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


class TokenSigner:
    def __init__(self, secret: str, ttl_seconds: int):
        if len(secret) < 16:
            raise ValueError("the token secret must have at least 16 characters")
        self._key = hashlib.sha256(b"tracetrack-token:" + secret.encode()).digest()
        self.ttl = ttl_seconds
        # tokens whose signature checked out, with their claims: a scanner sends
        # the same token all shift, and this saves the HMAC and the decoding on
        # every request (the expiry is still checked every time)
        self._verified: dict[str, Claims] = {}

    def _sign(self, payload: bytes) -> bytes:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def issue(self, user_id: int, version: int, now: float | None = None) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        expires = issued + self.ttl
        payload = _b64(orjson.dumps({"u": user_id, "v": version, "i": issued, "e": expires}))
        return (payload + b"." + self._sign(payload)).decode(), expires

    def verify(self, token: str, now: float | None = None) -> Claims | None:
        """The claims of a valid, unexpired token; None otherwise."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check(token)
            if claims is None:
                return None
            if len(self._verified) >= 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at <= (now if now is not None else time.time()):
            return None
        return claims

    def _check(self, token: str) -> Claims | None:
        """The claims of a token signed with this key, expired or not."""
        try:
            payload, _, signature = token.encode("ascii").partition(b".")
        except UnicodeEncodeError:
            return None
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = orjson.loads(_unb64(payload))
            return Claims(int(data["u"]), int(data["v"]), int(data["i"]), int(data["e"]))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
