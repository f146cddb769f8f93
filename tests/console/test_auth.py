"""Signing in: HS256 tokens against the project's secret, RS256 tokens against a JWKS
served by a real HTTP server on loopback, the static admin token, and what is refused."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.console.support import ADMIN_TOKEN, JWT_SECRET, token_for
from workers.console.auth import AuthError, TokenVerifier

SUB = str(uuid.uuid4())
CLAIMS: dict[str, Any] = {
    "aud": "authenticated",
    "sub": SUB,
    "email": "op@example.test",
    "role": "authenticated",
    "tenant_roles": {str(uuid.uuid4()): "operator"},
}


def verifier(**kwargs: Any) -> TokenVerifier:
    return TokenVerifier(
        **{"jwt_secret": JWT_SECRET, "admin_token": ADMIN_TOKEN, **kwargs}  # type: ignore[arg-type]
    )


def test_an_hs256_token_signs_in_as_its_user_with_its_tenant_roles() -> None:
    ident = verifier().sign_in(token_for(CLAIMS))
    assert (ident.role, ident.name, ident.sub) == ("authenticated", "op@example.test", SUB)
    assert ident.tenant_roles == CLAIMS["tenant_roles"]
    assert not ident.is_admin
    assert ident.claims is not None
    assert ident.claims["sub"] == SUB


def test_the_admin_token_signs_in_as_service_role() -> None:
    ident = verifier().sign_in(f"  {ADMIN_TOKEN}\n")
    assert ident.is_admin
    assert ident.role == "service_role"
    assert ident.claims is None


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: token_for(CLAIMS, exp=int(time.time()) - 3600), "has expired"),
        (lambda: token_for(CLAIMS, aud="somebody-else"), "Audience"),
        (lambda: token_for(CLAIMS, secret="x" * 40), "Signature verification failed"),
        (lambda: token_for(CLAIMS, role="anon"), "role 'anon' cannot sign in"),
        (lambda: token_for(CLAIMS, role="service_role"), "role 'service_role' cannot sign in"),
        (lambda: token_for(CLAIMS, sub="not-a-user"), "sub is not a user id"),
        (
            lambda: jwt.encode({**CLAIMS, "exp": time.time() + 60}, "k" * 64, algorithm="HS384"),
            "HS384",
        ),
        (lambda: "not.a.token", "not a valid token"),
        (lambda: ADMIN_TOKEN + "x", "not a valid token"),
        (lambda: "   ", "paste an access token"),
    ],
)
def test_tokens_that_do_not_sign_in_say_why(token: Any, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        verifier().sign_in(token())


def test_without_a_secret_or_jwks_only_the_admin_token_signs_in() -> None:
    only_admin = TokenVerifier(admin_token=ADMIN_TOKEN)
    assert not only_admin.accepts_tokens
    assert only_admin.sign_in(ADMIN_TOKEN).is_admin
    with pytest.raises(AuthError, match="no JWT secret or JWKS"):
        only_admin.sign_in(token_for(CLAIMS))
    nobody = TokenVerifier(jwt_secret=JWT_SECRET)
    with pytest.raises(AuthError, match="not a valid token"):
        nobody.sign_in(ADMIN_TOKEN)


class _Keys:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "key-1"
        self.requests = 0

    def jwks(self) -> bytes:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, alg="RS256", use="sig")
        return json.dumps({"keys": [jwk]}).encode()

    def token(self, kid: str | None = None, **changes: Any) -> str:
        body = {**CLAIMS, "exp": int(time.time()) + 600, **changes}
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": kid or self.kid})


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, _Keys]]:
    """A JWKS endpoint on 127.0.0.1, like Supabase's /auth/v1/.well-known/jwks.json."""
    keys = _Keys()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            keys.requests += 1
            if self.path != "/auth/v1/.well-known/jwks.json":
                self.send_error(404)
                return
            body = keys.jwks()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/auth/v1/.well-known/jwks.json", keys
    finally:
        server.shutdown()
        server.server_close()


def test_an_rs256_token_is_checked_against_the_projects_jwks(
    jwks_server: tuple[str, _Keys],
) -> None:
    url, keys = jwks_server
    check = TokenVerifier(jwks_url=url)
    ident = check.sign_in(keys.token())
    assert (ident.role, ident.sub) == ("authenticated", SUB)
    check.sign_in(keys.token())
    assert keys.requests == 1  # the keys are cached
    with pytest.raises(AuthError, match="signing key could not be found"):
        check.sign_in(keys.token(kid="key-2"))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {**CLAIMS, "exp": int(time.time()) + 600},
        other,
        algorithm="RS256",
        headers={"kid": "key-1"},
    )
    with pytest.raises(AuthError, match="Signature verification failed"):
        check.sign_in(forged)
    with pytest.raises(AuthError, match="has expired"):
        check.sign_in(keys.token(exp=int(time.time()) - 600))
    # An HS256 token is no use where only the JWKS is configured (no algorithm confusion).
    with pytest.raises(AuthError, match="HS256 are not accepted"):
        check.sign_in(token_for(CLAIMS))


def test_an_unreachable_jwks_refuses_sign_in_in_one_line() -> None:
    check = TokenVerifier(jwks_url="http://127.0.0.1:9/jwks.json")
    keys = _Keys()
    with pytest.raises(AuthError, match="signing key could not be found") as info:
        check.sign_in(keys.token())
    assert "\n" not in str(info.value)
