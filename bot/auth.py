"""Web sign-in: local accounts (username and password), one-time sign-in links, and an OpenID Connect
provider (authorization code flow with PKCE, state and nonce, the ID token checked against the
provider's published keys). A signed, HttpOnly session cookie remembers who signed in.

Who people are is not decided here: a `Directory` (the state package's people table) checks passwords,
records OpenID sign-ins and redeems links. This module only carries the answer from one request to the
next, and refuses forms posted without the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote, urlsplit

import anyio
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.config import Settings
from state import Person, Principal

log = logging.getLogger(__name__)

SESSION_COOKIE = "ragbot_session"
OIDC_COOKIE = "ragbot_oidc"  # the sign-in started at the provider: state, nonce, PKCE verifier
SECURE_PREFIX = "__Host-"  # over https: no other host (a sibling subdomain) can set or shadow the cookie
CSRF_FIELD = "csrf"  # form field
CSRF_HEADER = "x-csrf-token"  # or header, for requests sent by the page's script
OIDC_PENDING_S = 600  # time to finish signing in at the provider
SCOPE_KEY = "ragbot.auth"
# Failed password sign-ins allowed in FAILURE_WINDOW_S before sign-in is refused for a while: per
# username from one address, per address, and per username from anywhere (higher, so that a stranger
# cannot lock someone out with a few tries, while a guesser spread over many addresses is still slowed).
FAILURES_PER_NAME_AND_CLIENT = 10
FAILURES_PER_CLIENT = 50
FAILURES_PER_NAME = 100
FAILURE_WINDOW_S = 900.0
WRONG_PASSWORD = "Wrong username or password."
# Pages that are doors of their own, with their own credentials: never sent to the sign-in page.
OWN_CREDENTIALS = ("/auth/", "/healthz", "/widget", "/v1/", "/slack/", "/discord/")


class Directory(Protocol):
    """The people sign-in is checked against (`State.people` satisfies it). Unknown or wrong: None,
    with no difference a caller could time or read."""

    def check_password(self, username: str, password: str) -> Person | None: ...

    def from_oidc(
        self, issuer: str, subject: str, *, email: str | None, name: str | None, groups: Iterable[str]
    ) -> Person: ...

    def redeem_link(self, token: str) -> Person | None: ...

    def get(self, person_id: int) -> Person | None: ...


@dataclass(frozen=True)
class Session:
    """What the signed cookie carries. `sid` names this sign-in (logout revokes it); `csrf` is the
    token every form posted under this session must repeat; `issued_at` bounds its life."""

    sid: str
    csrf: str
    person_id: int | None
    issued_at: float

    @classmethod
    def fresh(cls, person_id: int | None, now: float) -> Session:
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(24), person_id, now)


class SessionCodec:
    """Signs sessions into cookie values and reads them back: a value altered, signed with another
    key, or older than `max_age_s` (by the signed issue time, not the browser's expiry) reads as None."""

    def __init__(self, secret: str, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s, self.clock = max_age_s, clock
        kwargs: dict[str, Any] = {"digest_method": hashlib.sha256}
        self.sessions = URLSafeTimedSerializer(secret, salt="ragbot.session", signer_kwargs=kwargs)
        self.pending = URLSafeTimedSerializer(secret, salt="ragbot.oidc", signer_kwargs=kwargs)

    def dump(self, session: Session) -> str:
        return self.sessions.dumps([session.sid, session.csrf, session.person_id, session.issued_at])

    def load(self, value: str) -> Session | None:
        try:
            sid, csrf, person_id, issued_at = self.sessions.loads(value, max_age=int(self.max_age_s))
        except (BadData, ValueError, TypeError):
            return None
        fields_ok = isinstance(sid, str) and isinstance(csrf, str) and isinstance(issued_at, int | float)
        if not fields_ok or not (person_id is None or isinstance(person_id, int)):
            return None
        if not 0 <= self.clock() - issued_at <= self.max_age_s:
            return None
        return Session(sid, csrf, person_id, float(issued_at))

    def dump_pending(self, pending: dict[str, str]) -> str:
        return self.pending.dumps(pending)

    def load_pending(self, value: str) -> dict[str, str] | None:
        try:
            data = self.pending.loads(value, max_age=OIDC_PENDING_S)
        except (BadData, ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return None
        return data


def session_secret(settings: Settings) -> str:
    """RAGBOT_SESSION_SECRET, or a random key kept in the data directory (created once, mode 0600),
    so sessions outlive a restart without the operator having to choose a key."""
    if settings.session_secret:
        return settings.session_secret
    path = settings.data_dir / "session.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return _read_key(path)


def _read_key(path: Path) -> str:
    for _ in range(50):  # another process may be between creating the file and writing it
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it, or set RAGBOT_SESSION_SECRET")


class Throttle:
    """Counts failed sign-ins per key over a sliding window: past the limit, sign-in is refused
    without asking the directory (a password guesser gets a few tries, not thousands)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self.failures: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        times = self.failures.setdefault(key, deque())
        while times and self.clock() - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, key: str) -> bool:
        with self.lock:
            return len(self._recent(key)) >= self.limit

    def fail(self, key: str) -> None:
        with self.lock:
            self._recent(key).append(self.clock())
            if len(self.failures) > 100_000:  # bounded memory: forget keys with no recent failure
                for stale in [k for k, v in self.failures.items() if not v]:
                    del self.failures[stale]


class OidcClient:
    """One OpenID provider, through Authlib: discovery, the authorization URL (PKCE S256, state,
    nonce), the code exchange, the ID token checked against the provider's JWKS, and userinfo."""

    def __init__(self, issuer: str, client_id: str, client_secret: str | None, scopes: str) -> None:
        from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
        from authlib.integrations.base_client.sync_openid import OpenIDMixin
        from authlib.integrations.httpx_client import OAuth2Client

        class _Framework:  # Authlib's hook for storing refreshed tokens: sign-in keeps none
            def update_token(self, *args: object, **kwargs: object) -> None:
                pass

        class _App(OpenIDMixin, OAuth2Mixin, BaseApp):
            client_cls = OAuth2Client

        self.issuer = issuer
        self.app = _App(
            _Framework(),
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": scopes, "code_challenge_method": "S256", "timeout": 15.0},
        )

    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self.app.load_server_metadata()
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            # a discovery document naming another issuer: its tokens would not be this provider's
            self.app.server_metadata.clear()
            raise ValueError(f"discovery at {self.issuer} names issuer {metadata.get('issuer')!r}")
        return metadata

    def start(self, redirect_uri: str) -> dict[str, str]:
        """The provider's authorization URL, and what the callback must check: state, nonce, verifier."""
        self.metadata()
        made = self.app.create_authorization_url(redirect_uri)
        return {k: made[k] for k in ("url", "state", "nonce", "code_verifier")}

    def finish(self, code: str, pending: Mapping[str, str]) -> dict[str, Any]:
        """Exchange the code (with the PKCE verifier) and return the ID token's validated claims,
        completed by userinfo for the same subject."""
        issuer = self.metadata()["issuer"]
        token = self.app.fetch_access_token(
            pending["redirect_uri"], code=code, code_verifier=pending["code_verifier"]
        )
        if "id_token" not in token:
            raise ValueError("the provider returned no ID token")
        claims = dict(
            self.app.parse_id_token(
                token, nonce=pending["nonce"], claims_options={"iss": {"values": [issuer]}}
            )
        )
        if self.metadata().get("userinfo_endpoint") and token.get("access_token"):
            info = dict(self.app.userinfo(token=token))
            if info.get("sub") != claims.get("sub"):
                raise ValueError("userinfo names another subject than the ID token")
            claims = {**info, **claims}
        return claims


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (Keycloak puts roles under realm_access.roles)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return claims.get(path)
        value = value[part]
    return value


def groups_of(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(g for g in value.replace(",", " ").split() if g)
    if isinstance(value, list | tuple):
        return frozenset(str(g) for g in value if isinstance(g, str | int) and str(g))
    return frozenset()


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (no //host, no scheme, no backslash)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value if not urlsplit(value).netloc else "/"


class WebAuth:
    """Sessions for the web doors, over one Directory. One per app; `AuthContext` makes it reachable
    from every request (Gradio's mounted app included), and `auth_router` serves its pages."""

    def __init__(
        self, settings: Settings, directory: Directory, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings, self.directory, self.clock = settings, directory, clock
        self.max_age_s = settings.session_hours * 3600
        self.codec = SessionCodec(session_secret(settings), self.max_age_s, clock)
        self.oidc = (
            OidcClient(
                settings.oidc_issuer,
                settings.oidc_client_id,
                settings.oidc_client_secret,
                settings.oidc_scopes,
            )
            if settings.oidc_issuer and settings.oidc_client_id
            else None
        )
        self.revoked: dict[str, float] = {}  # sid -> when its cookie would have expired anyway
        self.lock = threading.Lock()
        self.throttles = (
            Throttle(FAILURES_PER_NAME_AND_CLIENT, FAILURE_WINDOW_S),
            Throttle(FAILURES_PER_CLIENT, FAILURE_WINDOW_S),
            Throttle(FAILURES_PER_NAME, FAILURE_WINDOW_S),
        )

    # --- cookies -----------------------------------------------------------------------------
    def secure(self, request: HTTPConnection) -> bool:
        return request.url.scheme == "https" or (self.settings.public_url or "").startswith("https://")

    def cookie_name(self, request: HTTPConnection, base: str = SESSION_COOKIE) -> str:
        return SECURE_PREFIX + base if self.secure(request) else base

    def _set_cookie(self, response: Response, request: Request, base: str, value: str, max_age: int) -> None:
        response.set_cookie(
            self.cookie_name(request, base),
            value,
            max_age=max_age,
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="lax",
        )

    def _clear_cookie(self, response: Response, request: Request, base: str) -> None:
        secure = self.secure(request)
        response.delete_cookie(
            self.cookie_name(request, base), path="/", secure=secure, httponly=True, samesite="lax"
        )

    # --- sessions ----------------------------------------------------------------------------
    def session(self, request: HTTPConnection) -> Session | None:
        """The request's valid session, if any (read once per request)."""
        if "ragbot.session" not in request.scope:
            value = request.cookies.get(self.cookie_name(request), "")
            session = self.codec.load(value) if value else None
            if session is not None and self.is_revoked(session.sid):
                session = None
            request.scope["ragbot.session"] = session
        found: Session | None = request.scope["ragbot.session"]
        return found

    def person(self, request: HTTPConnection) -> Person | None:
        """The signed-in person, as the directory knows them now (removed: signed out)."""
        if "ragbot.person" not in request.scope:
            session = self.session(request)
            person = None
            if session is not None and session.person_id is not None:
                person = self.directory.get(session.person_id)
            request.scope["ragbot.person"] = person
        found: Person | None = request.scope["ragbot.person"]
        return found

    def principal(self, request: HTTPConnection) -> Principal:
        person = self.person(request)
        return Principal.user(person) if person is not None else Principal.anonymous()

    def with_session(self, request: Request, make: Callable[[Session], Response]) -> Response:
        """`make`'s response, given the request's session, or a new anonymous one that the response
        then sets (so a form can carry a CSRF token before anyone signs in)."""
        session = self.session(request)
        if session is not None:
            return make(session)
        session = Session.fresh(None, self.clock())
        response = make(session)
        self.write(request, response, session)
        return response

    def write(self, request: Request, response: Response, session: Session) -> None:
        self._set_cookie(response, request, SESSION_COOKIE, self.codec.dump(session), int(self.max_age_s))
        request.scope["ragbot.session"] = session
        request.scope.pop("ragbot.person", None)

    def sign_in(self, request: Request, response: Response, person: Person) -> Session:
        """A new session (new id, new CSRF token) for `person`: a session id planted before sign-in
        never becomes a signed-in one."""
        old = self.session(request)
        if old is not None and old.person_id is not None:
            self.revoke(old)  # someone else signing in on the same browser
        session = Session.fresh(person.id, self.clock())
        self.write(request, response, session)
        log.info("person %s signed in", person.id)
        return session

    def sign_out(self, request: Request, response: Response) -> None:
        session = self.session(request)
        if session is not None:
            self.revoke(session)
        self._clear_cookie(response, request, SESSION_COOKIE)
        request.scope["ragbot.session"] = None
        request.scope["ragbot.person"] = None

    def revoke(self, session: Session) -> None:
        """A signed cookie stays valid until it expires: logout remembers its id until then (in this
        process; a restart forgets, bounded by session_hours)."""
        now = self.clock()
        with self.lock:
            self.revoked[session.sid] = session.issued_at + self.max_age_s
            if len(self.revoked) > 10_000:
                self.revoked = {sid: end for sid, end in self.revoked.items() if end > now}

    def is_revoked(self, sid: str) -> bool:
        with self.lock:
            return sid in self.revoked

    def csrf_ok(self, request: Request, given: str | None) -> bool:
        """The token posted must be this session's (synchronizer token in the signed cookie), and a
        browser-sent Origin, when it names one, must be this site."""
        session = self.session(request)
        if session is None or not given:
            return False
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc.lower() not in self._own_hosts(request):
            return False
        return hmac.compare_digest(given.encode(), session.csrf.encode())

    def _own_hosts(self, request: Request) -> set[str]:
        """This site as a browser names it: the public address, and the one this request reached."""
        hosts = {request.headers.get("host", "").lower()}
        if self.settings.public_url:
            hosts.add(urlsplit(self.settings.public_url).netloc.lower())
        return hosts

    def callback_url(self, request: Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/") + "/auth/oidc/callback"
        return str(request.url_for("oidc_callback"))

    # --- pending OpenID sign-ins -------------------------------------------------------------
    def write_pending(self, request: Request, response: Response, pending: dict[str, str]) -> None:
        self._set_cookie(response, request, OIDC_COOKIE, self.codec.dump_pending(pending), OIDC_PENDING_S)

    def take_pending(self, request: Request, response: Response) -> dict[str, str] | None:
        """The sign-in this browser started (one use: the cookie is cleared)."""
        value = request.cookies.get(self.cookie_name(request, OIDC_COOKIE), "")
        self._clear_cookie(response, request, OIDC_COOKIE)
        return self.codec.load_pending(value) if value else None


class AuthContext:
    """ASGI middleware: makes the WebAuth reachable from any request below it (mounted apps too),
    and, with anonymous_read off, sends people who have not signed in to the sign-in page."""

    def __init__(self, app: ASGIApp, auth: WebAuth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[SCOPE_KEY] = self.auth
            path: str = scope["path"]
            gated = not self.auth.settings.anonymous_read and not (
                path.startswith(OWN_CREDENTIALS) or path in ("/auth", "/healthz", "/widget")
            )
            if gated:
                person = await anyio.to_thread.run_sync(self.auth.person, HTTPConnection(scope))
                if person is None:
                    if scope["type"] == "websocket":
                        await send({"type": "websocket.close", "code": 1008})
                    else:
                        await _ask_to_sign_in(Request(scope))(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _ask_to_sign_in(request: Request) -> Response:
    if request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", ""):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/auth/login?next={quote(target, safe='')}", status_code=303)
    return JSONResponse({"detail": "Sign in first: /auth/login"}, status_code=401)


def web_auth(request: HTTPConnection) -> WebAuth | None:
    found = request.scope.get(SCOPE_KEY)
    return found if isinstance(found, WebAuth) else None


def current_principal(request: HTTPConnection) -> Principal:
    """Who sent this web request: the signed-in person, else anonymous (also when sign-in is not
    set up)."""
    auth = web_auth(request)
    return auth.principal(request) if auth is not None else Principal.anonymous()


def current_person(request: HTTPConnection) -> Person | None:
    auth = web_auth(request)
    return auth.person(request) if auth is not None else None


def require_person(request: Request) -> Person:
    """FastAPI dependency for routes only a signed-in person may use."""
    person = current_person(request)
    if person is None:
        raise HTTPException(401, "Sign in first: /auth/login")
    return person


# --- pages ----------------------------------------------------------------------------------
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
NO_STORE = {"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP}


def login_page(csrf: str, next_path: str, oidc_label: str | None, message: str = "") -> str:
    """The form posts to this page's own origin (CSP form-action 'self'). Signing in with the
    provider is a link, not a form: browsers apply form-action to a form's redirects as well, and
    the provider is another origin."""
    e = html.escape
    oidc = (
        f'<p class="alt"><a href="/auth/oidc/start?next={e(quote(next_path, safe=""))}">'
        f"Sign in with {e(oidc_label)}</a></p>"
        if oidc_label
        else ""
    )
    error = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in · ragbot</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1rem}}.error{{color:#b00020}}.alt{{margin-top:1.5rem}}</style>
</head><body><h1>Sign in</h1>{error}
<form method="post" action="/auth/login">
<input type="hidden" name="{CSRF_FIELD}" value="{e(csrf)}"><input type="hidden" name="next" value="{e(next_path)}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>{oidc}
</body></html>"""


def message_page(title: str, text: str, status: int) -> HTMLResponse:
    e = html.escape
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} · ragbot</title></head>'
        f'<body><h1>{e(title)}</h1><p>{e(text)}</p><p><a href="/auth/login">Sign in</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


def auth_router(auth: WebAuth) -> APIRouter:
    """/auth/login (form and post), /auth/oidc/start and /callback, /auth/link/{token},
    /auth/logout, /auth/me. Mount it together with `AuthContext(app, auth)`."""
    router = APIRouter(prefix="/auth")
    s = auth.settings
    oidc_label = urlsplit(s.oidc_issuer).netloc if auth.oidc and s.oidc_issuer else None

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        def page(session: Session) -> Response:
            return HTMLResponse(login_page(session.csrf, safe_next(next), oidc_label), headers=NO_STORE)

        return auth.with_session(request, page)

    @router.post("/login", response_model=None)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=1024)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        if not auth.csrf_ok(request, csrf):
            return message_page("Sign-in form expired", "Reload the sign-in page and try again.", 403)
        session = auth.session(request)
        assert session is not None  # csrf_ok found one
        name, client = username.strip().lower(), _client(request)
        keys = (f"{name}\n{client}", client, name)  # in the order of auth.throttles
        if any(t.blocked(k) for t, k in zip(auth.throttles, keys, strict=True)):
            page = login_page(
                session.csrf, safe_next(next), oidc_label, "Too many failed sign-ins: wait a while."
            )
            return HTMLResponse(page, status_code=429, headers={**NO_STORE, "Retry-After": "900"})
        person = auth.directory.check_password(username.strip(), password) if username.strip() else None
        if person is None:
            for throttle, key in zip(auth.throttles, keys, strict=True):
                throttle.fail(key)
            page = login_page(session.csrf, safe_next(next), oidc_label, WRONG_PASSWORD)
            return HTMLResponse(page, status_code=401, headers=NO_STORE)
        response = RedirectResponse(safe_next(next), status_code=303, headers={"Cache-Control": "no-store"})
        auth.sign_in(request, response, person)
        return response

    @router.get("/oidc/start", response_model=None)
    def oidc_start(request: Request, next: str = "/") -> Response:
        if auth.oidc is None:
            raise HTTPException(404, "OpenID Connect sign-in is not set up.")
        redirect_uri = auth.callback_url(request)
        try:
            made = auth.oidc.start(redirect_uri)
        except Exception:
            log.exception("OpenID provider %s unavailable", s.oidc_issuer)
            return message_page("Sign-in unavailable", "The sign-in provider cannot be reached.", 503)
        response = RedirectResponse(made["url"], status_code=302, headers={"Cache-Control": "no-store"})
        pending = {k: made[k] for k in ("state", "nonce", "code_verifier")}
        auth.write_pending(
            request, response, pending | {"redirect_uri": redirect_uri, "next": safe_next(next)}
        )
        return response

    @router.get("/oidc/callback", name="oidc_callback", response_model=None)
    def oidc_callback(
        request: Request, code: str = "", state: str = "", error: str = "", error_description: str = ""
    ) -> Response:
        if auth.oidc is None:
            raise HTTPException(404, "OpenID Connect sign-in is not set up.")
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        pending = auth.take_pending(request, response)

        def refuse(title: str, text: str) -> Response:
            page = message_page(title, text, 400)
            for value in response.headers.getlist("set-cookie"):  # the pending sign-in is cleared
                page.headers.append("set-cookie", value)
            return page

        if pending is None:
            return refuse("Sign-in expired", "Start again from the sign-in page.")
        if not state or not hmac.compare_digest(state.encode(), pending.get("state", "").encode()):
            return refuse("Sign-in refused", "This answer is not for a sign-in started here.")
        if error or not code:
            log.info("OpenID provider refused sign-in: %s %s", error[:100], error_description[:300])
            return refuse("Sign-in refused", "The sign-in provider did not sign you in.")
        try:
            claims = auth.oidc.finish(code, pending)
            subject = claims["sub"]
            if not isinstance(subject, str) or not subject:
                raise ValueError("no subject in the ID token")
        except Exception:
            log.exception("OpenID sign-in failed at the code exchange or token check")
            return refuse("Sign-in failed", "The sign-in provider's answer could not be checked.")
        verified = str(claims.get("email_verified", True)).lower() != "false"  # some send "false"
        email = claims.get("email") if verified else None
        name = claims.get("name") or claims.get("preferred_username") or email or subject
        person = auth.directory.from_oidc(
            claims["iss"],
            subject,
            email=email if isinstance(email, str) else None,
            name=str(name),
            groups=groups_of(claim(claims, s.oidc_groups_claim)),
        )
        response.headers["location"] = pending.get("next", "/")
        auth.sign_in(request, response, person)
        return response

    @router.get("/link/{token}", response_model=None)
    def link(request: Request, token: str) -> Response:
        person = auth.directory.redeem_link(token) if len(token) <= 512 else None
        if person is None:
            return message_page("Link not valid", "This sign-in link was used already or has expired.", 400)
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        auth.sign_in(request, response, person)
        return response

    @router.post("/logout", response_model=None)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        if not auth.csrf_ok(request, csrf or request.headers.get(CSRF_HEADER)):
            return message_page("Sign-out refused", "Missing or wrong CSRF token: reload the page.", 403)
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        auth.sign_out(request, response)
        return response

    @router.get("/me", response_model=None)
    def me(request: Request) -> Response:
        """Who is signed in, and the CSRF token the page's script sends with its own posts."""

        def answer(session: Session) -> Response:
            person = auth.person(request)
            who = None
            if person is not None:
                who = {
                    "id": person.id,
                    "name": person.name,
                    "email": person.email,
                    "groups": sorted(person.groups),
                    "admin": person.admin,
                }
            body = {
                "signed_in": person is not None,
                "person": who,
                "csrf": session.csrf,
                "oidc": oidc_label,
                "anonymous_read": s.anonymous_read,
            }
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return auth.with_session(request, answer)

    return router


def _client(request: Request) -> str:
    return request.client.host if request.client else ""
