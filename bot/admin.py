"""The web admin page at /admin: knowledge bases, their grants and API keys, for those who administer
them. Server-rendered HTML forms, no script, under the sign-in page's strict CSP.

Who sees what: a site admin (Person.admin) everything; a person with the admin role on some knowledge
bases those, their grants, their visibility, and the API keys bound only to them; anyone else signed
in is refused (403), and an anonymous visitor is sent to the sign-in page. Creating, renaming and
deleting knowledge bases is for site admins. Every post must carry the session's CSRF token and come
from this site (bot/auth.py `WebAuth.csrf_ok`); every change is audited under the person's label
(`user:ID`) by the state package. Everything shown is escaped: names are anyone's input.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.auth import CSRF_FIELD, NO_STORE, WebAuth
from bot.kb_admin import KnowledgeBaseAdmin
from state import ROLES, ApiKeyInfo, Grant, NotFound, Person, Principal, State, StateError, utcnow

log = logging.getLogger(__name__)
e = html.escape
# The grantees the page can add (API keys are bound when they are made): kind, label, placeholder.
GRANTEES = (
    ("user", "person", "username"),
    ("group", "group", "group name"),
    ("widget", "widget site", "site name"),
    ("slack", "Slack channel", "TEAM/CHANNEL"),
    ("discord", "Discord channel", "GUILD/CHANNEL"),
)
MAX_KEY_DAYS = 3650.0
Text = Annotated[str, Form(max_length=200)]
STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;
text-align:left;vertical-align:top}form.inline{display:inline}fieldset{margin:1rem 0;border:1px solid #ccc}
label{margin-right:.8rem}.secret{font-family:monospace;font-size:1.1rem;background:#f4f4f4;padding:.5rem;
word-break:break-all}.error{color:#b00020}nav{margin-bottom:1rem}"""


@dataclass(frozen=True)
class Admin:
    """Who is at the admin page: the person, their CSRF token, and the knowledge bases they administer."""

    person: Person
    csrf: str
    kbs: frozenset[str]

    @property
    def principal(self) -> Principal:
        return Principal.user(self.person)

    @property
    def site(self) -> bool:
        return self.person.admin

    @property
    def actor(self) -> str:
        return self.principal.label

    def form(self, action: str, fields: str, button: str, css: str = "", legend: str = "") -> str:
        """A form posting to `action` with the CSRF token; `fields` is HTML already escaped."""
        cls = f' class="{css}"' if css else ""
        inner = f'{fields}<button type="submit">{e(button)}</button>'
        if legend:
            inner = f"<fieldset><legend>{e(legend)}</legend>{inner}</fieldset>"
        token = f'<input type="hidden" name="{CSRF_FIELD}" value="{e(self.csrf)}">'
        return f'<form method="post" action="{e(action)}"{cls}>{token}{inner}</form>'

    def may_see_key(self, key: ApiKeyInfo) -> bool:
        return self.site or (bool(key.kbs) and key.kbs <= self.kbs)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{e(title)} · ragbot admin</title><style>{STYLE}</style></head>
<body><nav><a href="/admin">Administration</a> · <a href="/">Chat</a></nav>{body}</body></html>"""
    return HTMLResponse(document, status_code=status, headers=NO_STORE)


def problem(title: str, text: str, status: int, back: str = "/admin") -> HTMLResponse:
    body = (
        f'<h1>{e(title)}</h1><p class="error" role="alert">{e(text)}</p><p><a href="{e(back)}">Back</a></p>'
    )
    return page(title, body, status)


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


def kb_path(name: str) -> str:
    return f"/admin/kb?name={quote(name, safe='')}"


def when(at: datetime | None, empty: str = "never") -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else empty


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{e(name)}" value="{e(value)}">'


def options(values: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<option value="{e(v)}">{e(label)}</option>' for v, label in values)


def admin_router(auth: WebAuth, state: State, kbs: KnowledgeBaseAdmin) -> APIRouter:
    """/admin and its forms. Mount it with `AuthContext(app, auth)` (it finds the person through it)."""
    router = APIRouter(prefix="/admin")

    def administered(person: Person) -> frozenset[str]:
        principal = Principal.user(person)
        return frozenset(
            kb.name for kb in state.kbs.list() if state.access.role(principal, kb.name) == "admin"
        )

    def who(request: Request) -> Admin | Response:
        """The person at the page and what they administer, or the answer for someone who may not."""
        person = auth.person(request)
        session = auth.session(request)
        if person is None or session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return see_other(
                f"/auth/login?next={quote(target if request.method == 'GET' else '/admin', safe='')}"
            )
        admin = Admin(person, session.csrf, administered(person))
        if not admin.site and not admin.kbs:
            return problem("Not allowed", "You administer no knowledge base here.", 403, back="/")
        return admin

    def posted(request: Request, csrf: str) -> Admin | Response:
        """`who`, for a form post: the session's CSRF token and this site as its origin, too."""
        found = who(request)
        if isinstance(found, Response):
            return found
        cross_site = request.headers.get("sec-fetch-site", "") == "cross-site"
        if cross_site or not auth.csrf_ok(request, csrf):
            return problem("Form expired", "Missing or wrong CSRF token: reload the page and try again.", 403)
        return found

    def kb_refusal(admin: Admin, name: str) -> Response | None:
        """None when `admin` administers the knowledge base `name`, else the page saying no."""
        if name in admin.kbs or (admin.site and name in {k.name for k in kbs.summaries({name})}):
            return None
        if admin.site:
            return problem("Not found", f"No knowledge base {name!r}.", 404)
        return problem("Not allowed", "You do not administer this knowledge base.", 403)

    def site_only(admin: Admin) -> Response | None:
        return None if admin.site else problem("Not allowed", "Only a site admin may do this.", 403)

    def attempt(back: str, change: Callable[[], Response]) -> Response:
        """The change's answer, or the state's reason for refusing it, shown on a page."""
        try:
            return change()
        except NotFound as exc:
            return problem("Not found", str(exc), 404, back)
        except StateError as exc:
            return problem("Not done", str(exc), 400, back)

    # --- pages ---------------------------------------------------------------------------------
    @router.get("", response_model=None)
    def overview(request: Request) -> Response:
        admin = who(request)
        if isinstance(admin, Response):
            return admin
        return page("Administration", overview_body(admin))

    def overview_body(admin: Admin) -> str:
        listed = kbs.summaries(None if admin.site else set(admin.kbs))
        rows = "".join(
            f'<tr><td><a href="{e(kb_path(kb.name))}">{e(kb.name)}</a></td>'
            f"<td>{'public' if kb.public else 'private'}</td>"
            f"<td>{'' if kb.chunks is None else kb.chunks}</td></tr>"
            for kb in listed
        )
        kb_table = (
            f"<table><tr><th>Knowledge base</th><th>Read by</th><th>Chunks</th></tr>{rows}</table>"
            if rows
            else "<p>No knowledge bases yet.</p>"
        )
        create = ""
        if admin.site:
            create = admin.form(
                "/admin/kbs/create",
                '<label>Name <input name="name" required maxlength="64"></label><label><input '
                'type="checkbox" name="public" value="1"> public (everyone reads it)</label>',
                "Create",
                legend="New knowledge base",
            )
        return (
            f"<h1>Administration</h1><div>Signed in as {e(admin.person.name)}"
            f"{' (site admin)' if admin.site else ''}. "
            + admin.form("/auth/logout", "", "Sign out", "inline")
            + f"</div><h2>Knowledge bases</h2>{kb_table}{create}<h2>API keys</h2>{keys_section(admin)}"
        )

    def keys_section(admin: Admin) -> str:
        now = utcnow()
        rows = []
        for key in state.keys.list():
            if not admin.may_see_key(key):
                continue
            status = "active" if key.active(now) else ("revoked" if key.revoked_at else "expired")
            revoke = (
                admin.form("/admin/keys/revoke", hidden("id", str(key.id)), "Revoke", "inline")
                if key.revoked_at is None
                else when(key.revoked_at)
            )
            rows.append(
                f"<tr><td>{key.id}</td><td>{e(key.name)}</td><td>{e(', '.join(sorted(key.kbs)) or '-')}</td>"
                f"<td>{when(key.created_at)}</td><td>{when(key.expires_at)}</td><td>{status}</td>"
                f"<td>{revoke}</td></tr>"
            )
        table = (
            "<table><tr><th>Id</th><th>Name</th><th>Reads</th><th>Created</th><th>Expires</th><th>State</th>"
            f"<th>Revoke</th></tr>{''.join(rows)}</table>"
            if rows
            else "<p>No API keys.</p>"
        )
        names = sorted(admin.kbs) if not admin.site else [kb.name for kb in state.kbs.list()]
        boxes = "".join(
            f'<label><input type="checkbox" name="kb" value="{e(n)}"> {e(n)}</label>' for n in names
        )
        create = admin.form(
            "/admin/keys/create",
            f'<label>Name <input name="name" required maxlength="200"></label><p>Reads: {boxes}</p>'
            '<label>Expires after <input name="expires_days" type="number" min="1" step="1" size="5"> '
            "days (empty: never)</label>",
            "Create key",
            legend="New API key (for /v1)",
        )
        return table + create

    @router.get("/kb", response_model=None)
    def kb_page(request: Request, name: str = "") -> Response:
        admin = who(request)
        if isinstance(admin, Response):
            return admin
        if (refused := kb_refusal(admin, name)) is not None:
            return refused
        kb = state.kbs.get(name)
        public = kb is not None and kb.public
        rows = "".join(grant_row(admin, g) for g in state.access.grants(name)) if kb is not None else ""
        grants = (
            "<table><tr><th>Grantee</th><th>Role</th><th></th></tr>" + rows + "</table>"
            if rows
            else "<p>No grants.</p>"
        )
        add = admin.form(
            "/admin/kb/grant",
            hidden("kb", name)
            + f'<label>To <select name="kind">{options((k, label) for k, label, _ in GRANTEES)}</select>'
            '</label><label>Who <input name="grantee" required maxlength="200" placeholder="'
            f'{e(", ".join(p for _, _, p in GRANTEES))}"></label>'
            f'<label>Role <select name="role">{options((r, r) for r in ROLES)}</select></label>',
            "Grant",
            legend="Grant a role",
        )
        visibility = admin.form(
            "/admin/kb/public",
            hidden("kb", name) + hidden("public", "" if public else "1"),
            "Make private" if public else "Make public",
            "inline",
        )
        site = ""
        if admin.site and kbs.moves_chunks:
            site = (
                "<h2>Rename or delete</h2>"
                + admin.form(
                    "/admin/kb/rename",
                    hidden("kb", name) + '<label>New name <input name="new" required maxlength="64"></label>',
                    "Rename",
                )
                + admin.form(
                    "/admin/kb/delete",
                    hidden("kb", name)
                    + '<label><input type="checkbox" name="confirm" value="yes" required> delete its '
                    "documents, chunks and grants for good</label>",
                    "Delete",
                )
            )
        body = (
            f"<h1>Knowledge base {e(name)}</h1>"
            f"<div>{'Public: everyone reads it, signed in or not.' if public else 'Private: read by its grants only.'} "
            f"{visibility}</div><h2>Grants</h2>{grants}{add}{site}"
        )
        return page(f"Knowledge base {name}", body)

    def grant_row(admin: Admin, grant: Grant) -> str:
        who_ = f"{grant.grantee_kind} {grant.grantee_id}"
        if grant.grantee_kind == "user" and (person := state.people.get(int(grant.grantee_id))):
            who_ = f"person {person.name} (id {person.id})"
        elif grant.grantee_kind == "api_key" and (key := state.keys.get(int(grant.grantee_id))):
            who_ = f"API key {key.name} (id {key.id})"
        revoke = admin.form(
            "/admin/kb/revoke",
            hidden("kb", grant.kb) + hidden("kind", grant.grantee_kind) + hidden("grantee", grant.grantee_id),
            "Revoke",
            "inline",
        )
        return f"<tr><td>{e(who_)}</td><td>{e(grant.role)}</td><td>{revoke}</td></tr>"

    # --- knowledge bases -----------------------------------------------------------------------
    @router.post("/kbs/create", response_model=None)
    def create_kb(request: Request, csrf: Text = "", name: Text = "", public: Text = "") -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        if (refused := site_only(admin)) is not None:
            return refused

        def change() -> Response:
            kbs.create(name, public=bool(public), actor=admin.actor)
            return see_other(kb_path(name))

        return attempt("/admin", change)

    @router.post("/kb/public", response_model=None)
    def set_public(request: Request, csrf: Text = "", kb: Text = "", public: Text = "") -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        if (refused := kb_refusal(admin, kb)) is not None:
            return refused

        def change() -> Response:
            kbs.set_public(kb, bool(public), actor=admin.actor)
            return see_other(kb_path(kb))

        return attempt(kb_path(kb), change)

    @router.post("/kb/rename", response_model=None)
    def rename_kb(request: Request, csrf: Text = "", kb: Text = "", new: Text = "") -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        if (refused := site_only(admin) or kb_refusal(admin, kb)) is not None:
            return refused

        def change() -> Response:
            kbs.rename(kb, new, actor=admin.actor)
            return see_other(kb_path(new))

        return attempt(kb_path(kb), change)

    @router.post("/kb/delete", response_model=None)
    def delete_kb(request: Request, csrf: Text = "", kb: Text = "", confirm: Text = "") -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        if (refused := site_only(admin) or kb_refusal(admin, kb)) is not None:
            return refused
        if confirm != "yes":
            return problem("Not deleted", "Tick the box to confirm the delete.", 400, kb_path(kb))

        def change() -> Response:
            kbs.delete(kb, actor=admin.actor)
            return see_other("/admin")

        return attempt(kb_path(kb), change)

    # --- grants --------------------------------------------------------------------------------
    @router.post("/kb/grant", response_model=None)
    def grant(
        request: Request, csrf: Text = "", kb: Text = "", kind: Text = "", grantee: Text = "", role: Text = ""
    ) -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        if (refused := kb_refusal(admin, kb)) is not None:
            return refused
        if kind not in {k for k, _, _ in GRANTEES} or role not in ROLES:
            return problem("Not done", "Choose whom to grant and which role.", 400, kb_path(kb))

        def change() -> Response:
            grantee_id = grantee.strip()
            if kind == "user":
                person = state.people.by_username(grantee_id)
                if person is None and grantee_id.isdigit():
                    person = state.people.get(int(grantee_id))
                if person is None:
                    raise NotFound(f"no account {grantee_id!r}")
                grantee_id = str(person.id)
            state.access.grant(kb, kind, grantee_id, role, actor=admin.actor)  # type: ignore[arg-type]
            return see_other(kb_path(kb))

        return attempt(kb_path(kb), change)

    @router.post("/kb/revoke", response_model=None)
    def revoke(
        request: Request, csrf: Text = "", kb: Text = "", kind: Text = "", grantee: Text = ""
    ) -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        if (refused := kb_refusal(admin, kb)) is not None:
            return refused

        def change() -> Response:
            state.access.revoke(kb, kind, grantee, actor=admin.actor)  # type: ignore[arg-type]  # checked there
            return see_other(kb_path(kb))

        return attempt(kb_path(kb), change)

    # --- API keys ------------------------------------------------------------------------------
    @router.post("/keys/create", response_model=None)
    def create_key(
        request: Request,
        csrf: Text = "",
        name: Text = "",
        kb: Annotated[list[str] | None, Form()] = None,
        expires_days: Text = "",
    ) -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        wanted = frozenset(kb or [])
        if not wanted:
            return problem("Not done", "Choose at least one knowledge base the key reads.", 400)
        if not admin.site and not wanted <= admin.kbs:
            return problem("Not allowed", "You may bind a key only to knowledge bases you administer.", 403)
        expires_at = None
        if expires_days.strip():
            try:
                days = float(expires_days)
            except ValueError:
                days = 0.0
            if not 0 < days <= MAX_KEY_DAYS:
                return problem("Not done", f"Expiry must be 1 to {MAX_KEY_DAYS:.0f} days, or empty.", 400)
            expires_at = utcnow() + timedelta(days=days)

        def change() -> Response:
            info, secret = state.keys.create(name, kbs=wanted, expires_at=expires_at, created_by=admin.actor)
            body = (
                f"<h1>API key {e(info.name)} created</h1><p>It reads {e(', '.join(sorted(info.kbs)))}"
                f"{', until ' + when(info.expires_at) if info.expires_at else ''}. Send it as "
                "<code>Authorization: Bearer …</code> to <code>/v1/chat/completions</code>.</p>"
                "<p><strong>Copy the secret now: it is shown only once.</strong></p>"
                f'<p class="secret">{e(secret)}</p><p><a href="/admin">Back to administration</a></p>'
            )
            return page("API key created", body)

        return attempt("/admin", change)

    @router.post("/keys/revoke", response_model=None)
    def revoke_key(request: Request, csrf: Text = "", id: Text = "") -> Response:
        admin = posted(request, csrf)
        if isinstance(admin, Response):
            return admin
        key = state.keys.get(int(id)) if id.isdigit() else None
        if key is None or not admin.may_see_key(key):
            return problem("Not found", "No such API key among yours.", 404)

        def change() -> Response:
            state.keys.revoke(key.id, actor=admin.actor)
            return see_other("/admin")

        return attempt("/admin", change)

    return router
