"""Who is signing in: a Supabase access token, or the static admin token.

An access token is verified with PyJWT: HS256 against the project's JWT secret
(``DRAGONFLY_CONSOLE_JWT_SECRET`` / ``SUPABASE_JWT_SECRET``), or RS256/ES256 against the
project's JWKS (``DRAGONFLY_CONSOLE_JWKS_URL``, keys fetched and cached by ``PyJWKClient``).
It must be unexpired, carry the configured audience (``authenticated``), a uuid ``sub``
and a role a person signs in with (``authenticated``, or ``enforcement_operator``). The
console then runs that person's reads as PostgREST would: ``set local role <role>`` and
``request.jwt.claims`` in each transaction (:mod:`workers.console.db`), so row-level
security and ``tenancy.caller_tenants()`` decide what they see.

The static admin token (``DRAGONFLY_CONSOLE_ADMIN_TOKEN``) signs in as ``service_role``:
every tenant, and the jobs that name none.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

import jwt

USER_ROLES = frozenset({"authenticated", "enforcement_operator"})
"""JWT roles a person may sign in to the console with (the database role set per request)."""

ADMIN_ROLE = "service_role"
"""The database role of the static admin."""

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA")


class AuthError(Exception):
    """A token that does not sign in; the message says why, in one line."""


@dataclass(frozen=True)
class Identity:
    """A signed-in operator: the database role their requests run as, and their claims."""

    role: str
    name: str
    claims: dict[str, Any] | None = None
    sub: str | None = None
    tenant_roles: dict[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


def fingerprint(secret: str) -> str:
    """A short digest of a secret, to tell in a session which admin token signed it in."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


class TokenVerifier:
    """Verifies access tokens and the admin token, as configured."""

    def __init__(
        self,
        *,
        jwt_secret: str | None = None,
        jwks_url: str | None = None,
        audience: str = "authenticated",
        admin_token: str | None = None,
        leeway_seconds: int = 30,
    ) -> None:
        self._secret = jwt_secret or None
        self._audience = audience
        self._admin_token = admin_token or None
        self._leeway = leeway_seconds
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=10)
            if jwks_url
            else None
        )

    @property
    def accepts_tokens(self) -> bool:
        """Whether access tokens can sign in at all (a secret or a JWKS is configured)."""
        return self._secret is not None or self._jwks is not None

    @property
    def accepts_admin(self) -> bool:
        return self._admin_token is not None

    @property
    def admin_fingerprint(self) -> str | None:
        return fingerprint(self._admin_token) if self._admin_token else None

    def sign_in(self, token: str) -> Identity:
        """The identity a pasted token signs in as; AuthError when it does not."""
        token = token.strip()
        if not token:
            raise AuthError("paste an access token or the admin token")
        if self._admin_token is not None and hmac.compare_digest(
            token.encode(), self._admin_token.encode()
        ):
            return self.admin()
        if token.count(".") != 2:
            raise AuthError("not a valid token")
        return self.verify(token)

    def admin(self) -> Identity:
        return Identity(role=ADMIN_ROLE, name="admin (static token)")

    def verify(self, token: str) -> Identity:
        """A verified access token's identity; AuthError when it is not one."""
        if not self.accepts_tokens:
            raise AuthError("access tokens are not accepted: no JWT secret or JWKS is configured")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("not a valid token") from None
        alg = str(header.get("alg", ""))
        try:
            if alg == "HS256" and self._secret is not None:
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience=self._audience,
                    leeway=self._leeway,
                    options={"require": ["exp", "sub"]},
                )
            elif alg in _ASYMMETRIC and self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token)
                claims = jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=self._audience,
                    leeway=self._leeway,
                    options={"require": ["exp", "sub"]},
                )
            else:
                raise AuthError(f"tokens signed with {alg or 'no algorithm'} are not accepted")
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired: sign in again for a fresh one") from None
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"the signing key could not be found: {exc}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token was refused: {exc}") from None
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        role = claims.get("role")
        if role not in USER_ROLES:
            raise AuthError(f"a token for role {role!r} cannot sign in to the console")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not _UUID.match(sub):
            raise AuthError("the token's sub is not a user id")
        roles = claims.get("tenant_roles")
        tenant_roles = {str(k): str(v) for k, v in roles.items()} if isinstance(roles, dict) else {}
        email = claims.get("email")
        name = email if isinstance(email, str) and email.strip() else sub
        return Identity(
            role=str(role), name=name, claims=claims, sub=sub, tenant_roles=tenant_roles
        )
