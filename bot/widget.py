"""The embeddable chat widget: one small page for an iframe, authorised by a per-site token.

The token in the iframe's URL is public by nature (anyone can read a page's HTML), so it only
names a site and gives access to the widget's chat; it is not the operator's API key. Which
origins may frame the page is enforced by the browser through CSP frame-ancestors.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Sequence

from bot.chat import ChatService
from bot.events import Answered, Delta, Failed, Refused
from generation.protocol import ChatMessage

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ragbot</title>
<style>
 body{font:15px system-ui,sans-serif;margin:0;display:flex;flex-direction:column;height:100vh}
 #log{flex:1;overflow-y:auto;padding:12px}
 .m{margin:6px 0;padding:8px 10px;border-radius:8px;white-space:pre-wrap;max-width:90%}
 .user{background:#e8f0fe;margin-left:auto}.bot{background:#f3f3f3}.refused{background:#fff4e5}
 .src{font-size:12px;color:#555;margin-top:6px}.err{background:#fde8e8}
 form{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}
 input{flex:1;padding:8px;font:inherit}button{padding:8px 14px;font:inherit}
</style></head><body>
<div id="log" aria-live="polite"></div>
<form id="f"><input id="q" autocomplete="off" placeholder="Ask a question" maxlength="__MAX__">
<button>Send</button></form>
<script>
const token = "__TOKEN__", log = document.getElementById("log"), history = [];
function bubble(cls, text) {
  const d = document.createElement("div"); d.className = "m " + cls; d.textContent = text;
  log.appendChild(d); log.scrollTop = log.scrollHeight; return d;
}
document.getElementById("f").onsubmit = async (e) => {
  e.preventDefault();
  const q = document.getElementById("q"), message = q.value.trim(); if (!message) return;
  q.value = ""; bubble("user", message); const out = bubble("bot", "…");
  try {
    const r = await fetch("widget/chat", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token, message, history})});
    if (!r.ok) { out.className = "m err"; out.textContent = (await r.json()).detail; return; }
    const reader = r.body.getReader(), dec = new TextDecoder(); let buf = "", last = null, text = "";
    for (;;) {
      const {value, done} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream: true}); const lines = buf.split("\\n"); buf = lines.pop();
      for (const line of lines) { if (!line) continue; last = JSON.parse(line);
        if (last.type === "delta") { text += last.text; out.textContent = text; }
        else if (last.type === "answered") out.textContent = last.text;
        else if (last.type === "refused") { out.className = "m refused"; out.textContent = "🛡️ " + last.message; }
        else if (last.type === "failed") { out.className = "m err"; out.textContent = last.message; } }
    }
    if (last && last.sources && last.sources.length) {
      const s = document.createElement("div"); s.className = "src";
      s.textContent = "Sources: " + last.sources.map(x => `[${x.number}] ${x.title}`).join("  ");
      out.appendChild(s);
    }
    if (last && last.type === "answered") history.push({role: "user", content: message}, {role: "assistant", content: last.text});
  } catch (err) { out.className = "m err"; out.textContent = "The chat service cannot be reached."; }
};
</script></body></html>
"""


def widget_page(token: str, max_chars: int) -> str:
    return PAGE.replace("__TOKEN__", html.escape(token, quote=True)).replace("__MAX__", str(max_chars))


def frame_ancestors(origins: str) -> str:
    return f"frame-ancestors {origins.strip() or chr(39) + 'self' + chr(39)}"


def embed_snippet(base_url: str, token: str) -> str:
    return (
        f'<iframe src="{base_url.rstrip("/")}/widget?token={token}" title="ragbot" '
        'style="width:380px;height:560px;border:1px solid #ddd;border-radius:8px"></iframe>'
    )


def widget_events(service: ChatService, message: str, history: Sequence[ChatMessage]) -> Iterator[str]:
    """The turn as NDJSON rows the widget's script reads: one typed row per event."""
    for event in service.turn(message, history):
        row: dict[str, object]
        if isinstance(event, Delta):
            row = {"type": "delta", "text": event.text}
        elif isinstance(event, Answered):
            sources = [{"number": s.number, "title": s.title, "source": s.source, "cited": s.cited}
                       for s in event.sources]  # fmt: skip
            row = {"type": "answered", "text": event.text, "sources": sources}
        elif isinstance(event, Refused):
            row = {"type": "refused", "message": event.message, "category": event.verdict.category.value,
                   "retracted": event.retracted}  # fmt: skip
        elif isinstance(event, Failed):
            row = {"type": "failed", "message": event.message, "kind": event.kind.value}
        else:
            continue
        yield json.dumps(row) + "\n"
