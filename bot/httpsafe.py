"""What makes the server safe to put in front of strangers, below the doors themselves: who counts as
local, which Host names are served, how large a request may be, which headers every page carries,
turns that end when their client does, and a uvicorn connection that must send its headers in time.

Every door (bot/app.py) uses these; none of it knows about chat turns beyond `Hangup`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.admission import Hangup

log = logging.getLogger(__name__)
T = TypeVar("T")

OPERATOR_COOKIE = "ragbot_operator"  # the operator token, as the web documents panel sends its uploads

# Any of these in a request means a proxy (or a tunnel that says so) stands between the asker and
# this server: the asker is then not known to be on this machine, whatever the socket's address.
PROXY_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "x-original-forwarded-for",
    "true-client-ip",
    "cf-connecting-ip",
    "via",
)

# The page's own origin only: no remote images, fonts, forms, pings or frames, so nothing that slips
# into a rendered answer can send the conversation anywhere. Gradio needs inline scripts and styles.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)


def widget_csp(frame_origins: str) -> str:
    """The widget page: its own inline script and style, requests to its own origin, framed only by
    the operator's sites."""
    ancestors = frame_origins.strip() or "'self'"
    return (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )


def host_name(host_header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower-cased."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback_name(name: str) -> bool:
    """localhost (and *.localhost, which browsers resolve to loopback) or a loopback address."""
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def proxied(headers: Mapping[str, str]) -> bool:
    return any(k.lower() in PROXY_HEADERS for k in headers)


@dataclass(frozen=True)
class Access:
    allowed: bool
    reason: str = ""


def edit_access(
    admin_token: str | None,
    given_token: str,
    client_host: str | None,
    headers: Mapping[str, str],
    bound_host: str,
    editor: bool = False,
) -> Access:
    """May this request upload or delete? A signed-in person with the edit role on the chosen
    knowledge base (`editor`) may, from a page of this site (an Origin, when the browser sends one,
    naming this Host). Otherwise, with an operator token: only with that token. Without one: only a
    direct request from this machine: the server bound to loopback, a loopback peer, a loopback
    Host (not a rebound DNS name), a loopback Origin when the browser sends one (not another site
    posting on the user's behalf), and no sign of a proxy in between."""
    lowered = {k.lower(): v for k, v in headers.items()}
    origin = lowered.get("origin", "")
    if editor and (not origin or origin.split("://", 1)[-1].lower() == lowered.get("host", "").lower()):
        return Access(True)
    if admin_token:
        if hmac.compare_digest(given_token.strip().encode(), admin_token.encode()):
            return Access(True)
        return Access(False, "The operator token is missing or wrong.")
    local = (
        is_loopback_name(bound_host)
        and client_host is not None
        and is_loopback_name(client_host)
        and is_loopback_name(host_name(lowered.get("host", "")))
        and (not origin or is_loopback_name(host_name(origin.split("://", 1)[-1])))
        and not proxied(lowered)
    )
    if local:
        return Access(True)
    return Access(
        False,
        "Changing documents is allowed from this machine only; the operator can set RAGBOT_ADMIN_TOKEN.",
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


class _TooLarge(Exception):
    pass


class Guard:
    """Outermost ASGI middleware: Host names served, request body size, and the headers every
    response carries (CSP with frame-ancestors, nosniff, no referrer)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: frozenset[str] | None,
        max_body: int,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts  # None: any Host; else names (loopback names always pass)
        self.max_body = max_body
        self.body_limits = dict(body_limits or {})  # path prefix -> bytes

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.body_limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.allowed_hosts is not None:
            name = host_name(headers.get("host", ""))
            if not (is_loopback_name(name) or name in self.allowed_hosts):
                await _refuse(
                    scope, receive, send, 400, "Unknown Host: this server does not answer to that name."
                )
                return
        limit = self.limit_for(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, 413, f"Request body over the {limit:,}-byte limit.")
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def marked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                    extra.append((b"x-frame-options", b"SAMEORIGIN"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, counted_receive, marked_send)
        except _TooLarge:
            if not started:
                await _refuse(scope, receive, send, 413, f"Request body over the {limit:,}-byte limit.")


class TurnStream(StreamingResponse):
    """A streamed turn that ends when its client does: a disconnect hangs the turn up at once (its
    place in line is freed and generation stops at the next piece), not when Python's garbage
    collector happens to close the generator behind the response."""

    def __init__(self, content: Any, hangup: Hangup, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.hangup = hangup

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        self.hangup.hang_up()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hangup.hang_up()


async def unless_gone(receive: Receive, work: Callable[[], T], hangup: Hangup) -> T | None:
    """Run `work` on a worker thread; if the client disconnects first, hang up and return None at
    once (the thread ends when the turn notices, within a streamed piece)."""
    result: list[T] = []
    failure: list[BaseException] = []

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        hangup.hang_up()
        tg.cancel_scope.cancel()

    async def run() -> None:
        try:
            result.append(await anyio.to_thread.run_sync(work, abandon_on_cancel=True))
        except Exception as exc:  # raised as itself below, not wrapped in the task group's ExceptionGroup
            failure.append(exc)
        tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            tg.start_soon(run)
    finally:
        if not result:
            hangup.hang_up()
    if failure:
        raise failure[0]
    return result[0] if result else None


def timely_h11(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request head within
    `header_timeout_s` (slowloris: uvicorn itself waits for ever for the first request's headers)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimelyH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same time for its head

        def handle_events(self) -> None:
            super().handle_events()
            if not self._waiting_for_head() and self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_too_slow)

        def _waiting_for_head(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self._waiting_for_head() and not self.transport.is_closing():
                log.info("closed a connection that sent no request head in %.0f s", header_timeout_s)
                self.transport.close()

    return TimelyH11
