"""Slack and Discord webhooks under abuse: replays and malformed signed payloads. What the
conversation store keeps over time (bounded history, forgotten event ids) is in test_conversations.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.app import AppDeps, create_app
from bot.chat import ChatService, TurnSettings
from bot.config import Settings
from bot.conversations import ConversationStore
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from tests.capture_server import Captured, CaptureServer
from tests.generators import ScriptedGenerator
from tests.test_app import ANSWER, DISCORD_KEY, SLACK_SECRET, discord_headers, slack_headers, wait_until

DAY = 86_400.0


@dataclass
class Bot:
    """The app over a small index, the stand-in platform APIs, and the app's conversation store.

    Responses are typed Any: the test client's are httpx's, or httpx2's in newer Starlette.
    """

    client: TestClient
    capture: CaptureServer
    conversations: ConversationStore

    def slack(self, payload: object) -> Any:
        body = json.dumps(payload).encode()
        return self.client.post("/slack/events", content=body, headers=slack_headers(body))

    def discord(self, payload: object) -> Any:
        body = json.dumps(payload).encode()
        return self.client.post("/discord/interactions", content=body, headers=discord_headers(body))

    def requests(self, method: str, prefix: str) -> list[Captured]:
        return [c for c in self.capture.requests if c.method == method and c.path.startswith(prefix)]


@pytest.fixture
def bot(ingestor: Ingestor, store: VectorStore, corpus: Path, tmp_path: Path) -> Iterator[Bot]:
    ingestor.ingest_paths([corpus])
    service = ChatService(
        Retriever(ingestor.embedder, store),
        ScriptedGenerator([ANSWER] * 5),
        TurnSettings(RetrievalSettings(k=2)),
    )
    with CaptureServer() as capture:
        settings = Settings(
            data_dir=tmp_path,
            slack_signing_secret=SLACK_SECRET,
            slack_bot_token="xoxb-test",
            slack_api_url=capture.url + "/slack/",
            discord_public_key=DISCORD_KEY.verify_key.encode().hex(),
            discord_api_url=capture.url + "/discord",
        )
        conversations = ConversationStore(settings.conversations_path)
        deps = AppDeps(settings, service, conversations, lambda: {"qdrant": "ok", "generator": "ok"})
        app = create_app(deps, with_ui=False)
        # A crash must show as the 500 the platform would see, not as an exception in the test.
        with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
            yield Bot(client, capture, conversations)
        conversations.close()


def slack_event(event_id: str = "Ev1", **event: object) -> dict[str, object]:
    fields = {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT> What buried Pompeii?",
              "ts": "1700000000.000100"} | event  # fmt: skip
    return {"type": "event_callback", "event_id": event_id, "event": {k: v for k, v in fields.items() if v}}


def discord_command(interaction_id: str | None = "I1", **fields: object) -> dict[str, object]:
    payload = {
        "id": interaction_id,
        "type": 2,
        "application_id": "A1",
        "token": "T1",
        "channel_id": "CH1",
        "data": {"name": "ask", "options": [{"name": "q", "value": "What buried Pompeii?"}]},
    } | fields
    return {k: v for k, v in payload.items() if v is not None}


# Replays


def test_a_replayed_discord_interaction_is_refused(bot: Bot) -> None:
    body = json.dumps(discord_command("I1")).encode()
    headers = discord_headers(body)  # the same signed request, sent twice within the 300 s window
    first = bot.client.post("/discord/interactions", content=body, headers=headers)
    replay = bot.client.post("/discord/interactions", content=body, headers=headers)
    assert first.status_code == 200
    assert first.json() == {"type": 5}
    assert replay.status_code == 409
    assert replay.json() == {"error": "interaction already handled"}
    wait_until(lambda: len(bot.requests("PATCH", "/discord/webhooks/")) == 1)  # let the answer land


def test_a_replayed_discord_interaction_is_answered_once(bot: Bot) -> None:
    body = json.dumps(discord_command("I1")).encode()
    headers = discord_headers(body)
    for _ in range(3):
        bot.client.post("/discord/interactions", content=body, headers=headers)
    wait_until(lambda: len(bot.requests("PATCH", "/discord/webhooks/")) >= 1)
    time.sleep(0.5)  # further answers, were the replays answered, would land meanwhile
    assert len(bot.requests("PATCH", "/discord/webhooks/")) == 1


def test_another_discord_interaction_in_the_same_window_is_answered(bot: Bot) -> None:
    assert bot.discord(discord_command("I1")).status_code == 200
    second = bot.discord(discord_command("I2", token="T2"))
    assert second.status_code == 200
    assert second.json() == {"type": 5}
    wait_until(lambda: len(bot.requests("PATCH", "/discord/webhooks/")) == 2)


def test_a_discord_interaction_without_an_id_is_told_apart_by_its_token(bot: Bot) -> None:
    first = bot.discord(discord_command(None))
    replay = bot.discord(discord_command(None))
    other = bot.discord(discord_command(None, token="T2"))
    assert first.status_code == 200
    assert replay.status_code == 409
    assert other.status_code == 200
    wait_until(lambda: len(bot.requests("PATCH", "/discord/webhooks/")) == 2)


# Malformed signed payloads


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "body is not a JSON object"),
        ("event_callback", "body is not a JSON object"),
        (None, "body is not a JSON object"),
        ({"type": "event_callback"}, "payload.event is missing"),
        ({"type": "event_callback", "event": "app_mention"}, "payload.event is not an object"),
        (slack_event(channel=""), "event.channel is missing"),
        (slack_event(ts=""), "event.ts is missing"),
        (slack_event(channel=["C1"]), "event.channel is not a string"),
        (slack_event(text={"rich": "text"}), "event.text is not a string"),
        ({"type": "url_verification"}, "payload.challenge is missing"),
    ],
)
def test_a_malformed_signed_slack_delivery_gets_400(bot: Bot, payload: object, reason: str) -> None:
    r = bot.slack(payload)
    assert r.status_code == 400
    assert r.json() == {"error": f"malformed payload: {reason}"}


def test_a_slack_body_that_is_not_json_gets_400(bot: Bot) -> None:
    body = b"event=app_mention"
    r = bot.client.post("/slack/events", content=body, headers=slack_headers(body))
    assert r.status_code == 400
    assert r.json() == {"error": "malformed payload: body is not JSON"}


def test_a_rejected_slack_delivery_is_not_taken_for_a_retry_later(bot: Bot) -> None:
    rejected = bot.slack(slack_event("Ev7", channel=""))
    redelivered = bot.slack(slack_event("Ev7"))  # the same event id, now whole
    assert rejected.status_code == 400
    assert redelivered.status_code == 200
    assert redelivered.json() == {"ok": True}  # not {"duplicate": True}
    wait_until(lambda: len(bot.requests("POST", "/slack/chat.postMessage")) == 1)
    assert bot.requests("POST", "/slack/chat.postMessage")[0].body["channel"] == "C1"


def test_slack_events_the_bot_does_not_answer_are_acknowledged_whatever_their_fields(bot: Bot) -> None:
    reaction = bot.slack({"type": "event_callback", "event_id": "Ev8", "event": {"type": "reaction_added"}})
    own_message = bot.slack(slack_event("Ev9", bot_id="B1", channel="", ts=""))
    rate_limited = bot.slack({"type": "app_rate_limited", "minute_rate_limited": 1518467820})
    assert reaction.json() == {"ok": True, "ignored": True}
    assert own_message.json() == {"ok": True, "ignored": True}
    assert rate_limited.json() == {"ok": True, "ignored": True}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "body is not a JSON object"),
        (2, "body is not a JSON object"),
        (discord_command(application_id=None), "interaction.application_id is missing"),
        (discord_command(token=None), "interaction.token is missing"),
        (discord_command(token=""), "interaction.token is empty"),
        (discord_command(application_id=7), "interaction.application_id is not a string"),
        (discord_command(data=["ask"]), "interaction.data is not an object"),
        (discord_command(data={"options": "q"}), "interaction.data.options is not a list of objects"),
        (discord_command(data={"options": ["q"]}), "interaction.data.options is not a list of objects"),
    ],
)
def test_a_malformed_signed_discord_interaction_gets_400(bot: Bot, payload: object, reason: str) -> None:
    r = bot.discord(payload)
    assert r.status_code == 400
    assert r.json() == {"error": f"malformed payload: {reason}"}


def test_a_rejected_discord_interaction_is_not_recorded(bot: Bot) -> None:
    assert bot.discord(discord_command("I5", token=None)).status_code == 400
    whole = bot.discord(discord_command("I5"))
    assert whole.status_code == 200
    assert whole.json() == {"type": 5}
    wait_until(lambda: len(bot.requests("PATCH", "/discord/webhooks/")) == 1)


def test_a_discord_interaction_outside_a_channel_shares_no_memory(bot: Bot) -> None:
    bot.discord(discord_command("I1", channel_id=None))
    bot.discord(discord_command("I2", token="T2", channel_id=None))
    wait_until(lambda: len(bot.requests("PATCH", "/discord/webhooks/")) == 2)
    wait_until(lambda: len(bot.conversations.history("discord:interaction:I1")) == 2)
    wait_until(lambda: len(bot.conversations.history("discord:interaction:I2")) == 2)
    assert bot.conversations.history("discord:") == []
    assert [m.content for m in bot.conversations.history("discord:interaction:I1")] == [
        "What buried Pompeii?",
        ANSWER,
    ]
