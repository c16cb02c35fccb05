"""Discord interactions endpoint: Ed25519-verified, PING/PONG, deferred answer, then edit + follow-ups.

Discord requires an answer within 3 seconds, so a command is acknowledged with a deferred
response (type 5) and the answer replaces it later through the interaction webhook; answers
longer than Discord's 2,000-character limit continue in follow-up messages.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import httpx
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import TurnEnd
from bot.replies import reply_text, split_message
from bot.webhook_turns import WebhookOutcome, answer_remembered

log = logging.getLogger(__name__)
PING, APPLICATION_COMMAND = 1, 2
PONG, DEFERRED_CHANNEL_MESSAGE = 1, 5
MAX_SKEW_S = 300
DISCORD_LIMIT = 2000


@dataclass(frozen=True)
class DiscordQuestion:
    application_id: str
    token: str
    channel_id: str
    text: str

    @property
    def conversation(self) -> str:
        return f"discord:{self.channel_id}"


DiscordOutcome = WebhookOutcome[DiscordQuestion]


class DiscordInteractions:
    def __init__(
        self,
        public_key_hex: str,
        service: ChatService,
        conversations: ConversationStore,
        api_url: str = "https://discord.com/api/v10",
    ) -> None:
        self.key = VerifyKey(bytes.fromhex(public_key_hex))
        self.service = service
        self.conversations = conversations
        self.api_url = api_url.rstrip("/")

    def verify(self, body: bytes, signature: str, timestamp: str) -> bool:
        try:
            if abs(time.time() - int(timestamp)) > MAX_SKEW_S:
                return False  # a replayed request: Discord signs the timestamp, so it cannot be renewed
            self.key.verify(timestamp.encode() + body, bytes.fromhex(signature))
            return True
        except (BadSignatureError, ValueError):
            return False

    def receive(self, body: bytes, signature: str, timestamp: str) -> DiscordOutcome:
        if not self.verify(body, signature, timestamp):
            return DiscordOutcome(401, {"error": "invalid request signature"})
        try:
            payload = json.loads(body)
        except ValueError:
            return DiscordOutcome(400, {"error": "body is not JSON"})
        if payload.get("type") == PING:
            return DiscordOutcome(200, {"type": PONG})
        if payload.get("type") != APPLICATION_COMMAND:
            return DiscordOutcome(400, {"error": f"unsupported interaction type {payload.get('type')}"})
        options = (payload.get("data") or {}).get("options") or []
        text = " ".join(str(o.get("value", "")) for o in options).strip()
        question = DiscordQuestion(
            payload["application_id"], payload["token"], str(payload.get("channel_id", "")), text
        )
        return DiscordOutcome(200, {"type": DEFERRED_CHANNEL_MESSAGE}, question)

    def answer(self, question: DiscordQuestion) -> None:
        """Replace the deferred response with the answer, continuing in follow-ups past 2,000 chars."""

        def deliver(end: TurnEnd) -> bool:
            pieces = split_message(reply_text(end), DISCORD_LIMIT)
            hook = f"{self.api_url}/webhooks/{question.application_id}/{question.token}"
            try:
                with httpx.Client(timeout=15) as client:
                    client.patch(f"{hook}/messages/@original", json={"content": pieces[0]}).raise_for_status()
                    for piece in pieces[1:]:
                        client.post(hook, json={"content": piece}).raise_for_status()
                return True
            except httpx.HTTPError:
                log.exception("could not deliver the answer to Discord")
                return False

        answer_remembered(self.service, self.conversations, question.conversation, question.text, deliver)
