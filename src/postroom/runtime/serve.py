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
from postroom.ingest.imap import ImapMailbox, ImapPoller
from postroom.ingest.pipeline import PipelineWorker
from postroom.ingest.ports import Accepted, IntakeSink
from postroom.ingest.smtp import IntakeHandler, start_smtp_server, tls_context
from postroom.ingest.spool import Spool
from postroom.outbound.sender import MaildirTransport, SenderWorker, SmtpTransport, Transport
from postroom.outbound.webhooks import HttpTransport, WebhookWorker
from postroom.runtime.analytics_worker import AnalyticsWorker
from postroom.runtime.router_worker import RouterWorker
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services.admin.webhooks import WebhookService
from postroom.services.analytics import AnalyticsProjector
from postroom.services.outbound import OutboundConfig, OutboundService, from_names
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
        projector = AnalyticsWorker(AnalyticsProjector(comps.engine, comps.clock))
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
            out, settings.intake, names=lambda: from_names(comps.live.current().queues)
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


class RouteRecipient:
    """An `IntakeSink` that gives mail from a route's own mailbox that route's address.

    Mail reaches a mailbox as Bcc or through aliases, so its headers may not name
    the route; the mailbox itself says where it was delivered.
    """

    def __init__(self, sink: IntakeSink, address: str) -> None:
        self.sink = sink
        self.recipients = [] if address.startswith("*@") else [address]

    async def accept(
        self,
        raw: bytes,
        *,
        source: str,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Accepted:
        return await self.sink.accept(
            raw,
            source=source,
            source_ref=source_ref,
            envelope_from=envelope_from,
            envelope_to=envelope_to or self.recipients,
        )


def imap_mailboxes(settings: Settings) -> list[tuple[ImapMailbox, str]]:
    """One poller per route that names an IMAP mailbox; the route address is its key."""
    boxes: list[tuple[ImapMailbox, str]] = []
    for route in settings.routes:
        src = route.imap
        if src is None:
            continue
        boxes.append(
            (
                ImapMailbox(
                    key=route.address.replace(":", "_"),
                    host=src.host,
                    port=src.port,
                    tls=src.tls,
                    user=src.user,
                    password=src.password,
                    folder=src.folder,
                    after_import=src.after_import,
                    move_to=src.move_to,
                    poll_interval_s=src.poll_interval_s,
                    idle=src.idle,
                ),
                route.address,
            )
        )
    return boxes


def _imap_tasks(
    settings: Settings, spool: Spool, comps: Components, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    cursors = SqlCursorStore(comps.engine)
    tasks = []
    for box, address in imap_mailboxes(settings):
        poller = ImapPoller(box, RouteRecipient(spool, address), cursors)
        tasks.append(asyncio.create_task(poller.run(stop), name=f"imap-{box.key}"))
        print(f"IMAP: polling {box.user}@{box.host}:{box.port}/{box.folder}", flush=True)
    return tasks


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
