"""The ``anymodal`` command. Heavy imports happen inside commands so ``--help`` is instant.

Exit codes: 0 done, 1 the task failed, 2 usage error (bad flags, missing files, bad plan).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Wrong input from the user: printed as ``error: ...`` with exit code 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anymodal",
        description="A local any-to-any multimodal assistant.",
        epilog="Examples:\n  anymodal chat\n"
        '  anymodal run "make it 256 wide" -a photo.jpg --out results/\n'
        "  anymodal run --plan plan.json -a a.png -a b.png --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run one task and exit",
        description="Run one task. PROMPT '-' reads it from stdin.",
    )
    run.add_argument("prompt", nargs="?", default="", help="what to do ('-' reads stdin)")
    run.add_argument(
        "-a",
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file (repeatable; $a1, $a2 ... in plans)",
    )
    run.add_argument("--plan", metavar="FILE", help="run this plan (JSON) instead of planning")
    run.add_argument("--out", metavar="DIR", help="copy the resulting artifacts here")
    run.add_argument("--json", action="store_true", help="print one JSON object as the result")
    run.add_argument("--session", metavar="ID", help="continue this session with a new turn")
    run.add_argument("--resume", metavar="ID", help="resume an interrupted session")
    answer = run.add_mutually_exclusive_group()
    answer.add_argument("--yes", action="store_true", help="approve steps that ask for it")
    answer.add_argument("--no", action="store_true", help="refuse steps that ask for it")
    run.add_argument("--timeout", type=float, metavar="S", help="seconds each step may run")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress display")

    pl = sub.add_parser("plan", help="print the plan for a request without running it")
    pl.add_argument("prompt", help="the request ('-' reads stdin)")
    pl.add_argument(
        "-a",
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file (repeatable)",
    )
    pl.add_argument(
        "--tools",
        metavar="CATALOG.json",
        help="plan against this tool catalog instead of the registered tools",
    )
    pl.add_argument("--json", action="store_true", help="print the plan as JSON only")

    chat = sub.add_parser("chat", help="talk to anymodal in the terminal")
    chat.add_argument("--session", metavar="ID", help="continue this session")
    chat.add_argument(
        "--plain",
        action="store_true",
        help="a plain line-by-line chat instead of the full-screen app (also used when the "
        "terminal is not interactive or Textual is not installed)",
    )

    tools = sub.add_parser("tools", help="the tools the planner can use")
    tools_sub = tools.add_subparsers(dest="action", required=True, metavar="ACTION")
    tl = tools_sub.add_parser("list", help="name, description, schema and modalities")
    tl.add_argument("--json", action="store_true")

    ses = sub.add_parser("sessions", help="list, show, export or delete sessions")
    ses_sub = ses.add_subparsers(dest="action", required=True, metavar="ACTION")
    sl = ses_sub.add_parser("list", help="recent sessions")
    sl.add_argument("--json", action="store_true")
    sl.add_argument("-n", type=int, default=30, help="how many")
    ss = ses_sub.add_parser("show", help="a session's messages and artifacts")
    ss.add_argument("id")
    ss.add_argument("--json", action="store_true")
    se = ses_sub.add_parser("export", help="write Markdown and JSON with the artifacts")
    se.add_argument("id")
    se.add_argument("--out", metavar="DIR", default=".", help="folder to write to")
    sd = ses_sub.add_parser("delete", help="delete a session and its artifacts")
    sd.add_argument("id")

    srv = sub.add_parser(
        "serve",
        help="the HTTP and WebSocket API for other programs (needs the serve extra)",
        description="Serve the API on HOST:PORT. Every route but /v1/health needs the bearer "
        "token: made on first run and kept (owner-only) in the token file, or given with "
        "--token for this run only.",
    )
    srv.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine)")
    srv.add_argument("--port", type=int, help="TCP port (default 8765; 0 picks a free one)")
    srv.add_argument("--token", metavar="T", help="use this token (16+ characters), not the file")

    from assistant import memory_cli, models_cli

    models_cli.register(sub)
    memory_cli.register(sub)

    mcp = sub.add_parser(
        "mcp",
        help="serve the tools to MCP clients over stdio (Model Context Protocol)",
        description="Serve anymodal's tools over stdio to an MCP client (Claude Desktop, IDE "
        "agents). Each call runs as a one-step plan; files are passed as absolute paths.",
    )
    mcp.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="only files under DIR may be given to tools (repeatable; default: any file)",
    )

    cfg = sub.add_parser("config", help="where config and data live, and the values in force")
    cfg.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {
        "run": cmd_run,
        "plan": cmd_plan,
        "chat": cmd_chat,
        "tools": cmd_tools,
        "sessions": cmd_sessions,
        "models": cmd_models,
        "memory": cmd_memory,
        "config": cmd_config,
        "serve": cmd_serve,
        "mcp": cmd_mcp,
    }[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _assistant(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from assistant.api import Assistant

    try:
        return Assistant(**overrides)
    except ValidationError as exc:
        raise UsageError(f"bad configuration: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from assistant.api import AttachmentError, SessionNotFound
    from assistant.plan import PlanError
    from assistant.render import render_events

    if args.resume and (args.prompt or args.attach or args.plan):
        raise UsageError("--resume continues a session as it was; give no prompt, files or plan")
    prompt = sys.stdin.read().strip() if args.prompt == "-" else args.prompt
    if not args.resume and not prompt.strip() and not args.plan:
        raise UsageError(
            "give a prompt (or '-' to read it from stdin), --plan FILE, or --resume ID"
        )
    for f in args.attach:
        if not Path(f).is_file():
            raise UsageError(f"attachment not found: {f}")
    assistant = _assistant(step_timeout=args.timeout)
    try:
        if args.resume:
            approve = True if args.yes else False if args.no else None
            events = assistant.stream_resume(args.resume, approve=approve)
        else:
            plan = Path(args.plan) if args.plan else None
            events = assistant.stream(prompt, args.attach, session=args.session, plan=plan)
        result = _consume(events, args, render_events)
        if result.status == "interrupted" and (args.yes or args.no):
            events = assistant.stream_resume(result.session, approve=bool(args.yes))
            result = _consume(events, args, render_events)
    except (AttachmentError, PlanError, SessionNotFound) as exc:
        raise UsageError(str(exc)) from None
    finally:
        assistant.close()  # background indexing into the memory finishes before we exit
    copied = []
    if args.out:
        store = assistant.store(result.session)
        copied = [str(store.copy_out(a, args.out)) for a in result.artifacts]
    if args.json:
        out = result.to_json()
        if copied:
            out["copied"] = copied
        print(json.dumps(out, indent=2, default=str))
    else:
        print(result.text)
        for path in copied:
            print(f"saved {path}")
        print(f"session {result.session}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _consume(events: Any, args: argparse.Namespace, render_events: Any) -> Any:
    from assistant.events import Final

    if args.quiet or args.json:
        result = None
        for ev in events:
            if isinstance(ev, Final):
                result = ev.result
        return result
    return render_events(events, _console())


def cmd_plan(args: argparse.Namespace) -> int:
    import tempfile
    import time

    from assistant.api import AttachmentError, attach
    from assistant.catalog_tools import load_catalog
    from assistant.plan import PlanError
    from assistant.planners.base import make_planner
    from assistant.planning import make_plan
    from tools.artifact import ArtifactStore
    from tools.errors import ToolError

    prompt = sys.stdin.read().strip() if args.prompt == "-" else args.prompt
    assistant = _assistant()
    try:
        registry = load_catalog(args.tools) if args.tools else assistant.registry
    except ToolError as exc:
        raise UsageError(str(exc)) from None
    scratch = Path(tempfile.mkdtemp(prefix="anymodal-plan-"))
    try:
        atts = attach(ArtifactStore(scratch / "artifacts"), args.attach)
    except AttachmentError as exc:
        raise UsageError(str(exc)) from None
    planner = make_planner(assistant.config, assistant.models)
    start = time.perf_counter()
    try:
        plan = make_plan(planner, prompt, atts, registry, scratch)
    except PlanError as exc:
        print(f"no valid plan: {exc}", file=sys.stderr)
        return EXIT_FAILED
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps(plan.model_dump(exclude_none=True), indent=2))
    else:
        for step in plan.steps:
            print(f"{step.id}: {step.tool} {json.dumps(step.args)}")
        if plan.reply:
            print(plan.reply)
        print(f"planned by {planner.name} in {seconds:.1f}s", file=sys.stderr)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    import importlib.util
    import sys
    from importlib.metadata import entry_points

    from assistant.chat import chat_loop

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    # The full-screen app is a front end found by entry point (tui imports assistant, never
    # the other way round); without it, or without a terminal, the plain loop serves.
    front = [ep for ep in entry_points(group="anymodal.frontends") if ep.name == "chat"]
    if args.plain or not interactive or not front or importlib.util.find_spec("textual") is None:
        return chat_loop(_assistant(), session=args.session)
    run_app = front[0].load()
    return int(run_app(_assistant(), session=args.session))


def cmd_tools(args: argparse.Namespace) -> int:
    from assistant.config import load_config
    from tools.registry import Registry

    cfg = load_config()
    reg = Registry.discover(cfg.tool_modules, cfg.disabled_tools)
    if args.json:
        print(json.dumps(reg.specs(), indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("tool", "in", "out", "arguments", "description", show_lines=False)
    for t in reg:
        spec = t.spec()
        props = spec["input_schema"].get("properties", {})
        required = set(spec["input_schema"].get("required", []))
        arg_list = ", ".join(k + ("" if k in required else "?") for k in props)
        table.add_row(
            t.name,
            ",".join(spec["input_modalities"]) or "-",
            ",".join(spec["output_modalities"]) or "any",
            arg_list,
            t.description,
        )
    Console().print(table)
    for name, err in reg.load_errors.items():
        print(f"plugin {name} failed to load: {err}", file=sys.stderr)
    return EXIT_OK


def cmd_sessions(args: argparse.Namespace) -> int:
    import time

    from assistant.api import SessionNotFound

    assistant = _assistant()
    try:
        if args.action == "list":
            rows = assistant.list_sessions(args.n)
            if args.json:
                print(json.dumps([r.__dict__ for r in rows], indent=2))
            for r in [] if args.json else rows:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated))
                print(f"{r.id}  {when}  {r.status:<11} {r.turns:>3} turn(s)  {r.title}")
        elif args.action == "show":
            messages = assistant.messages(args.id)
            if args.json:
                print(json.dumps(messages, indent=2, default=str))
            for m in [] if args.json else messages:
                print(f"[{m['role']}] {m['content']}")
                for a in m.get("artifacts") or []:
                    print(f"    {a['modality']:<6} {a['path']}")
        elif args.action == "export":
            for path in assistant.export(args.id, args.out):
                print(path)
        elif args.action == "delete":
            assistant.delete(args.id)
            print(f"deleted {args.id}")
    except SessionNotFound as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from assistant import models_cli

    return models_cli.run(args)


def cmd_memory(args: argparse.Namespace) -> int:
    from assistant import memory_cli

    return memory_cli.run(args)


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the server; print its URL and where the token is (the token itself only when it
    was just made, so it reaches no log after that)."""
    import importlib.util

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise UsageError("the server needs the serve extra: pip install 'anymodal[serve]'")
    from assistant.server import bind, create_app, make_server
    from assistant.server.security import check_token_strength, load_or_create_token, token_path

    assistant = _assistant()
    settings = assistant.config.serve.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    if args.token is not None:
        try:
            check_token_strength(args.token)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        token, where = args.token, "given with --token (not stored)"
    else:
        path = token_path(settings.token_file)
        token, created = load_or_create_token(path)
        where = f"in {path}"
        if created:
            print(f"new token (kept, owner-only, in {path}):\n  {token}")
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"anymodal serving on http://{shown}:{port}/v1  (token {where})", flush=True)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {settings.host}, not only this machine: anyone who can "
            "reach it and has the token can run tools",
            file=sys.stderr,
        )
    app = create_app(assistant, settings, token)
    try:
        make_server(app, settings).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl+C, then re-raises it
        print("stopped", file=sys.stderr)
    finally:
        assistant.close()
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise UsageError("anymodal mcp needs the mcp package: pip install 'anymodal[mcp]'")
    for root in args.root:
        if not Path(root).expanduser().is_dir():
            raise UsageError(f"--root {root} is not a folder")
    import anyio

    from assistant.mcp_server import serve_stdio

    assistant = _assistant()
    try:
        anyio.run(lambda: serve_stdio(assistant, roots=[Path(r) for r in args.root]))
    finally:
        assistant.close()
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from assistant import paths
    from assistant.config import load_config

    cfg = load_config()
    where = {
        "config_file": str(paths.config_file()),
        "data": str(paths.data_dir()),
        "cache": str(paths.cache_dir()),
    }
    if args.json:
        print(json.dumps({"paths": where, "config": cfg.model_dump()}, indent=2))
    else:
        for k, v in where.items():
            print(f"{k:<12} {v}")
        print()
        for k, v in cfg.model_dump().items():
            print(f"{k} = {v!r}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
