"""Browser sessions: an API key exchanged for a signed cookie and a CSRF token.

The cookie value is `<session id>.<HMAC-SHA256 of the id>`; the signing key
comes from the secret store. The session row makes sign-out real (a signed
cookie alone could not be revoked). The CSRF token is returned once, kept by the
page, and sent as `X-CSRF-Token` with every unsafe request made with the cookie;
only its hash is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from msgspec import Struct

from codeforge.domain.errors import Forbidden, Unauthenticated
from codeforge.domain.keys import Principal
from codeforge.ports.sessions import Session, SessionStore
from codeforge.ports.stores import ApiKeyStore
from codeforge.services.api_keys import ApiKeys, principal_for_key
from codeforge.services.clock import Clock, utc_now
from codeforge.services.secrets import Secrets

COOKIE_NAME = "codeforge_session"
CSRF_HEADER = "x-csrf-token"


class OpenedSession(Struct, frozen=True):
    cookie: str
    csrf_token: str
    principal: Principal
    expires_at: datetime


class BrowserSessions:
    def __init__(
        self,
        store: SessionStore,
        keys: ApiKeys,
        key_store: ApiKeyStore,
        signing_key: Callable[[], bytes],
        *,
        ttl_seconds: float = 43200.0,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._keys = keys
        self._key_store = key_store
        # Read on every use, so a rotated signing key applies after SIGHUP.
        self._signing_key = signing_key
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    async def open(self, presented_key: str) -> OpenedSession:
        principal = await self._keys.authenticate(presented_key)
        now = self._clock()
        csrf = secrets.token_urlsafe(32)
        session = Session(
            id=uuid.uuid4(),
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            csrf_hash=_sha256(csrf),
            created_at=now,
            expires_at=now + self._ttl,
        )
        await self._store.add(session)
        return OpenedSession(self._sign(session.id), csrf, principal, session.expires_at)

    async def resolve(self, cookie: str) -> tuple[Principal, Session]:
        session_id = self._verify(cookie)
        session = await self._store.get(session_id) if session_id else None
        if session is None or not session.active(self._clock()):
            raise Unauthenticated("the session has expired or was signed out; sign in again")
        principal = await principal_for_key(self._key_store, session.tenant_id, session.key_id)
        return principal, session

    @staticmethod
    def check_csrf(session: Session, token: str | None) -> None:
        if not token or not hmac.compare_digest(session.csrf_hash, _sha256(token)):
            raise Forbidden(
                "a request made with the session cookie must send its X-CSRF-Token header"
            )

    async def close(self, cookie: str) -> None:
        session_id = self._verify(cookie)
        if session_id:
            await self._store.revoke(session_id, self._clock())

    def _sign(self, session_id: uuid.UUID) -> str:
        mac = hmac.new(self._signing_key(), session_id.bytes, hashlib.sha256).digest()
        return f"{session_id.hex}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def _verify(self, cookie: str) -> uuid.UUID | None:
        raw_id, _, _ = cookie.partition(".")
        try:
            session_id = uuid.UUID(hex=raw_id)
        except ValueError:
            return None
        return session_id if hmac.compare_digest(self._sign(session_id), cookie) else None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# The name of the secret, not its value.
SIGNING_KEY_SECRET = "SESSION_SIGNING_KEY"  # noqa: S105


def signing_key_from(secrets_: Secrets) -> Callable[[], bytes]:
    """The session signing key from the secret store, created there on first use.

    Kept as a secret (not derived from config) so every process of an install
    signs alike, and rotating it (SIGHUP) signs everyone out.
    """
    if secrets_.get(SIGNING_KEY_SECRET) is None:
        secrets_.set(SIGNING_KEY_SECRET, secrets.token_urlsafe(48))

    def current() -> bytes:
        return secrets_.require(SIGNING_KEY_SECRET).encode()

    return current
