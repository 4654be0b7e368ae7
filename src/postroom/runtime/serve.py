"""`postroom serve`: run SMTP, HTTP, IMAP pollers and the pipeline.

By default one process takes every role. `--roles` lets several processes
share the work against one database (e.g. `smtp` on one, `pipeline` on
another); a pipeline without an SMTP listener beside it polls for new mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from postroom.domain.errors import ConfigError
from postroom.ingest.imap import ImapPoller
from postroom.ingest.pipeline import PipelineWorker
from postroom.ingest.smtp import IntakeHandler, start_smtp_server, tls_context
from postroom.ingest.spool import Spool
from postroom.outbound.sender import MaildirTransport, SenderWorker, SmtpTransport, Transport
from postroom.outbound.webhooks import HttpTransport, WebhookWorker
from postroom.runtime.analytics_worker import AnalyticsWorker
from postroom.runtime.imap_supervisor import ImapSupervisor, RouteRecipient
from postroom.runtime.router_worker import RouterWorker
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services.admin.webhooks import WebhookService
from postroom.services.analytics import AnalyticsProjector, standard_sinks
from postroom.services.outbound import (
    OutboundConfig,
    OutboundService,
    from_names,
    route_from_names,
)
from postroom.services.routing import RoutingService
from postroom.store.intake_repo import SqlCursorStore
from postroom.store.router_lock import router_lock
from postroom.web.app import create_app

log = logging.getLogger("postroom.serve")


ROLES = ("smtp", "http", "imap", "pipeline", "router", "sender", "webhooks")


async def serve(
    settings: Settings,
    *,
    roles: Sequence[str] = ROLES,
    ready: asyncio.Event | None = None,
) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
    # The event loop shares the GIL with the spool writer, pipeline and router
    # threads; a shorter switch interval shortens the wait between a commit and
    # the "250" it allows (measured with bench/smtp_intake.py).
    sys.setswitchinterval(0.0005)
    comps = build(settings)
    worker: PipelineWorker | None = None
    if "pipeline" in roles:
        worker = PipelineWorker(
            comps.intake,
            idle_poll_s=settings.intake.pipeline_poll_s,
            batch=settings.intake.pipeline_batch,
        )
        worker.start()
        worker.wake()  # messages left pending by an earlier run
    router: RouterWorker | None = None
    projector: AnalyticsWorker | None = None
    if "router" in roles:
        routing = RoutingService(comps.engine, (), comps.clock, live=comps.live)
        router = RouterWorker(
            routing,
            comps.clock,
            poll_s=settings.routing.poll_s,
            lock=router_lock(comps.engine, settings.data_dir),
        )
        comps.intake.listeners.append(router.wake)  # new conversations: route them now
        router.start()
        # Analytics from the event log, beside the router (docs/analytics.md).
        projector = AnalyticsWorker(
            AnalyticsProjector(comps.engine, comps.clock, sinks=standard_sinks())
        )
        routing.listeners.append(projector.wake)
        projector.start()
    sender: SenderWorker | None = None  # outbound mail: the outbox and acknowledgements
    if "sender" in roles and settings.outbound.enabled:
        sender = build_sender(settings, comps)
        comps.intake.listeners.append(sender.wake)  # acknowledgement requests: answer now
        sender.start()
    hooks: WebhookWorker | None = None  # events to subscribed outside systems
    if "webhooks" in roles:
        hooks = WebhookWorker(
            WebhookService(comps.engine, comps.clock), HttpTransport(), comps.clock
        )
        comps.intake.listeners.append(hooks.wake)  # new conversations and messages: now
        if router is not None:
            router.service.listeners.append(hooks.wake)  # offers and state changes: now
        hooks.start()
    spool = comps.spool(on_committed=worker.wake if worker else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task[None]] = []
    smtp_server = None
    if settings.smtp.enabled and "smtp" in roles:
        handler = IntakeHandler(
            spool, lambda: comps.live.current().routes, max_recipients=settings.smtp.max_recipients
        )
        smtp_server = await start_smtp_server(
            handler,
            host=settings.smtp.host,
            port=settings.smtp.port,
            hostname=settings.smtp.hostname,
            max_message_size=settings.smtp.max_message_size,
            tls=tls_context(settings.smtp.tls_cert, settings.smtp.tls_key),
        )
        print(f"SMTP: listening on {settings.smtp.host}:{settings.smtp.port}", flush=True)
    if "imap" in roles:
        tasks.extend(_imap_tasks(settings, spool, comps, stop))
    http_server = None
    if settings.http.enabled and "http" in roles:
        app = create_app(comps.engine, settings, comps.blobs, live=comps.live)
        if router is not None:  # offers reach browsers without waiting for the next poll
            router.service.listeners.append(app.state.hub.wake)
        http_server = uvicorn.Server(http_config(app, settings))
        # uvicorn captures SIGINT/SIGTERM while it serves and re-raises them on exit,
        # which then reaches the loop handler above and stops everything else.
        tasks.append(asyncio.create_task(http_server.serve()))
        print(f"HTTP: http://{settings.http.host}:{settings.http.port}/", flush=True)
    routes = ", ".join(r.address for r in comps.live.current().routes) or "(none)"
    print(f"Routes: {routes}", flush=True)
    print(f"Data: {settings.data_dir.resolve()}", flush=True)
    print(f"Roles: {', '.join(r for r in ROLES if r in roles)}", flush=True)
    if comps.seeded is not None:
        print(configuration_line(comps.seeded, settings), flush=True)
    if settings.demo:
        _seed_demo(comps, settings)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if smtp_server is not None:
            smtp_server.close()
            await smtp_server.wait_closed()
        if http_server is not None:
            http_server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        if worker is not None:
            worker.stop()
        if router is not None:
            router.stop()
        if projector is not None:
            projector.stop()
        if sender is not None:
            sender.stop()
        if hooks is not None:
            hooks.stop()
        comps.close()


def configuration_line(outcome: str, settings: Settings) -> str:
    """What the start did with the file's queues, routes and rules (one line)."""
    name = str(settings.config_path) if settings.config_path is not None else "FILE"
    if outcome == "seeded":
        return (
            "Configuration: the database was empty and took the file's queues, routes and "
            "rules; from now on the database's are in force (change them in the admin pages "
            "or with `postroom config apply`)"
        )
    if outcome in ("file differs", "database differs"):
        return (
            "Configuration: the database's queues, routes and rules are in force, not the "
            f"file's, which differ; see how with `postroom config apply {name} --dry-run`, "
            f"apply the file with `postroom config apply {name}`"
        )
    return "Configuration: the database's queues, routes and rules (the same as the file's)"


def http_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn for the HTTP role. Forwarded headers (X-Forwarded-For/-Proto) are
    believed only from `[web] trusted_proxies`; by default from nobody, so a client
    cannot choose its own address (the login throttle keys on it)."""
    proxies = list(settings.web.trusted_proxies)
    return uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
    )


def build_sender(settings: Settings, comps: Components) -> SenderWorker:
    """The sender worker for `settings`: the SMTP relay, or the local sent-mail Maildir."""
    out = settings.outbound
    service = OutboundService(
        comps.engine,
        comps.blobs,
        OutboundConfig.from_settings(
            out,
            settings.intake,
            names=lambda: from_names(comps.live.current().queues),
            route_names=lambda: route_from_names(comps.live.current().routes),
        ),
        comps.clock,
    )
    transport: Transport
    if out.relay_host:
        transport = SmtpTransport(
            out.relay_host,
            out.relay_port,
            tls=out.relay_tls,
            user=out.relay_user,
            password=out.relay_password,
            local_hostname=settings.smtp.hostname,
        )
    else:
        transport = MaildirTransport(settings.data_dir / "sent-mail")
    return SenderWorker(service, transport, comps.clock)


def _imap_tasks(
    settings: Settings, spool: Spool, comps: Components, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    """The imap role: pollers that follow the stored routes (a route added, changed
    or removed in the admin pages starts, restarts or stops its poller)."""
    cursors = SqlCursorStore(comps.engine)
    supervisor = ImapSupervisor(
        lambda: comps.live.current().routes,
        lambda box, address: ImapPoller(box, RouteRecipient(spool, address), cursors),
    )
    return [asyncio.create_task(supervisor.run(stop), name="imap-supervisor")]


def _seed_demo(comps: Components, settings: Settings) -> None:
    """First start of the demo: create its users and show their passwords once."""
    from postroom.services import demo

    configured = comps.live.current()
    created = demo.seed(comps.engine, comps.clock, configured.queue_names)
    if not created:
        return
    print("Demo users (passwords are shown only now; `postroom user passwd` sets new ones):")
    for login, role, password in created:
        print(f"  {login:<8} {role:<11} {password}", flush=True)
    first = configured.routes[0].address if configured.routes else "support@example.com"
    print(
        f"Send sample mail with `postroom demo send` (to {first}); replies are delivered to "
        f"{(settings.data_dir / 'sent-mail').resolve()} unless [outbound] relay_host is set.",
        flush=True,
    )
