"""The one ASGI app: the web chat at / (chat, evidence, documents, feedback), /widget and its
feedback, Slack and Discord webhooks, /healthz, /v1 API.

`build_app(Components)` wires the real pieces; `create_app(AppDeps)` takes them ready-made, so
tests can run the same routes over a small index.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from bot.chat import ChatService
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.discord import DiscordInteractions
from bot.factory import Components
from bot.feedback import Rating, RecentTurns
from bot.library import Library
from bot.openai_api import ApiError, CompletionRequest, complete, stream
from bot.slack import SlackEvents
from bot.widget import frame_ancestors, widget_events, widget_page
from generation.protocol import ChatMessage

log = logging.getLogger(__name__)
HealthCheck = Callable[[], dict[str, str]]  # component -> "ok" or a reason it is not
WEBHOOK_THREADS = 4  # Slack/Discord turns in flight; more wait in the executor's own queue


@dataclass
class AppDeps:
    settings: Settings
    service: ChatService
    conversations: ConversationStore
    health: HealthCheck
    library: Library | None = None  # the web documents panel; None hides upload and delete


class WidgetMessage(BaseModel):
    token: str
    message: str
    history: list[ChatMessage] = Field(default_factory=list, max_length=40)


class WidgetFeedback(BaseModel):
    token: str
    turn_id: str = Field(max_length=64)
    rating: Rating | None = None
    comment: str = Field("", max_length=2000)


def _log_failure(future: Future[None]) -> None:
    """A webhook answer runs after its request is gone: an error it raises goes to the log."""

    def done(f: Future[None]) -> None:
        if not f.cancelled() and (exc := f.exception()) is not None:
            log.error("answering a webhook question failed", exc_info=exc)

    future.add_done_callback(done)


def create_app(deps: AppDeps, with_ui: bool = True) -> FastAPI:
    s, service = deps.settings, deps.service
    # Slack and Discord questions are answered after the acknowledgement, on threads of their own: a
    # burst of them waiting in the turn queue must not hold the server's worker threads, which the
    # streaming doors (/v1, the widget) need.
    webhook_turns = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="webhook-turn")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        webhook_turns.shutdown(wait=False, cancel_futures=True)  # questions not yet started are dropped

    app = FastAPI(title="ragbot", docs_url="/api/docs", redoc_url=None, lifespan=lifespan)
    tokens = s.widget_token_map()
    recent = RecentTurns()

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        checks = deps.health()
        ok = all(v.startswith("ok") for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)

    @app.get("/widget", response_class=HTMLResponse)
    def widget(token: str = "") -> HTMLResponse:
        if token not in tokens:
            raise HTTPException(403, "Unknown widget token: ask the operator for this site's token.")
        page = widget_page(token, s.max_message_chars)
        return HTMLResponse(page, headers={"Content-Security-Policy": frame_ancestors(s.widget_origins)})

    @app.post("/widget/chat")
    def widget_chat(body: WidgetMessage) -> StreamingResponse:
        if body.token not in tokens:
            raise HTTPException(403, "Unknown widget token.")

        channel = f"widget:{tokens[body.token]}"
        return StreamingResponse(
            widget_events(service, body.message, body.history, recent, channel),
            media_type="application/x-ndjson",
        )

    @app.post("/widget/feedback")
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

    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(body: CompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        if s.api_key:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), s.api_key.encode()):
                return _api_error(ApiError(401, "Invalid API key.", "authentication_error"))
        try:
            if body.stream:
                return StreamingResponse(stream(service, body), media_type="text/event-stream")
            return JSONResponse(complete(service, body))
        except ApiError as exc:
            return _api_error(exc)

    if s.slack_signing_secret:
        slack = SlackEvents(
            s.slack_signing_secret, s.slack_bot_token, service, deps.conversations, s.slack_api_url
        )

        @app.post("/slack/events")
        async def slack_events(request: Request) -> JSONResponse:
            outcome = slack.receive(await request.body(), dict(request.headers))
            if outcome.question:
                _log_failure(webhook_turns.submit(slack.answer, outcome.question))
            return JSONResponse(outcome.body, status_code=outcome.status)

    if s.discord_public_key:
        discord = DiscordInteractions(s.discord_public_key, service, deps.conversations, s.discord_api_url)

        @app.post("/discord/interactions")
        async def discord_interactions(request: Request) -> JSONResponse:
            outcome = discord.receive(
                await request.body(),
                request.headers.get("x-signature-ed25519", ""),
                request.headers.get("x-signature-timestamp", ""),
            )
            if outcome.question:
                _log_failure(webhook_turns.submit(discord.answer, outcome.question))
            return JSONResponse(outcome.body, status_code=outcome.status)

    if with_ui:
        import gradio as gr

        from bot.web import CSS, HEAD, build_ui

        ui = build_ui(service, deps.conversations, deps.library, s.admin_token)
        app = gr.mount_gradio_app(
            app,
            ui.queue(),
            path="/",
            css=CSS,
            head=HEAD,
            max_file_size=int(s.max_upload_mb * 1_000_000),
        )
    return app


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
    library = Library(
        parts.ingestor, s.uploads_dir, int(s.max_upload_mb * 1_000_000), on_change=parts.retriever.reload
    )
    conversations = ConversationStore(s.conversations_path)
    deps = AppDeps(s, parts.chat_service(), conversations, component_health(parts), library)
    return create_app(deps)


def serve(parts: Components) -> None:
    import uvicorn

    s = parts.settings
    app = build_app(parts)
    # The moderation prompts' prefixes are cached (restored from the last start's files, or computed)
    # while the first visitor reads the page.
    threading.Thread(target=parts.warm, name="moderation-warm-up", daemon=True).start()
    print(
        f"ragbot on http://{s.host}:{s.port}  (chat at /, widget at /widget, health at /healthz)", flush=True
    )
    uvicorn.run(app, host=s.host, port=s.port, log_level="warning")
