"""The presence time-out: agents whose browser has been gone longer than
`presence_timeout_s` are taken off queue (presence `offline` via the router).

Activity is the session's last_seen_at (requests and open event streams beat
it) or the API token's last use, so it works across several web processes.
It only schedules; the rule is services/users.take_gone_agents_off_queue.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from postroom.services import users as user_svc
from postroom.web.deps import AppContext

log = logging.getLogger("postroom.web.presence")


async def watch_presence(ctx: AppContext) -> None:
    """Run until cancelled, checking a few times per time-out period."""
    timeout = ctx.config.presence_timeout_s
    every = max(0.1, min(10.0, timeout / 4))
    while True:
        await asyncio.sleep(every)
        try:
            gone = await anyio.to_thread.run_sync(
                user_svc.take_gone_agents_off_queue, ctx.db, ctx.clock, timeout
            )
        except Exception:
            log.exception("presence time-out check failed; retrying")
            continue
        for agent in gone:
            log.info("agent taken off queue: browser gone", extra={"agent": agent})
