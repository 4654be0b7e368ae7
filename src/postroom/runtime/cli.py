"""The `postroom` command line: parse arguments, call services, print results.

Keeps to argument handling and output; errors become one clear line on stderr
and a non-zero exit code here, nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from postroom import __version__
from postroom.domain.errors import PostroomError
from postroom.runtime import logs
from postroom.runtime.settings import Settings, load


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file (default: the sample)")
    p.add_argument("--data-dir", type=Path, help="data folder (default: ./postroom-data)")
    p.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://...")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load(getattr(args, "config", None))
    if getattr(args, "data_dir", None):
        settings = replace(settings, data_dir=args.data_dir)
    if getattr(args, "database_url", None):
        settings = replace(settings, database_url=args.database_url)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    from postroom.runtime.serve import serve

    settings = _settings(args)
    if args.smtp_port is not None:
        settings = replace(settings, smtp=replace(settings.smtp, port=args.smtp_port))
    if args.http_port is not None:
        settings = replace(settings, http=replace(settings.http, port=args.http_port))
    logs.configure(settings.log.level, settings.log.format)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()] if args.roles else None
    if roles is None:
        asyncio.run(serve(settings))
    else:
        asyncio.run(serve(settings, roles=roles))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from postroom.runtime.wiring import open_store
    from postroom.store.intake_repo import status_counts

    engine = open_store(_settings(args))
    with engine.connect() as conn:
        figures = status_counts(conn)
    engine.dispose()
    if args.json:
        print(json.dumps(figures))
    else:
        m = figures["messages"]
        print(
            f"messages: {m['received']} received, {m['pending']} pending, "
            f"{m['quarantined']} quarantined, {m['duplicates']} duplicates, "
            f"{m['auto_generated']} auto-generated"
        )
        print(f"threads: {figures['threads']}")
        print(
            "conversations: " + ", ".join(f"{k} {v}" for k, v in figures["conversations"].items())
        )
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    from postroom.mail.parse import parse_message

    try:
        raw = args.file.read_bytes() if str(args.file) != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise PostroomError(f"cannot read {args.file}: {exc.strerror}") from exc
    msg = parse_message(raw)
    data = msg.to_json()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        sender = data["from"]["address"] if data["from"] else "-"
        print(f"From: {sender}\nSubject: {data['subject']}\nDate: {data['date']}")
        print(f"Attachments: {len(data['attachments'])}  Defects: {len(data['defects'])}")
        print()
        print(msg.reply_text)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from postroom.ingest.importer import count_messages, iter_messages, spool_in_order
    from postroom.runtime.wiring import build

    settings = _settings(args)
    logs.configure("WARNING", settings.log.format)
    comps = build(settings)
    spool = comps.spool()
    total = count_messages(args.path)
    skipped: list[Path] = []
    with Progress(transient=False) as progress:
        task = progress.add_task("spooling", total=total)
        created = spool_in_order(
            spool,
            iter_messages(args.path, skipped),
            envelope_to=[args.to] if args.to else [],
            progress=lambda n: progress.advance(task, n),
        )
        processed = 0
        if not args.no_process:
            ptask = progress.add_task("processing", total=None)
            while n := comps.intake.process_pending():
                processed += n
                progress.advance(ptask, n)
    comps.close()
    print(
        f"imported {created} new of {total} messages ({total - created} already present); "
        f"processed {processed}"
    )
    if skipped:
        print(
            f"skipped {len(skipped)} Outlook .msg file(s) (binary OLE format, not RFC 5322 "
            f"mail), e.g. {skipped[0]}; save them from Outlook as .eml to import them",
            file=sys.stderr,
        )
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from postroom.runtime.wiring import build, utc_now
    from postroom.services import quarantine as q
    from postroom.services.admin.audit import Actor

    actor = Actor.cli()

    comps = build(_settings(args), sync_config=False)
    try:
        if args.action == "list":
            entries = q.list_entries(comps.engine, pending=args.pending)
            if args.json:
                print(json.dumps([e.to_json() for e in entries]))
            elif args.pending:
                for e in entries:
                    print(
                        f"{e.message_pk:>6}  {e.received_at:%Y-%m-%d %H:%M}  "
                        f"{e.attempts:>2} attempt(s)  {e.raw_size:>10,} bytes  {e.source}"
                    )
                print(f"{len(entries)} message(s) pending")
            else:
                for e in entries:
                    print(
                        f"{e.message_pk:>6}  {e.received_at:%Y-%m-%d %H:%M}  {e.stage or '-':<12} "
                        f"{(e.sender or '-')[:30]:<30}  {(e.error or '')[:80]}"
                    )
                print(f"{len(entries)} message(s) in quarantine")
        elif args.action == "show":
            e = q.get_entry(comps.engine, args.id)
            if args.raw:
                sys.stdout.buffer.write(q.raw_message(comps.engine, comps.blobs, e.message_pk))
            else:
                print(json.dumps(e.to_json(), indent=2, ensure_ascii=False))
        elif args.action == "retry":
            ids = [e.message_pk for e in q.list_entries(comps.engine)] if args.all else args.ids
            if not ids:
                raise PostroomError("name message ids to retry, or pass --all")
            for pk in ids:
                q.release(comps.engine, pk, utc_now, actor=actor)
                outcome = comps.intake.process(pk)
                status = outcome.status if outcome else "pending"
                reason = f" ({outcome.reason})" if outcome and outcome.reason else ""
                print(f"{pk}: {status}{reason}")
        elif args.action == "hold":
            for pk in args.ids:
                q.hold(comps.engine, pk, utc_now, args.reason, actor=actor)
                print(f"{pk}: quarantined")
        elif args.action == "discard":
            for pk in args.ids:
                q.discard(comps.engine, pk, utc_now, args.reason, actor=actor)
                print(f"{pk}: discarded")
        elif args.action == "release":
            released = q.release_loop_guard(
                comps.engine, utc_now, sender=args.sender, message_id=args.message, actor=actor
            )
            for pk in released:
                outcome = comps.intake.process(pk)
                status = outcome.status if outcome else "pending"
                reason = f" ({outcome.reason})" if outcome and outcome.reason else ""
                print(f"{pk}: {status}{reason}")
    finally:
        comps.close()
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import yaml

    from postroom.routing.simulator import ScenarioError, run_scenario

    try:
        scenario = yaml.safe_load(args.scenario.read_text("utf-8"))
    except OSError as exc:
        raise PostroomError(f"cannot read {args.scenario}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PostroomError(f"{args.scenario}: invalid YAML: {exc}") from exc
    if not isinstance(scenario, dict):
        raise PostroomError(f"{args.scenario}: a scenario is a mapping (duration_s, queues, ...)")
    try:
        result = run_scenario(scenario).to_json()
    except ScenarioError as exc:
        raise PostroomError(f"{args.scenario}: {exc}") from exc
    if args.json:
        print(json.dumps(result))
        return 0
    queues = result["queues"]
    items = queues.items() if isinstance(queues, dict) else ((q["name"], q) for q in queues)
    for name, q in items:
        figures = ", ".join(f"{k} {v}" for k, v in q.items() if k != "name")
        print(f"queue {name}: {figures}")
    return 0


def _parse_skills(text: str | None) -> list[tuple[str, float]]:
    out = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, level = item.partition("=")
        try:
            out.append((name.strip(), float(level) if sep else 3.0))
        except ValueError as exc:
            raise PostroomError(f"skill {item!r}: write name=proficiency, e.g. billing=4") from exc
    return out


def cmd_agent(args: argparse.Namespace) -> int:
    from postroom.runtime.wiring import configured, open_store, utc_now
    from postroom.services import agents as svc

    settings = _settings(args)
    db = open_store(settings)
    try:
        if args.action == "add":
            svc.add_agent(
                db,
                utc_now,
                args.agent,
                # Options left out keep the agent's current values, as `user add` does.
                name=args.name,
                queues=[q for q in args.queues.split(",") if q]
                if args.queues is not None
                else None,
                skills=_parse_skills(args.skills) if args.skills is not None else None,
                languages=[x for x in args.languages.split(",") if x]
                if args.languages is not None
                else None,
                capacity=args.capacity,
                known_queues=configured(db).queue_names,
                add_to_catalog=True,  # new skill and language names join the catalogs
            )
            print(f"agent {args.agent} saved")
            return 0
        if args.action == "list":
            rows = svc.list_agents(db)
            if args.json:
                print(json.dumps(rows))
            else:
                for r in rows:
                    held = ", ".join(
                        f"{c['conversation']}:{c['state']}" for c in r["conversations"]
                    )
                    print(f"{r['id']:<20} {r['presence']:<10} {r['routing_status']:<15} {held}")
            return 0
        kind = {
            "presence": "presence",
            "accept": "accept",
            "decline": "decline",
            "wrapup": "wrapup",
            "end": "end",
            "park": "park",
        }[args.action]
        data: dict[str, Any] = {}
        if args.action == "presence":
            data = {"presence": args.presence}
        conversation = getattr(args, "conversation", None)
        if args.action == "wrapup":
            data = {"code": args.code or ""}
            if args.notes:
                data["notes"] = args.notes
            # Ending first is how an agent finishes a connected conversation; when it
            # is already in wrap-up the router refuses the end and takes the code.
            svc.request(db, utc_now, "end", agent_id=args.agent, conversation_id=conversation)
        rid = svc.request(
            db, utc_now, kind, agent_id=args.agent, conversation_id=conversation, data=data
        )
        result = svc.wait_result(db, rid, args.wait)
        if result is None:
            print(
                f"request {rid} queued; no router answered within {args.wait:g} s "
                "(is `postroom serve` running?)"
            )
            return 4
        if result != "ok":
            raise svc.RequestRefused(f"{args.action}: {result}")
        print(f"{args.action}: ok")
        return 0
    finally:
        db.dispose()


def _password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    """From --password-stdin, or asked twice on the terminal."""
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise PostroomError("the passwords differ; try again")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    from postroom.runtime.wiring import configured, open_store, utc_now
    from postroom.services import users as svc
    from postroom.services.admin.audit import Actor

    cli = Actor.cli()
    settings = _settings(args)
    db = open_store(settings)
    try:
        if args.action == "add":
            password = None if args.no_password else _password(args)
            user = svc.add_user(
                db,
                utc_now,
                args.user,
                role=args.role,
                password=password,
                hasher=svc.password_hasher(),
                name=args.name,
                email=args.email,
                queues=[q for q in args.queues.split(",") if q]
                if args.queues is not None
                else None,
                skills=_parse_skills(args.skills) if args.skills is not None else None,
                languages=[x for x in args.languages.split(",") if x]
                if args.languages is not None
                else None,
                capacity=args.capacity,
                known_queues=configured(db).queue_names,
                actor=cli,
            )
            print(f"user {user.id} saved ({user.role})")
        elif args.action == "passwd":
            svc.set_password(
                db, args.user, _password(args), svc.password_hasher(), clock=utc_now, actor=cli
            )
            print(f"password of {args.user} changed; their browser sessions ended")
        elif args.action == "token":
            if args.revoke:
                n = svc.revoke_tokens(db, utc_now, args.user, args.name, actor=cli)
                print(f"revoked {n} token(s) named {args.name!r} of {args.user}")
            else:
                token = svc.create_token(
                    db,
                    utc_now,
                    args.user,
                    args.name,
                    role=args.role,
                    expires_in_days=args.expires_days,
                    actor=cli,
                )
                print(token)
                print(
                    "send it as 'Authorization: Bearer <token>'; it is shown only once",
                    file=sys.stderr,
                )
        elif args.action in ("disable", "enable"):
            user = svc.set_disabled(db, utc_now, args.user, args.action == "disable", actor=cli)
            if user.disabled:
                print(
                    f"{user.id} disabled: signed out, API tokens refused, cannot sign in"
                    + (" (taken off queue)" if user.role == "agent" else "")
                )
            else:
                print(f"{user.id} enabled: they can sign in again")
        elif args.action == "list":
            rows = svc.list_users(db)
            if args.json:
                print(json.dumps([u.to_json() for u in rows]))
            else:
                for u in rows:
                    print(
                        f"{u.id:<24} {u.role:<11} {u.name}" + (" (disabled)" if u.disabled else "")
                    )
        return 0
    finally:
        db.dispose()


def cmd_queue(args: argparse.Namespace) -> int:
    from postroom.runtime.wiring import configured, open_store, utc_now
    from postroom.services import agents as svc

    settings = _settings(args)
    db = open_store(settings)
    try:
        names = [n for n in configured(db).queue_names if not args.name or n == args.name]
        if not names:
            raise PostroomError(f"no queue named {args.name!r}")
        figures = svc.queue_figures(db, names, utc_now())
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({f.name: f.to_json() for f in figures}))
    else:
        for f in figures:
            longest = f"{f.longest_waiting_s:.0f} s" if f.longest_waiting_s is not None else "-"
            print(
                f"{f.name:<16} waiting {f.waiting}  alerting {f.alerting}  interacting "
                f"{f.interacting}  parked {f.parked}  wrap-up {f.wrapup}  longest {longest}  "
                f"agents on queue {f.agents_on_queue}"
            )
    return 0


def cmd_analytics(args: argparse.Namespace) -> int:
    from postroom.runtime.wiring import open_store, utc_now
    from postroom.services.analytics import AnalyticsProjector, standard_sinks

    settings = _settings(args)
    db = open_store(settings)
    try:
        projector = AnalyticsProjector(db, utc_now, sinks=standard_sinks())
        n = projector.rebuild()
        high, gaps = projector.checkpoint()
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"events": n, "last_event_id": high, "gaps": len(gaps)}))
    else:
        print(f"rebuilt analytics from {n} events (up to event {high})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import smtplib

    from postroom.runtime.wiring import utc_now
    from postroom.services import demo

    settings = _settings(args)
    to = args.to or (settings.routes[0].address if settings.routes else "support@example.com")
    port = args.smtp_port or settings.smtp.port
    host = "127.0.0.1" if settings.smtp.host in ("0.0.0.0", "::") else settings.smtp.host
    messages = demo.sample_messages(to, "customer.example", utc_now())
    try:
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            for raw in messages:
                smtp.sendmail("demo@customer.example", [to], raw)
    except (OSError, smtplib.SMTPException) as exc:
        raise PostroomError(
            f"cannot send to {host}:{port} ({exc}); is `postroom serve` running?"
        ) from exc
    print(f"sent {len(messages)} sample emails to {to} via {host}:{port}")
    return 0


_EXPORT_HEADER = """\
# Postroom configuration: the calendars, queues, routes and rules in force in the database
# (configuration version {version}), written by `postroom config export` at {at}.
# Edit a copy, check it with `postroom config apply FILE --dry-run`, then apply it
# with `postroom config apply FILE`. {secrets}

"""


def cmd_config(args: argparse.Namespace) -> int:
    """`config export`: the database's configuration as TOML; `config apply`: a file's
    queues, routes and rules into the database, with the difference shown."""
    import tomli_w

    from postroom.runtime.settings import (
        CONFIGURATION_KEYS,
        configuration_from_mapping,
        from_mapping,
        parse_toml,
        read_text,
    )
    from postroom.runtime.wiring import open_store, utc_now
    from postroom.services import configuration
    from postroom.services.admin import config_file
    from postroom.services.admin.audit import Actor

    settings = _settings(args)
    if args.action == "apply":  # check the file before touching the database
        data = parse_toml(read_text(args.file), args.file)
        config = configuration_from_mapping(data)
        others = sorted(k for k in data if k not in CONFIGURATION_KEYS)
        if others:
            from_mapping(data)  # the file's other settings are checked too, not applied
            print(
                "note: only [[calendars]], [[queues]], [[routes]] and [[rules]] are applied; "
                f"the file's other settings ({', '.join(others)}) are checked, not applied: each "
                "process reads them from its configuration file when it starts",
                file=sys.stderr,
            )
    db = open_store(settings)
    target = db.url.render_as_string(hide_password=True)
    try:
        if args.action == "export":
            with db.connect() as conn:
                data = config_file.export_data(conn, include_secrets=args.include_secrets)
                version = configuration.version(conn)
            secrets = (
                "IMAP passwords are included: keep this file private."
                if args.include_secrets
                else f"IMAP passwords are written as {configuration.KEEP_PASSWORD!r}:\n"
                "# apply keeps the stored password of that route's address."
            )
            text = _EXPORT_HEADER.format(
                version=version or 0, at=utc_now().isoformat(timespec="seconds"), secrets=secrets
            ) + tomli_w.dumps(data, multiline_strings=True)
            if args.output is None:
                sys.stdout.write(text)
                return 0
            (_write_private if args.include_secrets else _write)(args.output, text)
            print(
                f"wrote {len(data['queues'])} queue(s), {len(data['routes'])} route(s) and "
                f"{len(data['rules'])} rule(s) of {target} to {args.output}"
            )
            return 0
        result = config_file.apply(db, utc_now(), Actor.cli(), config, dry_run=args.dry_run)
    finally:
        db.dispose()
    for change in result.changes:
        print(change.text())
    if result.empty:
        print(f"no changes: {target} already holds this configuration")
    elif args.dry_run and result.problems:
        raise PostroomError("it would not apply: " + "; ".join(result.problems))
    elif args.dry_run:
        print(f"{len(result.changes)} change(s) to {target}; nothing applied (--dry-run)")
    else:
        print(
            f"applied {len(result.changes)} change(s) to {target} (configuration version "
            f"{result.version}); every process takes them within a second"
        )
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PostroomError(f"cannot write {path}: {exc.strerror}") from exc


def _write_private(path: Path, text: str) -> None:
    """Written readable by its owner only (the file holds passwords)."""
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise PostroomError(f"cannot write {path}: {exc.strerror}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postroom", description="Postroom email contact center")
    parser.add_argument("--version", action="version", version=f"postroom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run SMTP, HTTP, IMAP and the pipeline in one process")
    _add_store_args(p)
    p.add_argument("--smtp-port", type=int)
    p.add_argument("--http-port", type=int)
    p.add_argument(
        "--roles",
        help="comma-separated roles: smtp, http, imap, pipeline, router, sender (default: all)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("status", help="intake figures")
    _add_store_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("parse", help="print the normalized form of one message")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("import", help="import .eml files, mbox files or Maildir folders")
    _add_store_args(p)
    p.add_argument("path", type=Path)
    p.add_argument("--to", help="recipient address to route by (default: the To/Cc headers)")
    p.add_argument("--no-process", action="store_true", help="only spool; leave routing to serve")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("agent", help="agents' routing profiles; act for an agent")
    asub = p.add_subparsers(dest="action", required=True)
    ap = asub.add_parser(
        "add", help="create or update an agent (options left out keep their current values)"
    )
    ap.add_argument("agent", help="login name")
    ap.add_argument("--name", help="display name (new agents: the login name)")
    ap.add_argument("--queues", help="comma-separated queue names")
    ap.add_argument("--skills", help="comma-separated name=proficiency (0-5)")
    ap.add_argument("--languages", help="comma-separated language codes")
    ap.add_argument(
        "--capacity", type=int, help="email conversations at once (1-25; new agents: 1)"
    )
    ap = asub.add_parser("list", help="agents with presence, routing status and work")
    ap.add_argument("--json", action="store_true")
    ap = asub.add_parser("presence", help="set presence (on_queue to take work)")
    ap.add_argument("agent")
    ap.add_argument("presence")
    for name, what in (
        ("accept", "accept an offer"),
        ("decline", "decline an offer"),
        ("end", "finish a connected conversation"),
        ("park", "park it"),
        ("wrapup", "finish and record the wrap-up code"),
    ):
        ap = asub.add_parser(name, help=what)
        ap.add_argument("agent")
        ap.add_argument("conversation", type=int)
        if name == "wrapup":
            ap.add_argument("--code", default="")
            ap.add_argument("--notes")
    for ap in asub.choices.values():
        _add_store_args(ap)
        if ap.prog.split()[-1] not in ("add", "list"):
            ap.add_argument(
                "--wait", type=float, default=10.0, help="seconds to wait for the router's answer"
            )
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser(
        "user", help="users of the workspace and API: add, passwd, token, disable, enable, list"
    )
    usub = p.add_subparsers(dest="action", required=True)
    up = usub.add_parser("add", help="create or update a user (agents get a routing profile)")
    up.add_argument("user", help="login name (for agents also the agent id)")
    up.add_argument(
        "--role",
        choices=("agent", "supervisor", "admin"),
        help="new users: default agent; existing users keep their role unless given",
    )
    up.add_argument("--name")
    up.add_argument("--email")
    up.add_argument("--queues", help="agents: comma-separated queue names")
    up.add_argument("--skills", help="agents: comma-separated name=proficiency (0-5)")
    up.add_argument("--languages", help="agents: comma-separated language codes")
    up.add_argument("--capacity", type=int, help="agents: conversations at once (default 1)")
    up.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    up.add_argument("--no-password", action="store_true", help="keep (or set no) password")
    up = usub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    up.add_argument("user")
    up.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    up = usub.add_parser("token", help="create (or --revoke) an API token")
    up.add_argument("user")
    up.add_argument("--name", default="api", help="a label for the token")
    up.add_argument("--revoke", action="store_true", help="revoke the user's tokens of that name")
    up.add_argument(
        "--role",
        choices=("agent", "supervisor", "admin"),
        help="what the token may do, at most the user's role (default: the user's role)",
    )
    up.add_argument(
        "--expires-days", type=int, metavar="DAYS", help="the token stops working after DAYS days"
    )
    up = usub.add_parser(
        "disable", help="stop a user at once: sessions end, tokens refused, agents off queue"
    )
    up.add_argument("user")
    up = usub.add_parser("enable", help="let a disabled user sign in again")
    up.add_argument("user")
    up = usub.add_parser("list", help="users and roles")
    up.add_argument("--json", action="store_true")
    for up in usub.choices.values():
        _add_store_args(up)
    p.set_defaults(func=cmd_user)

    p = sub.add_parser(
        "config", help="the database's queues, routes and rules as a file: export, apply"
    )
    csub = p.add_subparsers(dest="action", required=True)
    cp = csub.add_parser(
        "export", help="write the queues, routes and rules in force as TOML (default: stdout)"
    )
    cp.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE instead")
    cp.add_argument(
        "--include-secrets",
        action="store_true",
        help="write IMAP passwords (default: a placeholder that apply reads as 'keep')",
    )
    _add_store_args(cp)
    cp = csub.add_parser(
        "apply", help="make the database hold a file's queues, routes and rules (shows the diff)"
    )
    cp.add_argument("file", type=Path, help="a TOML file: an export, or a configuration file")
    cp.add_argument("--dry-run", action="store_true", help="show the difference, change nothing")
    _add_store_args(cp)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("queue", help="queue figures")
    qsub2 = p.add_subparsers(dest="action", required=True)
    qp = qsub2.add_parser("show")
    qp.add_argument("name", nargs="?")
    qp.add_argument("--json", action="store_true")
    _add_store_args(qp)
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser("analytics", help="analytics from the event log")
    asub2 = p.add_subparsers(dest="action", required=True)
    ap2 = asub2.add_parser(
        "rebuild", help="empty the analytics tables and project every event again"
    )
    ap2.add_argument("--json", action="store_true")
    _add_store_args(ap2)
    p.set_defaults(func=cmd_analytics)

    p = sub.add_parser("demo", help="demo helpers: send sample customer mail")
    dsub = p.add_subparsers(dest="action", required=True)
    dp = dsub.add_parser("send", help="send a few realistic customer emails to the running server")
    dp.add_argument("--to", help="recipient (default: the first route's address)")
    dp.add_argument("--smtp-port", type=int)
    _add_store_args(dp)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="run a what-if staffing scenario on the routing engine")
    p.add_argument("scenario", type=Path, help="scenario YAML file (see docs/routing.md)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "quarantine", help="manage messages that intake could not process, or has not yet"
    )
    qsub = p.add_subparsers(dest="action", required=True)
    quarantine_help = {
        "list": "list quarantined messages (--pending: messages waiting for the pipeline)",
        "show": "show a quarantined or pending message",
        "retry": "send quarantined messages through the pipeline again",
        "hold": "quarantine pending messages so the pipeline leaves them alone",
        "discard": "discard quarantined or pending messages (kept, never processed)",
        "release": "retry every message the loop guard holds from one sender",
    }
    for name, text in quarantine_help.items():
        qp = qsub.add_parser(name, help=text, description=text)
        _add_store_args(qp)
        if name == "list":
            qp.add_argument("--json", action="store_true")
            qp.add_argument(
                "--pending",
                action="store_true",
                help="list pending messages with their attempts instead",
            )
        if name == "show":
            qp.add_argument("id", type=int)
            qp.add_argument("--raw", action="store_true", help="write the raw message to stdout")
        if name == "retry":
            qp.add_argument("ids", type=int, nargs="*")
            qp.add_argument("--all", action="store_true")
        if name == "hold":
            qp.add_argument("ids", type=int, nargs="+")
            qp.add_argument("--reason", default="held by an operator")
        if name == "discard":
            qp.add_argument("ids", type=int, nargs="+")
            qp.add_argument("--reason", default="discarded by an operator")
        if name == "release":
            which = qp.add_mutually_exclusive_group(required=True)
            which.add_argument("--sender", help="the sender's address")
            which.add_argument(
                "--message", type=int, help="a quarantined message id: release its sender"
            )
    p.set_defaults(func=cmd_quarantine)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: Any = args.func(args)
        return int(result or 0)
    except PostroomError as exc:
        print(f"postroom: error: {exc}", file=sys.stderr)
        return 2
    except sa.exc.OperationalError as exc:
        print(f"postroom: error: database unavailable: {exc.orig}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
