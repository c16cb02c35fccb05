"""Slack Events API: verify, acknowledge at once, answer in the thread afterwards.

Slack expects a 2xx within 3 seconds and retries otherwise (X-Slack-Retry-Num), so the request
only verifies and records the event; the answer is produced after the response has gone out and
posted with chat.postMessage. Each event id is answered once, retries included; a signed
delivery that lacks what an answer needs gets a 400 and is not recorded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.access import Readers
from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import TurnEnd
from bot.replies import reply_text
from bot.webhook_turns import (
    BadPayload,
    WebhookOutcome,
    answer_remembered,
    json_object,
    object_field,
    rejected,
    text_field,
)
from state import Principal

log = logging.getLogger(__name__)
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")


@dataclass(frozen=True)
class SlackQuestion:
    channel: str
    thread_ts: str
    text: str
    team: str = ""  # the workspace: with the channel, what decides which knowledge bases answer

    @property
    def conversation(self) -> str:
        return f"slack:{self.channel}:{self.thread_ts}"


SlackOutcome = WebhookOutcome[SlackQuestion]


class SlackEvents:
    def __init__(
        self,
        signing_secret: str,
        bot_token: str | None,
        service: ChatService,
        conversations: ConversationStore,
        api_url: str = "https://slack.com/api/",
        readers: Readers | None = None,
    ) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.client = WebClient(token=bot_token, base_url=api_url)
        self.service = service
        self.conversations = conversations
        self.readers = readers or Readers()

    def receive(self, body: bytes, headers: dict[str, str]) -> SlackOutcome:
        """Verify and triage one delivery; never slow (no model calls here).

        A malformed delivery gets a 400 and is not recorded, so it is not mistaken for a retry later.
        """
        if not self.verifier.is_valid_request(body, headers):
            return SlackOutcome(401, {"error": "invalid Slack signature or stale timestamp"})
        try:
            return self._triage(json_object(body))
        except BadPayload as exc:
            return SlackOutcome(400, rejected(exc))

    def _triage(self, payload: dict[str, Any]) -> SlackOutcome:
        kind = payload.get("type")
        if kind == "url_verification":
            return SlackOutcome(200, {"challenge": text_field(payload, "challenge", "payload")})
        if kind != "event_callback":  # app_rate_limited and the like: nothing to answer
            return SlackOutcome(200, {"ok": True, "ignored": True})
        event = object_field(payload, "event", "payload", required=True)
        if event.get("type") not in ("app_mention", "message") or event.get("bot_id") or event.get("subtype"):
            return SlackOutcome(200, {"ok": True, "ignored": True})
        channel = text_field(event, "channel", "event")
        ts = text_field(event, "ts", "event")
        thread_ts = text_field(event, "thread_ts", "event", required=False) or ts
        text = _MENTION.sub("", text_field(event, "text", "event", required=False)).strip()
        event_id = text_field(payload, "event_id", "payload", required=False) or f"{channel}:{ts}"
        if not self.conversations.first_time(f"slack:{event_id}"):
            return SlackOutcome(200, {"ok": True, "duplicate": True})  # a retry: answered already
        team = text_field(payload, "team_id", "payload", required=False)
        return SlackOutcome(200, {"ok": True}, SlackQuestion(channel, thread_ts, text, team))

    def answer(self, question: SlackQuestion) -> None:
        """Answer in the thread; runs after the acknowledgement was sent."""

        def post(end: TurnEnd) -> bool:
            try:
                self.client.chat_postMessage(
                    channel=question.channel, thread_ts=question.thread_ts, text=reply_text(end)
                )
                return True
            except Exception:  # Slack down or token revoked: logged; the thread shows nothing new
                log.exception("could not post the answer to Slack")
                return False

        readable = self.readers.readable(Principal.slack(question.team, question.channel))
        answer_remembered(
            self.service, self.conversations, question.conversation, question.text, post, readable
        )
