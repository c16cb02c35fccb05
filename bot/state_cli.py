"""`ragbot users|groups|grant|revoke|keys|audit`: accounts, permissions, API keys and the audit log
from the shell. The operator at the shell is a site admin (`Principal.cli`); each change is
audited under `cli:<login name>`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from bot.config import Settings
from state import ROLES, GranteeKind, State, StateError, open_state, utcnow

COMMANDS = ("users", "groups", "grant", "revoke", "keys", "audit")
LINK_PATH = "/auth/link/"
GRANTEES: tuple[tuple[str, GranteeKind, str], ...] = (
    ("--user", "user", "a person: username or numeric id"),
    ("--group", "group", "a group name (from the identity provider or `ragbot groups set`)"),
    ("--widget", "widget", "a widget site name (as in RAGBOT_WIDGET_TOKENS)"),
    ("--api-key", "api_key", "an API key's id (`ragbot keys list`)"),
    ("--slack", "slack", "a Slack channel: TEAM/CHANNEL"),
    ("--discord", "discord", "a Discord channel: GUILD/CHANNEL"),
)


def add_parsers(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    users = sub.add_parser("users", help="add and list accounts, make one-time sign-in links")
    users_sub = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = users_sub.add_parser("add", help="create a local account")
    p.add_argument("name", help="username")
    p.add_argument("--admin", action="store_true", help="site admin: admin on every knowledge base")
    p.add_argument("--display-name", help="name shown in the chat (default: the username)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin; without it, the account signs in "
        "only through `ragbot users link`",
    )
    common(p)
    p = users_sub.add_parser("link", help="print a one-time sign-in link path for an account")
    p.add_argument("name", help="username or numeric id")
    p.add_argument("--minutes", type=float, default=15, help="minutes the link works (default 15)")
    common(p)
    p = users_sub.add_parser("list", help="list accounts with their groups")
    common(p)

    groups = sub.add_parser("groups", help="set a local account's groups")
    groups_sub = groups.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = groups_sub.add_parser("set", help="replace a person's groups (none: clear them)")
    p.add_argument("name", help="username or numeric id")
    p.add_argument("groups", nargs="*", metavar="GROUP")
    common(p)

    for command, verb in (("grant", "give"), ("revoke", "take away")):
        p = sub.add_parser(command, help=f"{verb} a role on a knowledge base")
        p.add_argument("kb", help="knowledge base name")
        who = p.add_mutually_exclusive_group(required=True)
        for flag, _kind, text in GRANTEES:
            who.add_argument(flag, metavar="ID", help=text)
        if command == "grant":
            p.add_argument("--role", choices=ROLES, default="read", help="default read")
        common(p)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = keys_sub.add_parser("create", help="create a key; its secret is printed once")
    p.add_argument("name", help="what the key is for")
    p.add_argument("--kb", action="append", required=True, help="a knowledge base it reads (repeat)")
    p.add_argument("--expires", type=float, metavar="DAYS", help="days until it stops working")
    common(p)
    p = keys_sub.add_parser("list", help="list keys (never their secrets)")
    common(p)
    p = keys_sub.add_parser("revoke", help="stop a key working")
    p.add_argument("id", type=int)
    common(p)

    p = sub.add_parser("audit", help="show or export the audit log")
    p.add_argument(
        "--export",
        nargs="?",
        const="-",
        type=str,
        metavar="FILE",
        help="write every entry as JSON lines to FILE (default: stdout)",
    )
    common(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one of COMMANDS; 1 with a message when the state refuses (unknown name, duplicate...)."""
    with open_state(settings.state_db_url) as state:
        try:
            return _run(state, args, f"cli:{login()}")
        except StateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


def login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _person_id(state: State, name: str) -> int:
    person = state.people.get(int(name)) if name.isdigit() else state.people.by_username(name)
    if person is None:
        raise StateError(f"no account {name!r}")
    return person.id


def _run(state: State, args: argparse.Namespace, actor: str) -> int:
    command, action = args.command, getattr(args, "action", None)
    if command == "users" and action == "add":
        password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
        person = state.people.create_local(
            args.name, password, name=args.display_name, admin=args.admin, actor=actor
        )
        print(f"created {args.name} (id {person.id}{', site admin' if person.admin else ''})")
        return 0
    if command == "users" and action == "link":
        ttl = timedelta(minutes=args.minutes).total_seconds()
        token = state.people.sign_in_link(_person_id(state, args.name), ttl, actor=actor)
        print(f"{LINK_PATH}{token}")
        return 0
    if command == "users":
        for person in state.people.list():
            fields = [
                str(person.id),
                person.name,
                person.email or "-",
                ",".join(sorted(person.groups)) or "-",
            ]
            print("\t".join([*fields, *(["admin"] if person.admin else [])]))
        return 0
    if command == "groups":
        person = state.people.set_groups(_person_id(state, args.name), args.groups, actor=actor)
        print(f"{args.name}: {', '.join(sorted(person.groups)) or 'no groups'}")
        return 0
    if command in ("grant", "revoke"):
        kind, grantee = next((k, v) for f, k, _ in GRANTEES if (v := getattr(args, _dest(f))))
        if kind == "user":
            grantee = str(_person_id(state, grantee))
        if command == "grant":
            state.access.grant(args.kb, kind, grantee, args.role, actor=actor)
            print(f"{kind} {grantee}: {args.role} on {args.kb}")
        elif state.access.revoke(args.kb, kind, grantee, actor=actor):
            print(f"{kind} {grantee}: no role on {args.kb}")
        else:
            print(f"{kind} {grantee} had no role on {args.kb}")
        return 0
    if command == "keys" and action == "create":
        expires = utcnow() + timedelta(days=args.expires) if args.expires else None
        info, secret = state.keys.create(args.name, kbs=args.kb, expires_at=expires, created_by=actor)
        print(f"key {info.id} ({info.name}) reads {', '.join(sorted(info.kbs))}")
        print("secret (shown once, store it now):")
        print(secret)
        return 0
    if command == "keys" and action == "revoke":
        state.keys.revoke(args.id, actor=actor)
        print(f"key {args.id} revoked")
        return 0
    if command == "keys":
        now = utcnow()
        for key in state.keys.list():
            status = "active" if key.active(now) else ("revoked" if key.revoked_at else "expired")
            until = key.expires_at.date().isoformat() if key.expires_at else "never"
            print(f"{key.id}\t{key.name}\t{','.join(sorted(key.kbs)) or '-'}\texpires {until}\t{status}")
        return 0
    events = state.audit.export()
    if args.export is None:
        for e in events:
            print(
                f"{e.at.isoformat(timespec='seconds')}  {e.actor}  {e.action}  {e.target}  {e.detail}".rstrip()
            )
        return 0
    lines = [json.dumps({**asdict(e), "at": e.at.isoformat()}, ensure_ascii=False) + "\n" for e in events]
    if args.export == "-":
        sys.stdout.writelines(lines)
        return 0
    path = Path(args.export)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    print(f"exported {len(lines)} audit entries to {path}")
    return 0
