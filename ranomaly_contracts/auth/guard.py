"""The FastAPI security dependency: a bearer JWT (`Authorization: Bearer`) or the API key (`X-API-Key`),
then the route's scopes. Both schemes appear in OpenAPI.

A missing or refused credential is a 401 with `WWW-Authenticate: Bearer` (RFC 6750), a missing scope a
403; both raise `AuthError` (an HTTPException: FastAPI answers `{"detail": ...}` unless the app renders it
its own way). The request's `state` keeps the principal, or why its credential was refused, for the audit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from ranomaly_contracts.auth.apikey import ApiKey
from ranomaly_contracts.auth.scopes import ALL, Principal
from ranomaly_contracts.auth.tokens import InvalidToken, TokenVerifier

API_KEY_HEADER = "X-API-Key"
_bearer = HTTPBearer(auto_error=False, description="An OAuth 2.0 access token (JWT) from the configured issuer")
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The app's API key (every scope)")


class AuthError(HTTPException):
    """A refused request: 401 (no valid credential) or 403 (a scope missing), with its challenge."""

    def __init__(self, status: int, detail: str, challenge: str) -> None:
        super().__init__(status, detail, headers={"WWW-Authenticate": challenge})


class Guard:
    """Authenticates a request and checks the route's scopes; `require(scope)` is a route's dependency."""

    def __init__(self, tokens: TokenVerifier | None, api_key: ApiKey | None, enabled: bool = True) -> None:
        self.tokens, self.api_key, self.enabled = tokens, api_key, enabled

    def require(self, scope: str) -> Any:
        """The dependency of a route that needs `scope`."""
        return Security(self, scopes=[scope])

    async def __call__(
        self,
        request: Request,
        security_scopes: SecurityScopes,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        try:
            principal = await self._authenticate(bearer, api_key)
        except AuthError as exc:
            request.state.credential = "token" if bearer else "api-key" if api_key else "none"
            request.state.auth_problem = exc.detail
            raise
        request.state.principal = principal
        if not principal.holds(security_scopes.scopes):
            needed = " ".join(security_scopes.scopes)
            request.state.auth_problem = f"scope {needed} missing"
            raise AuthError(403, f"this request needs the scope {needed}; the credential does not grant it",
                            f'Bearer error="insufficient_scope", scope="{needed}"')  # fmt: skip
        return principal

    async def _authenticate(self, bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> Principal:
        if not self.enabled:
            return Principal("anonymous", ALL, "off")
        if bearer is not None:
            if self.tokens is None:
                raise AuthError(401, f"bearer tokens are not accepted: no issuer is configured; {self._how()}",
                                'Bearer error="invalid_token"')  # fmt: skip
            try:
                return await self.tokens.verify(bearer.credentials)
            except InvalidToken as exc:
                raise AuthError(401, f"bearer token refused: {exc}", 'Bearer error="invalid_token"') from exc
        if api_key is not None:
            if self.api_key is None or not self.api_key.matches(api_key):
                raise AuthError(401, f"API key refused; {self._how()}", 'Bearer realm="ranomaly"')
            return Principal("api-key", ALL, "api-key")
        raise AuthError(401, f"no credential; {self._how()}", 'Bearer realm="ranomaly"')

    def _how(self) -> str:
        ways = (["Authorization: Bearer <token>"] if self.tokens else []) + (
            [f"{API_KEY_HEADER}: <key>"] if self.api_key else []
        )
        return "send " + " or ".join(ways)
