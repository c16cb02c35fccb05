"""Slack Events API: verify, acknowledge at once, answer in the thread afterwards.

Slack expects a 2xx within 3 seconds and retries otherwise (X-Slack-Retry-Num), so the request
only verifies and records the event; the answer is produced after the response has gone out and
posted with chat.postMessage. Each event id is answered once, retries included.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import TurnEnd
from bot.replies import reply_text
from bot.webhook_turns import WebhookOutcome, answer_remembered

log = logging.getLogger(__name__)
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")


@dataclass(frozen=True)
class SlackQuestion:
    channel: str
    thread_ts: str
    text: str

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
    ) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.client = WebClient(token=bot_token, base_url=api_url)
        self.service = service
        self.conversations = conversations

    def receive(self, body: bytes, headers: dict[str, str]) -> SlackOutcome:
        """Verify and triage one delivery; never slow (no model calls here)."""
        if not self.verifier.is_valid_request(body, headers):
            return SlackOutcome(401, {"error": "invalid Slack signature or stale timestamp"})
        try:
            payload = json.loads(body)
        except ValueError:
            return SlackOutcome(400, {"error": "body is not JSON"})
        if payload.get("type") == "url_verification":
            return SlackOutcome(200, {"challenge": payload.get("challenge", "")})
        event = payload.get("event") or {}
        event_id = payload.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
        if not self.conversations.first_time(f"slack:{event_id}"):
            return SlackOutcome(200, {"ok": True, "duplicate": True})  # a retry: answered already
        if event.get("type") not in ("app_mention", "message") or event.get("bot_id") or event.get("subtype"):
            return SlackOutcome(200, {"ok": True, "ignored": True})
        text = _MENTION.sub("", event.get("text", "")).strip()
        question = SlackQuestion(event["channel"], event.get("thread_ts") or event["ts"], text)
        return SlackOutcome(200, {"ok": True}, question)

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

        answer_remembered(self.service, self.conversations, question.conversation, question.text, post)
