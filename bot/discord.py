"""Discord interactions endpoint: Ed25519-verified, PING/PONG, deferred answer, then edit + follow-ups.

Discord requires an answer within 3 seconds, so a command is acknowledged with a deferred
response (type 5) and the answer replaces it later through the interaction webhook; answers
longer than Discord's 2,000-character limit continue in follow-up messages. Each interaction
id is answered once: a signed request replayed within the timestamp window is refused.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from bot.access import Readers
from bot.chat import ChatService
from bot.conversations import ConversationStore
from bot.events import TurnEnd
from bot.replies import reply_text, split_message
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
PING, APPLICATION_COMMAND = 1, 2
PONG, DEFERRED_CHANNEL_MESSAGE = 1, 5
MAX_SKEW_S = 300
DISCORD_LIMIT = 2000


@dataclass(frozen=True)
class DiscordQuestion:
    application_id: str
    token: str
    channel: str  # the channel id, or "interaction:<id>" for one sent outside a channel
    text: str
    guild: str = ""  # the server: with the channel, what decides which knowledge bases answer

    @property
    def conversation(self) -> str:
        return f"discord:{self.channel}"


DiscordOutcome = WebhookOutcome[DiscordQuestion]


class DiscordInteractions:
    def __init__(
        self,
        public_key_hex: str,
        service: ChatService,
        conversations: ConversationStore,
        api_url: str = "https://discord.com/api/v10",
        readers: Readers | None = None,
    ) -> None:
        self.key = VerifyKey(bytes.fromhex(public_key_hex))
        self.service = service
        self.conversations = conversations
        self.readers = readers or Readers()
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
        """Verify and triage one interaction; each interaction id is answered once.

        Discord sends an interaction once; the same signed request again within the timestamp
        window is a replay and gets a 409. A malformed one gets a 400 and is not recorded.
        """
        if not self.verify(body, signature, timestamp):
            return DiscordOutcome(401, {"error": "invalid request signature"})
        try:
            return self._triage(json_object(body))
        except BadPayload as exc:
            return DiscordOutcome(400, rejected(exc))

    def _triage(self, payload: dict[str, Any]) -> DiscordOutcome:
        kind = payload.get("type")
        if kind == PING:
            return DiscordOutcome(200, {"type": PONG})
        if kind != APPLICATION_COMMAND:
            return DiscordOutcome(400, {"error": f"unsupported interaction type {kind}"})
        application_id = text_field(payload, "application_id", "interaction")
        token = text_field(payload, "token", "interaction")
        # Discord always sends the id; the token, as unique to the interaction, stands in without it
        # (hashed: the token itself lets whoever holds it post in the interaction's name).
        interaction_id = text_field(payload, "id", "interaction", required=False) or (
            "token-" + hashlib.sha256(token.encode()).hexdigest()[:32]
        )
        # Without a channel the interaction is its own conversation: no memory shared with others.
        channel_id = text_field(payload, "channel_id", "interaction", required=False)
        options = object_field(payload, "data", "interaction").get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
            raise BadPayload("interaction.data.options is not a list of objects")
        text = " ".join(str(o.get("value", "")) for o in options).strip()
        if not self.conversations.first_time(f"discord:{interaction_id}"):
            return DiscordOutcome(409, {"error": "interaction already handled"})
        channel = channel_id or f"interaction:{interaction_id}"
        guild = text_field(payload, "guild_id", "interaction", required=False)
        question = DiscordQuestion(application_id, token, channel, text, guild)
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

        readable = self.readers.readable(Principal.discord(question.guild, question.channel))
        answer_remembered(
            self.service, self.conversations, question.conversation, question.text, deliver, readable
        )
