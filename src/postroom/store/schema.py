"""The database schema (SQLAlchemy Core tables), the one source for migrations.

Declares tables only; queries live in the repositories, and changes to this
file need a new Alembic revision under store/migrations/versions/.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTC = sa.DateTime(timezone=True)

# Row ids are sa.Integer: a signed 32-bit `integer` on PostgreSQL. Any id a
# client sends is checked against this range before it reaches a query.
ID_MAX = 2**31 - 1

queues = sa.Table(
    "queues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("config", sa.JSON, nullable=False),
)

# Business-hours calendars (services/admin/schema.py CalendarModel as JSON), named by
# queues' service-level targets.
calendars = sa.Table(
    "calendars",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("config", sa.JSON, nullable=False),
)

routes = sa.Table(
    "routes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("address", sa.String(320), nullable=False, unique=True),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
)

rules = sa.Table(
    "rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    # A disabled rule is kept in its place but not evaluated (migration 0008).
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("last_activity_at", UTC, nullable=False),
)

thread_participants = sa.Table(
    "thread_participants",
    metadata,
    sa.Column("thread_id", sa.Integer, sa.ForeignKey("threads.id"), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    # The customer panel finds a sender's threads by address (migration 0014).
    sa.Index("ix_thread_participants_address", "address"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("thread_id", sa.Integer, sa.ForeignKey("threads.id"), nullable=False, index=True),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("skills", sa.JSON, nullable=False),
    sa.Column("language", sa.String(35)),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("route_address", sa.String(320)),
    sa.Column("reply_from", sa.String(320)),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("enqueued_at", UTC, nullable=False),
    sa.Column("closed_at", UTC),
    sa.Column("close_reason", sa.Text),
    sa.Column("last_agent", sa.String(200)),
    sa.Column("last_agent_at", UTC),
    sa.Column("agent_id", sa.String(200), index=True),  # alerting, connected, parked, wrapup
    sa.Column("offer_deadline", UTC),
    sa.Column("wrapup_code", sa.String(200)),
    # From the route and rules (migration 0007): agents offered it first until
    # preferred_until, and the service-level deadline the route gave it.
    sa.Column("preferred_agents", sa.JSON),
    sa.Column("preferred_until", UTC),
    sa.Column("deadline_at", UTC),
    # The conversation browser pages by creation time (migration 0014).
    sa.Index("ix_conversations_created_at_id", "created_at", "id"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("direction", sa.String(3), nullable=False, default="in"),  # "in" | "out"
    sa.Column("source", sa.String(20), nullable=False),  # smtp, imap, import, agent
    sa.Column("source_ref", sa.String(500), unique=True),
    sa.Column("raw_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("raw_size", sa.Integer, nullable=False),
    # Small messages wait here, made durable by the spool's group commit, until the
    # pipeline has copied them to the blob store (then NULL). Large ones go to the
    # blob store before their row is committed.
    sa.Column("raw", sa.LargeBinary),
    sa.Column("envelope_from", sa.Text),
    sa.Column("envelope_to", sa.JSON, nullable=False),
    sa.Column("received_at", UTC, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("stage", sa.String(20)),  # the stage that quarantined or discarded it
    sa.Column("error", sa.Text),
    # Times the pipeline started on this message, committed before the work: a
    # message that keeps crashing or hanging the pipeline is quarantined.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("header_message_id", sa.String(998), index=True),
    sa.Column("sender", sa.String(320), index=True),
    sa.Column("subject", sa.Text),
    sa.Column("sent_at", UTC),
    sa.Column("in_reply_to", sa.JSON),
    sa.Column("references", sa.JSON),
    sa.Column("auto_kind", sa.String(60)),
    sa.Column("duplicate_of", sa.Integer, sa.ForeignKey("messages.id")),
    sa.Column("bounce_for", sa.Integer, sa.ForeignKey("messages.id")),
    sa.Column("thread_id", sa.Integer, sa.ForeignKey("threads.id"), index=True),
    sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"), index=True),
    sa.Column("text", sa.Text),
    sa.Column("html", sa.Text),
    sa.Column("preview", sa.Text),
    sa.Column("headers", sa.JSON),
    sa.Column("defects", sa.JSON),
    sa.Column("tags", sa.JSON),
    # Full-text search (migration 0014, services/search/postgres.py): on PostgreSQL
    # the message's tsvector, with a GIN index the migration creates; on SQLite
    # always NULL (its index is the FTS5 table message_fts, outside this metadata).
    sa.Column("search_document", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")),
    # How intake threaded an inbound message: {"code": ..., ids} (mail/threading.py).
    sa.Column("thread_reason", sa.JSON),
    sa.Index("ix_messages_sender_received", "sender", "received_at"),
)

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("sniffed_type", sa.String(255)),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_id", sa.String(998)),
    sa.Column("inline", sa.Boolean, nullable=False),
    sa.UniqueConstraint("message_id", "position", name="uq_attachments_message_position"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTC, nullable=False),
    sa.Column("kind", sa.String(60), nullable=False, index=True),
    sa.Column("conversation_id", sa.Integer, index=True),
    sa.Column("message_id", sa.Integer, index=True),
    sa.Column("thread_id", sa.Integer),
    sa.Column("data", sa.JSON, nullable=False),
)

imap_cursors = sa.Table(
    "imap_cursors",
    metadata,
    sa.Column("mailbox_key", sa.String(500), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger, nullable=False),
    sa.Column("last_uid", sa.BigInteger, nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # the agent's login name
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("queues", sa.JSON, nullable=False),
    sa.Column("skills", sa.JSON, nullable=False),  # [[name, proficiency], ...]
    sa.Column("languages", sa.JSON, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("presence", sa.String(20), nullable=False),
    sa.Column("routing_status", sa.String(20), nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
)

# Requests for the routing engine from any process (CLI, web, pipeline), consumed
# in id order by the one active router, which records its answer on the row.
routing_inbox = sa.Table(
    "routing_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTC, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("conversation_id", sa.Integer),
    sa.Column("agent_id", sa.String(200)),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("done_at", UTC, index=True),
    sa.Column("result", sa.Text),  # "ok" or why the engine refused
)

# -- users, access and outbound mail (the workspace, API and sender) ----------

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # login name; agents.id for agents
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("role", sa.String(20), nullable=False),  # agent | supervisor | admin
    sa.Column("password_hash", sa.Text),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTC, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(200), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("last_used_at", UTC),
    sa.Column("revoked_at", UTC),
    # Migration 0008: a token may act with a lower role than its user's (None: the
    # user's role) and may expire.
    sa.Column("role", sa.String(20)),
    sa.Column("expires_at", UTC),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # sha256 of the cookie value
    sa.Column("user_id", sa.String(200), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("last_seen_at", UTC, nullable=False),
    sa.Column("expires_at", UTC, nullable=False),
)

# One row per outbound message (messages.direction = "out"): its delivery state.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),  # queued|sent|failed|bounced
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTC, index=True),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", UTC),
    sa.Column("updated_at", UTC, nullable=False),
)

drafts = sa.Table(
    "drafts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("user_id", sa.String(200), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),  # to/cc/bcc/subject/html/text/attachments
    sa.Column("updated_at", UTC, nullable=False),
    sa.UniqueConstraint("conversation_id", "user_id", name="uq_drafts_conversation_user"),
)

canned_responses = sa.Table(
    "canned_responses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("queue", sa.String(200)),  # None: every queue
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("html", sa.Text),
    sa.Column("created_at", UTC, nullable=False),
    # Migration 0008: the library folder it is filed under ("" : the top level).
    sa.Column("folder", sa.String(200), nullable=False, server_default=""),
    sa.Column("updated_at", UTC),
)

# Uploaded files waiting to be attached to a draft or an outbound message.
uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(200), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTC, nullable=False),
)

# -- outbound: the last automatic acknowledgement per address (migration 0004) --
# At most one acknowledgement per address within [outbound] auto_ack_window_s; the
# row is locked while a new one is decided, so two senders never both send.
auto_acks = sa.Table(
    "auto_acks",
    metadata,
    sa.Column("address", sa.String(320), primary_key=True),  # lower-cased
    sa.Column("last_sent_at", UTC, nullable=False),
    sa.Column("message_id", sa.Integer),  # the outbound message (not a foreign key: history)
)

# Which agents took part in which threads (were connected to one of its
# conversations): the access rule "an agent sees the threads they took part in"
# reads this instead of scanning events. Written by the router.
thread_agents = sa.Table(
    "thread_agents",
    metadata,
    sa.Column("thread_id", sa.Integer, sa.ForeignKey("threads.id"), primary_key=True),
    sa.Column("agent_id", sa.String(200), primary_key=True),
    sa.Index("ix_thread_agents_agent", "agent_id"),
)

# -- threading: references to messages not (yet) stored (migration 0007) ------
# A reply that arrives before the message it answers (an import out of order, an
# IMAP folder read newest first) starts a thread and leaves one row per unknown
# Message-ID it referenced; when that message arrives it joins the reply's thread.
awaited_references = sa.Table(
    "awaited_references",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("referenced_id", sa.String(500), nullable=False, index=True),
    sa.Column("thread_id", sa.Integer, sa.ForeignKey("threads.id"), nullable=False),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False),
    sa.Column("sender", sa.String(320)),  # of the referencing message, lower-cased
)


# -- administration (migration 0008) -----------------------------------------
# The configuration's version: every change to queues, routes, rules, agents'
# settings or the catalogs below bumps it in the change's transaction, so every
# process (intake, router, web, on any node) sees that it must re-read.
config_state = sa.Table(
    "config_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
    # Where the configuration came from at the first start ("file", "demo"), and
    # the sha256 of the configuration file's queues/routes/rules last seeded or
    # compared, so a start with a changed file can say so instead of overwriting.
    sa.Column("seeded_from", sa.String(40)),
    sa.Column("file_sha256", sa.String(64)),
)

# Append-only: one row per configuration, user, token or quarantine change,
# written in the change's own transaction.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTC, nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False, index=True),  # user id, or "system"/"cli"
    sa.Column("via", sa.String(20), nullable=False),  # session | token | cli | system
    sa.Column("action", sa.String(60), nullable=False, index=True),  # e.g. queue.update
    sa.Column("target_type", sa.String(40), nullable=False, index=True),  # queue, route, ...
    sa.Column("target_id", sa.String(320)),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
)

# Catalogs agents and routes refer to by name.
skills = sa.Table(
    "skills",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UTC, nullable=False),
)

languages = sa.Table(
    "languages",
    metadata,
    sa.Column("code", sa.String(35), primary_key=True),  # a BCP 47 tag: en, de, pt-BR
    sa.Column("name", sa.String(100), nullable=False, server_default=""),
    sa.Column("created_at", UTC, nullable=False),
)

wrapup_codes = sa.Table(
    "wrapup_codes",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UTC, nullable=False),
)

# -- webhooks (migration 0009) -------------------------------------------------
# Outside systems subscribed to event kinds. The `events` table is the outbox: a
# dispatcher reads it past `webhook_cursor` and writes one `webhook_deliveries`
# row per matching enabled webhook; a deliverer POSTs them, signed, with retries.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("event_types", sa.JSON, nullable=False),  # event kinds, or ["*"]
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
    sa.Column("event_id", sa.Integer),  # None for a test ping
    sa.Column("conversation_id", sa.Integer),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),  # pending|delivered|failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTC, index=True),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_attempt_at", UTC),
    sa.Column("delivered_at", UTC),
    sa.Column("created_at", UTC, nullable=False),
    # One delivery per event and webhook: a dispatcher that repeats a batch adds none.
    sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
    sa.Index("ix_webhook_deliveries_webhook_conversation", "webhook_id", "conversation_id"),
)

# The dispatcher's place in `events` (one row, id 1): every id up to `last_event_id`
# was looked at, except `gaps` — ids below it not seen yet (on PostgreSQL a lower id
# can commit after a higher one), each with the time it was first missed.
webhook_cursor = sa.Table(
    "webhook_cursor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("gaps", sa.JSON, nullable=False),  # {"<event id>": "<first missed, ISO>"}
    sa.Column("updated_at", UTC, nullable=False),
)

# -- analytics (services/analytics/projector.py projects `events` into these; rebuildable) -------
# One row per conversation (key "c<id>") or per message a rule discarded ("m<id>"):
# the summary columns the details query filters on, and the whole detail in `detail`.
analytics_conversations = sa.Table(
    "analytics_conversations",
    metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("conversation_id", sa.Integer, index=True),
    sa.Column("message_id", sa.Integer),
    sa.Column("started_at", UTC, nullable=False),
    sa.Column("ended_at", UTC),
    sa.Column("direction", sa.String(20), nullable=False),
    sa.Column("route", sa.String(320)),
    sa.Column("first_queue", sa.String(200)),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("wrapup_code", sa.String(200)),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Index("ix_analytics_conversations_started_key", "started_at", "key"),
)

# The segments of each conversation (wait, alert, interact, park, wrap-up), for
# filtering details by queue or agent.
analytics_segments = sa.Table(
    "analytics_segments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_key", sa.String(40), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("queue", sa.String(200)),
    sa.Column("agent", sa.String(200)),
    sa.Column("started_at", UTC, nullable=False),
    sa.Column("ended_at", UTC),
    sa.Column("outcome", sa.String(20)),
    sa.Index("ix_analytics_segments_agent_started", "agent", "started_at"),
    sa.Index("ix_analytics_segments_key_queue", "conversation_key", "queue"),
)

# Metric facts (analytics/metrics.py `observations`): one row per thing counted or
# timed, at the moment it counts; aggregates are computed from them at query time.
analytics_observations = sa.Table(
    "analytics_observations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_key", sa.String(40), nullable=False, index=True),
    sa.Column("metric", sa.String(40), nullable=False),
    sa.Column("at", UTC, nullable=False),
    sa.Column("start", UTC),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("queue", sa.String(200)),
    sa.Column("agent", sa.String(200)),
    sa.Column("route", sa.String(320)),
    sa.Column("wrapup_code", sa.String(200)),
    sa.Column("direction", sa.String(20)),
    sa.Index("ix_analytics_observations_at_metric", "at", "metric"),
    # service level is counted from the waits at query time: an index that covers it
    sa.Index("ix_analytics_observations_metric_at", "metric", "at", "queue", "value"),
)

# The facts rolled up per interval (analytics/rollup.py; services/analytics/intervals.py
# keeps them equal to the facts): per `level` ("15m": every 15 minutes UTC by every
# dimension; "1h-queue": every hour by queue, the other dimensions NULL), interval
# `start` and metric, the exact count, sum (microseconds), min and max (seconds) and a
# log-bucket sketch of the values for percentiles (JSON `[bucket, count, ...]`); the
# hourly rows also count the values by whole seconds (`waits`, for service level).
analytics_intervals = sa.Table(
    "analytics_intervals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("start", UTC, nullable=False),
    sa.Column("metric", sa.String(40), nullable=False),
    sa.Column("queue", sa.String(200)),
    sa.Column("agent", sa.String(200)),
    sa.Column("route", sa.String(320)),
    sa.Column("wrapup_code", sa.String(200)),
    sa.Column("direction", sa.String(20)),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("sum_us", sa.BigInteger, nullable=False),
    sa.Column("min", sa.Float, nullable=False),
    sa.Column("max", sa.Float, nullable=False),
    sa.Column("sketch", sa.Text, nullable=False),
    sa.Column("waits", sa.Text),  # levels that keep them: hex (seconds, cumulative) records
    sa.Index("ix_analytics_intervals_level_start", "level", "start", "metric"),
)

# Agents' status segments (analytics/users.py from `presence_changed` events; the
# analytics sink services/analytics/users.py keeps them): the open one has no end.
analytics_user_segments = sa.Table(
    "analytics_user_segments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("presence", sa.String(20), nullable=False),
    sa.Column("routing_status", sa.String(20), nullable=False),
    sa.Column("started_at", UTC, nullable=False, index=True),
    sa.Column("ended_at", UTC),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Index("ix_analytics_user_segments_agent_started", "agent", "started_at"),
)

# The tags of each conversation (from its `conversation_created` event; the sink
# services/analytics/tags.py keeps them), for the `tag` dimension of the aggregates.
analytics_conversation_tags = sa.Table(
    "analytics_conversation_tags",
    metadata,
    sa.Column("conversation_key", sa.String(40), primary_key=True),
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Index("ix_analytics_conversation_tags_tag", "tag"),
)

# The projector's place in `events` (one row, id 1), as `webhook_cursor`: every id up
# to `last_event_id` was projected, except `gaps` (ids not committed yet when read).
analytics_checkpoint = sa.Table(
    "analytics_checkpoint",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("gaps", sa.JSON, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
)
