"""The embeddable chat widget: one small page for an iframe, authorised by a per-site token.

The token in the iframe's URL is public by nature (anyone can read a page's HTML), so it only
names a site and gives access to the widget's chat; it is not the operator's API key. Which
origins may frame the page is enforced by the browser through CSP frame-ancestors.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator, Sequence

from bot.chat import ChatService
from bot.events import Answered, Delta, Failed, Queued, Refused, TurnEvent
from bot.evidence import evidence
from bot.feedback import RecentTurns, TurnRecord
from generation.protocol import ChatMessage
from retrieval.types import Scope

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ragbot</title>
<style>
 body{font:15px system-ui,sans-serif;margin:0;display:flex;flex-direction:column;height:100vh}
 #log{flex:1;overflow-y:auto;padding:12px}
 .m{margin:6px 0;padding:8px 10px;border-radius:8px;white-space:pre-wrap;max-width:90%}
 .user{background:#e8f0fe;margin-left:auto}.bot{background:#f3f3f3}.refused{background:#fff4e5}
 .err{background:#fde8e8}
 .cite{border:0;background:none;color:#1d4ed8;cursor:pointer;padding:0;font:inherit;text-decoration:underline}
 .srcs{font-size:13px;margin-top:6px;white-space:normal}
 .srcs details{margin:3px 0}.srcs summary{cursor:pointer}.srcs .active{outline:2px solid #1d4ed8;border-radius:4px}
 .passage{margin:4px 0 4px 6px;padding-left:6px;border-left:3px solid #ccc;white-space:pre-wrap;color:#333}
 mark{background:#fef08a}
 .fb{margin-top:6px;font-size:13px;white-space:normal}.fb button{padding:2px 8px;font-size:13px}
 .fb input{width:60%;padding:3px;font-size:13px}
 form{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}
 form input{flex:1;padding:8px;font:inherit}form button{padding:8px 14px;font:inherit}
</style></head><body>
<div id="log" aria-live="polite"></div>
<form id="f"><input id="q" autocomplete="off" placeholder="Ask a question" maxlength="__MAX__">
<button>Send</button></form>
<script>
const token = "__TOKEN__", log = document.getElementById("log"), history = [];
function el(tag, cls, text) {
  const d = document.createElement(tag); if (cls) d.className = cls; if (text !== undefined) d.textContent = text; return d;
}
function bubble(cls, text) { const d = el("div", "m " + cls, text); log.appendChild(d); log.scrollTop = log.scrollHeight; return d; }
function passage(text, spans) {
  const p = el("div", "passage"); let at = 0;
  for (const [a, b] of spans) { p.append(text.slice(at, a)); p.appendChild(el("mark", "", text.slice(a, b))); at = b; }
  p.append(text.slice(at)); return p;
}
function sources(out, row) {
  const box = el("div", "srcs"), cards = {};
  for (const s of row.sources) {
    const d = el("details"); const sum = el("summary", "", `[${s.number}] ${s.title}${s.cited ? "" : " (not cited)"}`);
    d.append(sum, passage(s.text, s.highlights)); box.appendChild(d); cards[s.number] = d;
  }
  const text = el("div"); const parts = row.text.split(/(\\[\\d{1,2}\\])/);
  for (const part of parts) {
    const m = part.match(/^\\[(\\d{1,2})\\]$/);
    if (m && cards[m[1]]) {
      const b = el("button", "cite", part); b.type = "button";
      b.onclick = () => { for (const c of Object.values(cards)) c.classList.remove("active");
        cards[m[1]].open = true; cards[m[1]].classList.add("active"); cards[m[1]].scrollIntoView({block: "nearest"}); };
      text.appendChild(b);
    } else text.append(part);
  }
  out.textContent = ""; out.append(text); if (row.sources.length) out.appendChild(box);
}
function feedback(out, turnId) {
  const fb = el("div", "fb"), up = el("button", "", "👍"), down = el("button", "", "👎");
  up.type = down.type = "button"; up.title = "Helpful"; down.title = "Not helpful";
  const send = (body) => fetch("widget/feedback", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(Object.assign({token, turn_id: turnId}, body))});
  const rate = (rating) => { send({rating}); fb.textContent = "Thanks. ";
    const c = el("input"); c.placeholder = "Comment (optional)"; const b = el("button", "", "Send"); b.type = "button";
    b.onclick = () => { if (c.value.trim()) { send({rating, comment: c.value}); fb.textContent = "Thanks: comment saved."; } };
    fb.append(c, b); };
  up.onclick = () => rate("up"); down.onclick = () => rate("down");
  fb.append(up, " ", down); out.appendChild(fb);
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
        if (last.type === "queued") out.textContent = last.message;
        else if (last.type === "delta") { text += last.text; out.textContent = text; }
        else if (last.type === "answered") sources(out, last);
        else if (last.type === "refused") { out.className = "m refused"; out.textContent = "🛡️ " + last.message; }
        else if (last.type === "failed") { out.className = "m err"; out.textContent = last.message; } }
    }
    if (last && last.turn_id) feedback(out, last.turn_id);
    if (last && last.type === "answered") history.push({role: "user", content: message}, {role: "assistant", content: last.text});
  } catch (err) { out.className = "m err"; out.textContent = "The chat service cannot be reached."; }
};
</script></body></html>
"""


def widget_page(token: str, max_chars: int) -> str:
    return PAGE.replace("__TOKEN__", html.escape(token, quote=True)).replace("__MAX__", str(max_chars))


def embed_snippet(base_url: str, token: str) -> str:
    return (
        f'<iframe src="{base_url.rstrip("/")}/widget?token={token}" title="ragbot" '
        'style="width:380px;height:560px;border:1px solid #ddd;border-radius:8px"></iframe>'
    )


def widget_events(
    service: ChatService,
    message: str,
    history: Sequence[ChatMessage],
    recent: RecentTurns | None = None,
    channel: str = "widget",
    *,
    readable: Scope,
) -> Iterator[str]:
    """The whole turn as NDJSON rows (see `widget_rows`)."""
    return widget_rows(service.turn(message, history, readable=readable), message, recent, channel)


def widget_rows(
    events: Iterable[TurnEvent], message: str, recent: RecentTurns | None = None, channel: str = "widget"
) -> Iterator[str]:
    """The turn as NDJSON rows the widget's script reads: one typed row per event.

    The last row carries a `turn_id` the widget sends back with feedback; the turn itself stays
    on the server (`recent`), so the stored answer is the one that was given. A source is named by
    its file name or URL, never by the server's path.
    """
    for event in events:
        row: dict[str, object]
        if isinstance(event, Queued):
            row = {"type": "queued", "ahead": event.ahead, "message": event.message}
        elif isinstance(event, Delta):
            row = {"type": "delta", "text": event.text}
        elif isinstance(event, Answered):
            items = {e.source.number: e for e in evidence(event.text, event.sources)}
            sources = [{"number": s.number, "title": s.title, "source": s.public_source, "cited": s.cited,
                        "score": s.score, "text": s.text,
                        "highlights": [[h.start, h.end] for h in items[s.number].highlights]}
                       for s in event.sources]  # fmt: skip
            row = {"type": "answered", "text": event.text, "sources": sources}
        elif isinstance(event, Refused):
            row = {"type": "refused", "message": event.message, "category": event.verdict.category.value,
                   "retracted": event.retracted}  # fmt: skip
        elif isinstance(event, Failed):
            row = {"type": "failed", "message": event.message, "kind": event.kind.value}
        else:
            continue
        if isinstance(event, Answered | Refused | Failed) and recent is not None:
            record = TurnRecord.from_end(channel, message, event)
            recent.add(record)
            row["turn_id"] = record.turn_id
        yield json.dumps(row) + "\n"
