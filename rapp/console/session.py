"""Console sign-in on top of the rApp's guard (`ranomaly_contracts.auth`): the API key (or, with an issuer
configured, an access token) entered once in a form becomes a session cookie, HttpOnly and SameSite=Strict,
Secure when the rApp serves TLS or `console_secure_cookie` says a TLS ingress is in front.

Sessions live in this process's memory (a restart signs everyone out) and expire after `console_session_h`.
Every mutating console request must carry the session's CSRF token in `X-CSRF-Token` (the pages put it in a
meta tag and their script sends it) and, when the browser sends an Origin, come from the rApp's own origin;
the sign-in form checks the origin too. With auth off, every page is open and acts as "anonymous"."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, HTTPException, Request

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import ADMIN, ALL, POLICIES, READ, Principal
from ranomaly_contracts.auth.tokens import InvalidToken

COOKIE = "ranomaly_console"
CSRF_HEADER = "X-CSRF-Token"
FORM_MAX = 8192  # bytes of a sign-in form
NAME_MAX = 80


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who, what they may do, its CSRF token, until when (monotonic seconds)."""

    principal: Principal
    name: str  # the operator's name as given at sign-in (several people may share the API key)
    csrf: str
    expires: float

    @property
    def actor(self) -> str:
        """How the operator's actions are recorded."""
        return f"{self.name} via {self.principal.subject}"

    @property
    def can_act(self) -> bool:
        """Whether the session may acknowledge and judge incidents."""
        return self.principal.holds([POLICIES])

    @property
    def can_admin(self) -> bool:
        """Whether the session may roll models back or forward and start training."""
        return self.principal.holds([ADMIN])


class SignInRequired(HTTPException):
    """No valid session: pages answer with the sign-in page, JSON routes with 401."""

    def __init__(self) -> None:
        super().__init__(401, "sign in first: the console needs a session")


class Sessions:
    """The signed-in sessions and their checks."""

    def __init__(self, guard: Guard, lifetime_s: float, secure: bool) -> None:
        self.guard = guard
        self.lifetime_s = lifetime_s
        self.secure = secure
        self._sessions: dict[str, Session] = {}

    @property
    def open(self) -> bool:
        """Auth is off: no sign-in."""
        return not self.guard.enabled

    async def sign_in(self, credential: str, name: str) -> tuple[str, Session] | None:
        """A new session (its cookie value) for a valid API key or token; None when refused."""
        principal = await self._principal(credential)
        return None if principal is None else self.start(principal, name)

    def start(self, principal: Principal, name: str) -> tuple[str, Session]:
        """A new session (its cookie value) for an authenticated principal."""
        self._drop_expired()
        cookie = secrets.token_urlsafe(32)
        session = Session(principal, name.strip()[:NAME_MAX] or "operator", secrets.token_urlsafe(32),
                          time.monotonic() + self.lifetime_s)  # fmt: skip
        self._sessions[cookie] = session
        return cookie, session

    def sign_out(self, cookie: str | None) -> None:
        """End a session."""
        if cookie is not None:
            self._sessions.pop(cookie, None)

    def current(self, request: Request) -> Session | None:
        """The request's session; with auth off, an anonymous one."""
        if self.open:
            return Session(Principal("anonymous", ALL, "off"), "operator", "", float("inf"))
        session = self._sessions.get(request.cookies.get(COOKIE, ""))
        if session is None or session.expires < time.monotonic():
            return None
        request.state.principal = session.principal  # the audit names who acted
        return session

    async def _principal(self, credential: str) -> Principal | None:
        if self.guard.api_key is not None and self.guard.api_key.matches(credential):
            return Principal("api-key", ALL, "api-key")
        if self.guard.tokens is not None:
            try:
                return await self.guard.tokens.verify(credential)
            except InvalidToken:
                return None
        return None

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for cookie in [c for c, s in self._sessions.items() if s.expires < now]:
            del self._sessions[cookie]


def same_origin(request: Request) -> bool:
    """Whether the browser's Origin (when it sends one) names the host the request was sent to. The scheme is
    not compared: behind a TLS-terminating ingress the page is https while the rApp serves http."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


async def form_fields(request: Request) -> dict[str, str]:
    """A small urlencoded form's fields (the first value of each)."""
    body = (await request.body())[:FORM_MAX].decode(errors="replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


def reader(sessions: Sessions) -> Any:
    """The dependency of a console read: a session holding READ."""

    def check(request: Request) -> Session:
        session = sessions.current(request)
        if session is None or not session.principal.holds([READ]):
            raise SignInRequired()
        return session

    return Depends(check)


def writer(sessions: Sessions, scope: str = POLICIES) -> Any:
    """The dependency of a console change: a session holding `scope` (POLICIES: it may act), its CSRF token,
    the rApp's own origin; the actor's name."""

    signed_in = reader(sessions)

    def check(request: Request, session: Session = signed_in) -> str:
        token = request.headers.get(CSRF_HEADER, "")
        if not sessions.open and not (same_origin(request) and hmac.compare_digest(token, session.csrf)):
            request.state.auth_problem = "console change without the session's CSRF token or from another origin"
            raise HTTPException(403, f"refused: a console change needs the page's {CSRF_HEADER} from its own origin")
        if not session.principal.holds([scope]):
            raise HTTPException(403, "this session may read only" if scope == POLICIES else f"this needs {scope}")
        return session.actor

    return Depends(check)
