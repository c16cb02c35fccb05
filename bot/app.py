"""The one ASGI app: the web chat at / (chat, evidence, documents, feedback), /widget and its
feedback, Slack and Discord webhooks, /healthz, /v1 API, and, with a state database, sign-in (/auth)
and administration (/admin).

`build_app(Components)` wires the real pieces; `create_app(AppDeps)` takes them ready-made, so
tests can run the same routes over a small index.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.access import Readers
from bot.admin import admin_router
from bot.admission import Busy, Hangup
from bot.auth import AuthContext, Directory, WebAuth, auth_router, current_principal, require_person
from bot.chat import ChatService, InputError
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.discord import DiscordInteractions
from bot.factory import Components
from bot.feedback import Rating, RecentTurns
from bot.httpsafe import (
    OPERATOR_COOKIE,
    Guard,
    TurnStream,
    edit_access,
    is_loopback_name,
    timely_h11,
    unless_gone,
    widget_csp,
)
from bot.kb_admin import ChunkStore, KnowledgeBaseAdmin, StoreChunks
from bot.library import Libraries
from bot.openai_api import ApiError, CompletionRequest, bounded_history, completion, split, sse
from bot.slack import SlackEvents
from bot.widget import widget_page, widget_rows
from generation.protocol import ChatMessage
from state import Person, Principal, State
from state.keys import PREFIX as KEY_PREFIX

log = logging.getLogger(__name__)
HealthCheck = Callable[[], dict[str, str]]  # component -> "ok" or a reason it is not
WEBHOOK_THREADS = 4  # Slack/Discord turns in flight; more wait in the executor's own queue
HEALTH_TIMEOUT_S = 3.0
HEALTH_FRESH_S = 1.0  # a probe is answered from checks at most this old (plus one check's time)
UPLOAD_PATHS = ("/gradio_api/upload", "/upload")


@dataclass
class AppDeps:
    settings: Settings
    service: ChatService
    conversations: ConversationStore
    health: HealthCheck
    libraries: Libraries | None = None  # the web documents panel, per knowledge base; None hides it
    directory: Directory | None = None  # the people web sign-in checks; None: no /auth, everyone anonymous
    readers: Readers = field(default_factory=Readers)  # who may read which knowledge bases
    chunks: ChunkStore | None = None  # the store's knowledge bases, for /admin; None: no rename or delete


class WidgetMessage(BaseModel):
    token: str = Field(max_length=200)
    message: str
    history: list[ChatMessage] = Field(default_factory=list, max_length=40)

    _bounded = field_validator("history")(bounded_history)


class WidgetFeedback(BaseModel):
    token: str = Field(max_length=200)
    turn_id: str = Field(max_length=64)
    rating: Rating | None = None
    comment: str = Field("", max_length=2000)


def _log_failure(future: Future[None]) -> None:
    """A webhook answer runs after its request is gone: an error it raises goes to the log."""

    def done(f: Future[None]) -> None:
        if not f.cancelled() and (exc := f.exception()) is not None:
            log.error("answering a webhook question failed", exc_info=exc)

    future.add_done_callback(done)


def client_of(request: Request) -> str:
    """Whom the per-client share of the turn queue counts: the peer's address."""
    return request.client.host if request.client else ""


def busy_response(exc: Busy) -> JSONResponse:
    return JSONResponse(
        {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)}
    )


def health_router(deps: AppDeps, fresh_s: float = HEALTH_FRESH_S) -> APIRouter:
    """/healthz never waits behind chats: the checks run on a thread of their own, at most once per
    `fresh_s`, and a probe meanwhile gets the last result at once (on a small CPU busy with the model,
    even a quick check waits for a core). It names each part's state, not its error text (which can
    carry backend addresses): the log has those."""
    router = APIRouter()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
    last: list[tuple[float, dict[str, str]]] = []  # (when, public states)
    running: list[asyncio.Future[dict[str, str]]] = []

    def check() -> dict[str, str]:
        public = {}
        for part, state in deps.health().items():
            if not state.startswith("ok"):
                log.warning("health: %s %s", part, state)
            public[part] = "ok" if state.startswith("ok") else "unavailable"
        last[:] = [(time.monotonic(), public)]
        return public

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        now = time.monotonic()
        stale = not last or now - last[0][0] > fresh_s
        if stale and (not running or running[0].done()):
            running[:] = [asyncio.wrap_future(pool.submit(check))]  # no server worker thread is taken
        if last and now - last[0][0] <= fresh_s + HEALTH_TIMEOUT_S:
            checks = last[0][1]  # recent: answered at once while a newer check runs
        else:
            try:
                checks = await asyncio.wait_for(asyncio.shield(running[0]), HEALTH_TIMEOUT_S)
            except TimeoutError:
                return JSONResponse(
                    {"status": "degraded", "detail": "health check timed out"}, status_code=503
                )
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)

    return router


def widget_router(deps: AppDeps, recent: RecentTurns) -> APIRouter:
    router = APIRouter()
    s, service = deps.settings, deps.service
    tokens = s.widget_token_map()

    @router.get("/widget", response_class=HTMLResponse)
    def widget(token: str = "") -> HTMLResponse:
        if token not in tokens:
            raise HTTPException(403, "Unknown widget token: ask the operator for this site's token.")
        page = widget_page(token, s.max_message_chars)
        return HTMLResponse(page, headers={"Content-Security-Policy": widget_csp(s.widget_origins)})

    @router.post("/widget/chat", response_model=None)
    def widget_chat(body: WidgetMessage, request: Request) -> Response:
        if body.token not in tokens:
            raise HTTPException(403, "Unknown widget token.")
        hangup = Hangup()
        readable = deps.readers.readable(Principal.widget(tokens[body.token]))
        try:
            events = service.start(
                body.message, body.history, readable=readable, client=client_of(request), hangup=hangup
            )
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        except Busy as exc:
            return busy_response(exc)
        channel = f"widget:{tokens[body.token]}"
        rows = widget_rows(events, body.message, recent, channel)
        return TurnStream(rows, hangup, media_type="application/x-ndjson")

    @router.post("/widget/feedback")
    def widget_feedback(body: WidgetFeedback) -> JSONResponse:
        if body.token not in tokens:
            raise HTTPException(403, "Unknown widget token.")
        turn = recent.get(body.turn_id)
        if turn is None or turn.channel != f"widget:{tokens[body.token]}":
            raise HTTPException(404, "That answer is no longer known; feedback was not saved.")
        if "rating" in body.model_fields_set:
            deps.conversations.rate(turn, body.rating)
        if body.comment.strip():
            deps.conversations.comment(turn, body.comment)
        return JSONResponse({"saved": True})

    return router


def openai_router(deps: AppDeps) -> APIRouter:
    """/v1/chat/completions: the key is checked before the body is read, the body is bounded, and a
    turn ends when its caller hangs up, streaming or not."""
    router = APIRouter()
    s, service = deps.settings, deps.service
    keys = deps.readers.state.keys if deps.readers.state is not None else None

    def api_caller(authorization: str) -> Principal | None:
        """Who calls /v1: a knowledge-base key (`ragbot keys create`) reads what it was bound to; the
        shared RAGBOT_API_KEY, or no key where none is required, reads the public knowledge bases.
        None: refused."""
        scheme, _, given = authorization.partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        if given and keys is not None and given.startswith(f"{KEY_PREFIX}_"):
            return keys.verify(given)
        if s.api_key:
            ok = given and hmac.compare_digest(given.encode(), s.api_key.encode())
            return Principal.anonymous() if ok else None
        return None if authorization else Principal.anonymous()

    @router.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        principal = await run_in_threadpool(api_caller, request.headers.get("authorization", ""))
        if principal is None:
            return _api_error(ApiError(401, "Invalid API key.", "authentication_error"))
        try:
            body = CompletionRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            return _api_error(ApiError(400, message, "invalid_request_error"))
        client = "" if principal.kind == "api_key" or s.api_key else client_of(request)  # a key holder
        # is trusted with its own share
        hangup = Hangup()
        try:
            question, history = split(body)
            readable = deps.readers.readable(principal)
            events = service.start(question, history, readable=readable, client=client, hangup=hangup)
            if body.stream:
                return TurnStream(sse(events, body), hangup, media_type="text/event-stream")
            result = await unless_gone(request.receive, lambda: completion(events, body), hangup)
            if result is None:
                return Response(status_code=499)  # nobody is listening; nothing was sent
            return JSONResponse(result)
        except InputError as exc:
            return _api_error(ApiError(400, str(exc), "invalid_request_error"))
        except Busy as exc:
            response = _api_error(ApiError(429, str(exc), "rate_limit_error"))
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        except ApiError as exc:
            return _api_error(exc)

    return router


def webhook_router(deps: AppDeps, turns: ThreadPoolExecutor) -> APIRouter:
    router = APIRouter()
    s, service = deps.settings, deps.service
    if s.slack_signing_secret:
        slack = SlackEvents(
            s.slack_signing_secret,
            s.slack_bot_token,
            service,
            deps.conversations,
            s.slack_api_url,
            readers=deps.readers,
        )

        @router.post("/slack/events")
        async def slack_events(request: Request) -> JSONResponse:
            outcome = slack.receive(await request.body(), dict(request.headers))
            if outcome.question:
                _log_failure(turns.submit(slack.answer, outcome.question))
            return JSONResponse(outcome.body, status_code=outcome.status)

    if s.discord_public_key:
        discord = DiscordInteractions(
            s.discord_public_key, service, deps.conversations, s.discord_api_url, readers=deps.readers
        )

        @router.post("/discord/interactions")
        async def discord_interactions(request: Request) -> JSONResponse:
            outcome = discord.receive(
                await request.body(),
                request.headers.get("x-signature-ed25519", ""),
                request.headers.get("x-signature-timestamp", ""),
            )
            if outcome.question:
                _log_failure(turns.submit(discord.answer, outcome.question))
            return JSONResponse(outcome.body, status_code=outcome.status)

    return router


def chats_router(state: State) -> APIRouter:
    """/chats/{id}/export: a signed-in person's kept chat as a JSON download (only their own)."""
    router = APIRouter()

    @router.get("/chats/{chat_id}/export")
    def export_chat(chat_id: int, person: Person = Depends(require_person)) -> Response:  # noqa: B008
        document = state.chats.export(person.id, chat_id)
        if document is None:
            raise HTTPException(404, "No such chat.")
        headers = {
            "Content-Disposition": f'attachment; filename="chat-{chat_id}.json"',
            "Cache-Control": "no-store",
        }
        return Response(document, media_type="application/json", headers=headers)

    return router


class UploadGate:
    """Gradio's upload route takes files before any event handler runs: only an editor may post
    there (a signed-in person with the edit role on some knowledge base, the operator token, sent by
    the documents panel as a SameSite cookie, or a direct local request when no token is set). Which
    knowledge base the files go to is the upload handler's to check, before it stores anything
    (bot/web.py PageActions.on_upload)."""

    def __init__(
        self,
        app: ASGIApp,
        admin_token: str | None,
        bound_host: str,
        readers: Readers | None = None,
        enabled: bool = True,
    ) -> None:
        self.app, self.admin_token, self.bound_host = app, admin_token, bound_host
        self.readers, self.enabled = readers or Readers(), enabled

    def editor(self, request: Request) -> bool:
        """Whether the signed-in person (bot/auth.py) may edit at least one knowledge base."""
        return self.enabled and bool(self.readers.editable(current_principal(request)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") in UPLOAD_PATHS
        ):
            request = Request(scope)
            client = request.client.host if request.client else None
            token = request.cookies.get(OPERATOR_COOKIE, "")
            editor = await run_in_threadpool(self.editor, request)
            access = edit_access(self.admin_token, token, client, request.headers, self.bound_host, editor)
            if not access.allowed:
                await JSONResponse({"detail": access.reason}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(deps: AppDeps, with_ui: bool = True) -> FastAPI:
    """One router per door, the web chat at / over them, then the protections around everything."""
    # Slack and Discord questions are answered after the acknowledgement, on threads of their own: a
    # burst of them waiting in the turn queue must not hold the server's worker threads, which the
    # streaming doors (/v1, the widget) need.
    webhook_turns = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="webhook-turn")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        webhook_turns.shutdown(wait=False, cancel_futures=True)  # questions not yet started are dropped

    app = FastAPI(title="ragbot", docs_url="/api/docs", redoc_url=None, lifespan=lifespan)
    app.include_router(health_router(deps))
    app.include_router(widget_router(deps, RecentTurns()))
    app.include_router(openai_router(deps))
    app.include_router(webhook_router(deps, webhook_turns))
    auth = WebAuth(deps.settings, deps.directory) if deps.directory is not None else None
    if auth is not None:
        app.include_router(auth_router(auth))
        if (state := deps.readers.state) is not None:
            app.include_router(chats_router(state))
            libraries = deps.libraries
            kbs = KnowledgeBaseAdmin(
                state.kbs,
                deps.chunks,
                deps.settings.uploads_dir,
                on_uploads_moved=libraries.moved if libraries is not None else None,
            )
            app.include_router(admin_router(auth, state, kbs))
    if with_ui:
        app = mount_web_chat(app, deps)
    if auth is not None:
        app.add_middleware(AuthContext, auth=auth)  # around Gradio too: its handlers can ask who signed in
    add_protections(app, deps.settings)
    return app


def mount_web_chat(app: FastAPI, deps: AppDeps) -> FastAPI:
    """The Gradio page at /, with its upload route gated to editors (UploadGate)."""
    import gradio as gr

    from bot.ui_texts import ui_texts
    from bot.web import CSS, HEAD, build_ui

    s = deps.settings
    texts = ui_texts(s.max_upload_mb, bool(s.admin_token), editors=deps.directory is not None)
    ui = build_ui(
        deps.service,
        deps.conversations,
        deps.libraries,
        s.admin_token,
        bound_host=s.host,
        texts=texts,
        readers=deps.readers,
        state=deps.readers.state if deps.directory is not None else None,
        audit_notice=s.chat_retention_audit,
    )
    app = gr.mount_gradio_app(
        app,
        ui.queue(),
        path="/",
        css=CSS,
        head=HEAD,
        max_file_size=int(s.max_upload_mb * 1_000_000),
        i18n=texts,
    )
    app.add_middleware(
        UploadGate,
        admin_token=s.admin_token,
        bound_host=s.host,
        readers=deps.readers,
        enabled=deps.libraries is not None,
    )
    return app


def add_protections(app: FastAPI, s: Settings) -> None:
    """What every request passes first: no cross-origin reads, the served host names only, bounded
    bodies (bot/httpsafe.py Guard)."""
    # No cross-origin reads anywhere (the widget calls its own origin); configuring it here also
    # turns off Gradio's own CORS middleware, which reflects any origin with credentials.
    app.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)
    upload_bytes = int(s.max_upload_mb * 1_000_000) * 10 + 1_000_000  # several files in one form
    app.add_middleware(
        Guard,
        allowed_hosts=s.served_hosts(),
        max_body=s.max_body_kb * 1024,
        body_limits={path: upload_bytes for path in UPLOAD_PATHS},
    )


def _api_error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": {"message": exc.message, "type": exc.kind}}, status_code=exc.status)


def component_health(parts: Components) -> HealthCheck:
    def check() -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            out["qdrant"] = f"ok ({parts.store.count()} chunks)"
        except Exception as exc:  # StoreUnavailable and anything else: reported, not raised
            out["qdrant"] = f"unavailable: {exc}"
        generator = parts.generator
        ping = getattr(generator, "ping", None)
        try:
            if ping:
                ping()
            out["generator"] = f"ok ({generator.name})"
        except Exception as exc:
            out["generator"] = f"unavailable: {exc}"
        return out

    return check


def build_app(parts: Components) -> FastAPI:
    s = parts.settings
    libraries = Libraries(
        parts.ingestor_for, s.uploads_dir, int(s.max_upload_mb * 1_000_000), on_change=parts.retriever.reload
    )
    # Finish or roll back an upload or delete a crash cut off, in every knowledge base, before serving
    # (the state knows every one the store holds: Components.state registers them when it opens).
    libraries.reconcile({kb.name for kb in parts.state.kbs.list()})
    # Conversations, webhook ids and feedback live in the state database; a conversations file from
    # before it is brought over once, at the first start.
    conversations = ConversationStore(parts.state, import_from=s.conversations_path)
    deps = AppDeps(
        s,
        parts.chat_service(),
        conversations,
        component_health(parts),
        libraries,
        directory=parts.state.people,
        readers=parts.readers,
        chunks=StoreChunks(parts.store, on_change=parts.retriever.reload),
    )
    return create_app(deps)


def exposure_problems(s: Settings) -> list[str]:
    """Settings that would put an open door on the network; `serve` refuses to start with any."""
    problems = []
    if not is_loopback_name(s.host) and not s.api_key:
        problems.append(
            f"/v1 would be open to anyone who reaches {s.host}: set RAGBOT_API_KEY, or bind to 127.0.0.1."
        )
    return problems


def first_admin_link(state: State) -> str | None:
    """On a state database with nobody in it, an administrator `admin` and the path of a one-time
    sign-in link for them (no password is set: `ragbot users link admin` prints another link)."""
    if state.people.list():
        return None
    admin = state.people.create_local("admin", None, name="Administrator", admin=True, actor="system")
    return f"/auth/link/{state.people.sign_in_link(admin.id, ttl_s=24 * 3600, actor='system')}"


def serve(parts: Components) -> None:
    import uvicorn

    s = parts.settings
    if problems := exposure_problems(s):
        raise SystemExit("ragbot will not start: " + " ".join(problems))
    # A closed tab is noticed at the next heartbeat of its Gradio session (bot/web.py hangs its turn up
    # then): every 2 s rather than Gradio's 15.
    os.environ.setdefault("GRADIO_HEARTBEAT_INTERVAL", "2")
    app = build_app(parts)
    # The moderation prompts' prefixes are cached (restored from the last start's files, or computed)
    # while the first visitor reads the page.
    threading.Thread(target=parts.warm, name="moderation-warm-up", daemon=True).start()
    base = (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")
    print(f"ragbot on {base}  (chat at /, widget at /widget, health at /healthz)", flush=True)
    if link := first_admin_link(parts.state):
        print(f"First start: sign in as the administrator (once, within 24 hours): {base}{link}", flush=True)
    uvicorn.run(
        app,
        host=s.host,
        port=s.port,
        log_level="warning",
        http=timely_h11(s.header_timeout_s),
        limit_concurrency=s.max_connections,
        timeout_keep_alive=5,
    )
