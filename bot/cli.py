"""The `ragbot` command. Run `ragbot --help`, or `ragbot COMMAND --help` for each command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from bot import state_cli
from bot.config import Settings
from bot.events import Answered, Delta, Failed, Queued, Refused
from generation.protocol import GeneratorUnavailable
from retrieval.store import SchemaMismatch, StoreUnavailable
from retrieval.types import DEFAULT_KB, Method, Scope
from state import Principal

if TYPE_CHECKING:  # imported when needed: only `--vllm` starts a server
    from bot.factory import Components
    from generation.vllm_server import VLLMServer

DESCRIPTION = """\
ragbot: a chat assistant that answers from your documents, with citations.

Retrieval combines conversational condensation, multi-query rewriting and Multi-Head RAG
(per-attention-head embeddings stored as Qdrant named vectors, importance-weighted voting),
fused with a BM25 leg. With no servers configured everything runs on this machine: Qdrant in
local mode under --data-dir, an in-process generator, the web chat on 127.0.0.1.

Typical use:
  ragbot up                      ingest the bundled sample corpus and serve the chat
  ragbot ingest docs/            add or update documents (Markdown, text, HTML, PDF)
  ragbot ingest --kb hr hr/      ... into the knowledge base 'hr' (default: 'default')
  ragbot kb list                 knowledge bases, with their chunks and documents
  ragbot query "question"        show what retrieval finds, without generating
  ragbot ask "question"          answer in the terminal, with sources
  ragbot serve                   serve the web chat (upload documents and give feedback there)
  ragbot feedback --export f.jsonl   export answers people rated, with their comments

Generation: the embedded default runs Qwen2.5-Coder-1.5B-Instruct (a GGUF shipped on PyPI) in
llama.cpp inside this process; --vllm-url uses a vLLM server instead and --vllm starts one here. Moderation: the model labels each message
and its own answer (illegal, hate, advice by default; see --categories); flagged turns are refused.

Environment: RAGBOT_* variables set any option (e.g. RAGBOT_TOP_K=6, RAGBOT_VLLM_URL,
RAGBOT_OPERATOR_PROMPT); QDRANT_URL switches to a Qdrant server with no other change.

Exit codes: 0 ok, 1 error in the request, 2 bad option or unavailable backend, 3 refused.
"""


def sample_corpus() -> Path:
    return Path(str(resources.files("bot") / "sample_corpus"))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="local data directory (default: ./data)")
    p.add_argument("--collection", help="Qdrant collection name (default: ragbot)")
    p.add_argument("--qdrant-url", help="Qdrant server URL; default: the embedded store on disk")
    p.add_argument(
        "--store-engine",
        choices=["edge", "local"],
        help="embedded store: Qdrant Edge (default) or qdrant-client local mode (slower, older stores)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")


METHODS = """\
retrieval methods (--method, RAGBOT_METHOD):
  fusion       the default: BM25, the pooled sentence vector (`full`) and the attention-head votes
               (Multi-Head RAG), fused with weights chosen on development sets; a question longer
               than 48 tokens is also searched sentence by sentence, each chunk keeping its best
               sentence's score, so every topic of a many-topic question finds its own documents
  dense        standard RAG: nearest chunks to the pooled sentence vector
  bm25         lexical: BM25 over stemmed words (Qdrant sparse vectors with IDF)
  hybrid       reciprocal rank fusion of dense and bm25 (the usual hybrid baseline)
  mrag         Multi-Head RAG alone: each last-layer attention head searches its own space and
               votes, weighted by head importance; the pooled vector votes too
  mrag-hybrid  reciprocal rank fusion of mrag and bm25 (the default before fusion)
The README's retrieval tables compare them on six evaluation sets.
"""


def _retrieval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--top-k", type=int, help="chunks to retrieve (default 4)")
    p.add_argument(
        "--method",
        choices=[m.value for m in Method],
        help="retrieval method (default fusion; see the list below)",
    )
    p.add_argument("--n-queries", type=int, help="LLM rewrites fused with RRF (default 0: off)")


def _generator_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation and moderation")
    g.add_argument("--model", dest="generator_model", help="embedded model: a shipped name or a .gguf file")
    g.add_argument("--vllm-url", help="use a running vLLM (OpenAI-compatible) server at this URL")
    g.add_argument(
        "--vllm",
        action="store_true",
        help="start a local vLLM server (from .venv-vllm) for --model and generate through it",
    )
    g.add_argument("--moderation", choices=["self", "off"], help="moderation classifier")
    g.add_argument(
        "--categories",
        dest="moderation_categories",
        help="enforced categories, comma-separated: illegal, hate, advice, sexual, selfharm, all, none",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragbot", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "ingest",
        help="add or update documents",
        description="Load, chunk, embed and store files. "
        "Re-ingesting an unchanged file adds nothing; a changed file replaces its old chunks.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="files or directories")
    p.add_argument("--kb", default=DEFAULT_KB, help=f"knowledge base to ingest into (default: {DEFAULT_KB})")
    p.add_argument("--chunk-size", type=int, help="chunk size in embedder tokens (default 200)")
    p.add_argument("--chunk-overlap", type=int, help="overlap in tokens (default 30)")
    _common(p)

    p = sub.add_parser(
        "query",
        help="show retrieved chunks for a question (no generation)",
        description="Show what retrieval finds for a question, with scores, without generating.",
        epilog=METHODS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("question")
    _kb_filter(p)
    _retrieval_flags(p)
    _common(p)

    p = sub.add_parser("ask", help="answer one question in the terminal, streaming, with sources")
    p.add_argument("question")
    _kb_filter(p)
    _retrieval_flags(p)
    _generator_flags(p)
    _common(p)

    p = sub.add_parser("serve", help="serve the web chat")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    _retrieval_flags(p)
    _generator_flags(p)
    _common(p)

    p = sub.add_parser("up", help="ingest the bundled sample corpus, then serve the web chat")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    _generator_flags(p)
    _common(p)

    p = sub.add_parser(
        "feedback",
        help="summarise or export feedback on answers",
        description="Feedback given in the web chat and the widget (👍/👎, comments), stored with the "
        "turn it is about (question, answer, sources, moderation verdict, timings) in "
        "the state database (RAGBOT_STATE_URL). Without --export, print counts.",
    )
    p.add_argument("--export", type=Path, metavar="OUT.jsonl", help="write one JSON object per rated answer")
    _common(p)

    p = sub.add_parser("info", help="show the collection's size and head importance")
    _common(p)
    p = sub.add_parser("reset", help="delete the collection (documents must be ingested again)")
    _common(p)
    p = sub.add_parser(
        "copy",
        help="copy the embedded collection to a Qdrant server (or another engine), without re-embedding",
        description="Copy every chunk (vectors, BM25 vector, payload) and the collection's metadata from the "
        "embedded store to the Qdrant server at --to-qdrant-url (or into --to-store-engine on this machine). "
        "Then set QDRANT_URL to use the server.",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--to-qdrant-url", help="target Qdrant server URL")
    g.add_argument("--to-store-engine", choices=["edge", "local"], help="target embedded engine")
    p.add_argument("--to-collection", help="target collection name (default: the same)")
    _common(p)

    state_cli.add_parsers(sub, _common)  # users, groups, grant, revoke, keys, audit
    _kb_parser(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    keys = (
        "data_dir",
        "collection",
        "qdrant_url",
        "store_engine",
        "chunk_size",
        "chunk_overlap",
        "top_k",
        "method",
        "n_queries",
        "host",
        "port",
        "generator_model",
        "vllm_url",
        "moderation",
        "moderation_categories",
    )
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.command:
        build_parser().print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        settings = settings_from(args)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError: a bad option or variable
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = None
    try:
        if getattr(args, "vllm", False):
            server = _start_vllm(settings)
            settings = settings.model_copy(update={"vllm_url": server.url, "vllm_model": server.name})
        return _run(args, settings)
    except (StoreUnavailable, SchemaMismatch, GeneratorUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if server:
            server.stop()


def _start_vllm(settings: Settings) -> VLLMServer:
    from generation.models import transformers_dir
    from generation.vllm_server import VLLMServer, VLLMServerError

    model_dir = transformers_dir(settings.generator_model)
    print(f"starting vLLM for {settings.generator_model} (about a minute on a CPU)...", flush=True)
    try:
        return VLLMServer(model_dir, name=settings.generator_model).start()
    except VLLMServerError as exc:
        raise GeneratorUnavailable(str(exc)) from exc


def _feedback(settings: Settings, export: Path | None) -> int:
    """Counts, or every feedback row with its turn as JSON lines (no store or model is opened)."""
    from bot.conversations import ConversationStore
    from bot.feedback import Rating
    from state import open_state

    with open_state(settings.state_db_url) as state:
        rows = ConversationStore(state, import_from=settings.conversations_path).feedback()
    if export:
        export.parent.mkdir(parents=True, exist_ok=True)
        with export.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(row.model_dump_json() + "\n")
        print(f"exported {len(rows)} feedback row(s) to {export}")
        return 0
    up = sum(r.rating is Rating.UP for r in rows)
    down = sum(r.rating is Rating.DOWN for r in rows)
    comments = sum(bool(r.comment) for r in rows)
    print(f"{len(rows)} answers with feedback: {up} 👍, {down} 👎, {comments} with comments")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "feedback":
        return _feedback(settings, args.export)
    if args.command in state_cli.COMMANDS:
        return state_cli.run(args, settings)
    from bot.access import register_knowledge_bases
    from bot.factory import Components

    parts = Components(settings)
    if args.command == "kb":
        return _kb_command(parts, args)
    if args.command in ("ingest", "up"):
        paths = args.paths if args.command == "ingest" else [sample_corpus()]
        kb = args.kb if args.command == "ingest" else DEFAULT_KB
        try:
            ingestor = parts.ingestor_for(kb)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = ingestor.ingest_paths(paths)
        register_knowledge_bases(parts.state, parts.store)  # a new one is private until granted
        print(
            f"ingested {report.files_ok} file(s) ({report.files_unchanged} unchanged): "
            f"+{report.chunks_added} / -{report.chunks_removed} chunks; "
            f"{parts.store.count(Scope.of(kb))} chunks in knowledge base '{kb}' of '{settings.collection}'"
        )
        for err in report.errors:
            print(f"error: {err}", file=sys.stderr)
        if args.command == "ingest":
            return 1 if report.errors and not report.files_ok and not report.files_unchanged else 0
    if args.command == "info":
        if not parts.store.exists():
            print(f"collection '{settings.collection}' does not exist yet: run `ragbot ingest`")
            return 1
        meta = parts.store.metadata()
        print(f"collection '{settings.collection}' at {parts.store.location}: {parts.store.count()} chunks")
        print(f"embedder: {meta.get('embedder')}, heads: {meta.get('n_heads')}")
        for info in parts.store.kbs().values():
            weights = info.head_importance or ()
            print(f"knowledge base '{info.name}' head importance: " + " ".join(f"{w:.2f}" for w in weights))
        return 0
    if args.command == "copy":
        return _copy(parts, args)
    if args.command == "reset":
        parts.store.drop()
        print(f"deleted collection '{settings.collection}'")
        return 0
    if args.command == "serve" and not parts.store.exists():
        print(
            f"collection '{settings.collection}' is empty: upload documents in the browser or run `ragbot ingest`"
        )
    elif not parts.store.exists():
        print(
            f"error: collection '{settings.collection}' is empty: run `ragbot ingest PATH` first",
            file=sys.stderr,
        )
        return 1
    if args.command == "query":
        rs = parts.retrieval_settings()
        ranked = parts.retriever.rank([args.question], rs, _readable(parts, args))
        chunks = parts.store.chunks(i for i, _ in ranked)
        for n, (cid, score) in enumerate(ranked, start=1):
            c = chunks[cid]
            print(f"[{n}] {score:.4f}  {c.title}  ({c.source})\n    {c.text[:200].replace(chr(10), ' ')}")
        return 0
    if args.command == "ask":
        return _ask(parts, args.question, _readable(parts, args))
    from bot.app import serve

    serve(parts)
    return 0


def _copy(parts: Components, args: argparse.Namespace) -> int:
    from retrieval.store import VectorStore, copy_collection

    s = parts.settings
    if not parts.store.exists():
        print(f"error: collection '{s.collection}' does not exist at {parts.store.location}", file=sys.stderr)
        return 1
    name = args.to_collection or s.collection
    if args.to_qdrant_url:
        target = VectorStore(name, url=args.to_qdrant_url, api_key=s.qdrant_api_key)
    else:
        target = VectorStore(name, path=s.qdrant_path, engine=args.to_store_engine)
    if target.location == parts.store.location and name == s.collection:
        print("error: source and target are the same collection", file=sys.stderr)
        return 2
    n = copy_collection(parts.store, target)
    print(f"copied {n} chunks from {parts.store.location} to '{name}' at {target.location}")
    target.close()
    return 0


# ---- knowledge bases: ragbot kb list|delete|rename ------------------------------------------------
def _kb_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kb",
        help="create, list, share, delete or rename knowledge bases",
        description="Knowledge bases split the collection's documents: `ragbot ingest --kb NAME` writes into one, "
        "and each door reads only the ones its asker may (`ragbot grant`). A public knowledge base is read by "
        f"everyone, signed in or not; '{DEFAULT_KB}' starts public, any other private. Deleting removes exactly a "
        "knowledge base's chunks, its grants and the files uploaded into it in the web chat; "
        "renaming keeps every chunk and grant, re-embedding nothing.",
    )
    actions = p.add_subparsers(dest="kb_action", metavar="ACTION", required=True)
    a = actions.add_parser("list", help="knowledge bases with their chunk and document counts")
    _common(a)
    a = actions.add_parser("create", help="create an empty knowledge base (ingest creates one too)")
    a.add_argument("name")
    a.add_argument("--public", action="store_true", help="readable by everyone, signed in or not")
    _common(a)
    for action, help_text in (
        ("public", "make readable by everyone"),
        ("private", "readable by grants only"),
    ):
        a = actions.add_parser(action, help=help_text)
        a.add_argument("name")
        _common(a)
    a = actions.add_parser("delete", help="delete a knowledge base, its chunks and its grants")
    a.add_argument("name")
    _common(a)
    a = actions.add_parser("rename", help="rename a knowledge base (its chunks and grants are kept)")
    a.add_argument("old")
    a.add_argument("new")
    _common(a)


def _kb_command(parts: Components, args: argparse.Namespace) -> int:
    """The store holds a knowledge base's chunks, the state database its name, visibility and grants:
    each action changes both, through the one KnowledgeBaseAdmin the web admin page uses too."""
    from bot.kb_admin import KnowledgeBaseAdmin, StoreChunks
    from state import StateError

    store, actor = parts.store, f"cli:{state_cli.login()}"
    admin = KnowledgeBaseAdmin(parts.state.kbs, StoreChunks(store), parts.settings.uploads_dir)
    if args.kb_action == "list":
        for kb in admin.summaries():
            docs = store.sources(Scope.of(kb.name)) if store.exists() else []
            chunks = sum(s.committed for s in docs)  # stored and searchable: pending ones are not counted
            shown = "public" if kb.public else "private"
            print(f"{kb.name}\t{chunks} chunks\t{sum(1 for s in docs if s.committed)} documents\t{shown}")
        return 0
    try:
        if args.kb_action == "create":
            admin.create(args.name, public=args.public, actor=actor)
            print(f"created knowledge base '{args.name}' ({'public' if args.public else 'private'})")
        elif args.kb_action in ("public", "private"):
            admin.set_public(args.name, args.kb_action == "public", actor=actor)
            print(f"knowledge base '{args.name}' is now {args.kb_action}")
        elif args.kb_action == "delete":
            n = admin.delete(args.name, actor=actor)
            print(f"deleted knowledge base '{args.name}' ({n} chunks)")
        else:
            admin.rename(args.old, args.new, actor=actor)
            print(f"renamed knowledge base '{args.old}' to '{args.new}'")
    except (KeyError, ValueError, StateError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    return 0


# ---- answering in the terminal --------------------------------------------------------------------
def _kb_filter(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kb",
        action="append",
        metavar="NAME",
        help="search only this knowledge base (repeatable; default: all)",
    )


def _readable(parts: Components, args: argparse.Namespace) -> Scope:
    """The operator at the terminal reads every knowledge base, or those named with --kb."""
    return parts.readers.readable(Principal.cli(), wanted=args.kb)


def _ask(parts: Components, question: str, readable: Scope) -> int:
    """Stream one answer to the terminal; the exit code says how the turn ended."""
    for event in parts.chat_service().turn(question, readable=readable):
        if isinstance(event, Queued):
            print(event.message, file=sys.stderr)
        elif isinstance(event, Delta):
            print(event.text, end="", flush=True)
        elif isinstance(event, Failed):
            print(f"error: {event.message}", file=sys.stderr)
            return 1
        elif isinstance(event, Refused):
            print(("\n\n" if event.retracted else "") + event.message)
            return 3
        elif isinstance(event, Answered):
            print("\n\nSources (* cited):")
            for s in event.sources:
                print(f"  [{s.number}]{'*' if s.cited else ' '} {s.title} ({s.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
