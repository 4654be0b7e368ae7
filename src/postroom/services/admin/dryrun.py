"""The dry run: what intake would decide for one email, explained, with nothing stored.

Given a raw RFC 5322 message (or headers and a body, made into one), it parses
it with the normal parser (mail/parse.py), picks the route the way intake does
(domain/routes.py `find_route` over mail/rules.py `message_recipients`), and
runs every stored rule in order through mail/rules.py `explain` — the same code
intake's `decide` runs — including the disabled ones, shown as such. Rules not
yet saved may be given instead of the stored ones.

It reads the configuration and writes nothing: no message, no conversation, no
audit entry. It knows nothing of HTTP.
"""

from __future__ import annotations

import email.errors
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import InvalidConfigField, MessageTooLargeError, NoRouteError
from postroom.domain.routes import Route, Rule, find_route
from postroom.mail import compose as mc
from postroom.mail import rules as rule_engine
from postroom.mail.model import ParsedMessage
from postroom.mail.parse import parse_message
from postroom.services.admin import rules as rule_svc
from postroom.services.admin.schema import RouteModel, RuleModel
from postroom.store.schema import routes

MAX_RAW = 1 << 20  # bytes of one message given to the dry run
MAX_HEADERS = 100
SAMPLE_REFERENCE = "PR-0"  # stands for the thread's reference in a rendered acknowledgement


def compose_raw(headers: Mapping[str, str], text: str, html: str | None = None) -> bytes:
    """One RFC 5322 message from headers and a text (and HTML) body."""
    msg = EmailMessage(policy=default_policy)
    try:
        for name, value in headers.items():
            msg[name] = value.replace("\r", " ").replace("\n", " ")
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
        raw = msg.as_bytes()
    except (ValueError, TypeError, IndexError, LookupError, email.errors.MessageError) as exc:
        raise InvalidConfigField(
            "headers", f"these headers cannot make an email ({exc}); give Name: value pairs"
        ) from exc
    if len(raw) > MAX_RAW:
        raise MessageTooLargeError(f"the message is larger than {MAX_RAW} bytes; shorten it")
    return raw


def _message(msg: ParsedMessage) -> dict[str, Any]:
    return {
        "subject": msg.subject,
        "from": msg.from_.to_json() if msg.from_ else None,
        "to": [a.to_json() for a in msg.to],
        "cc": [a.to_json() for a in msg.cc],
        "message_id": msg.message_id,
        "auto_submitted": msg.auto_submitted,
        "defects": list(msg.defects[:20]),
    }


def _rule_out(result: rule_engine.RuleResult, rule_id: int | None) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": result.rule.name,
        "status": result.status,
        "matched": result.matched,
        "because": result.because,
        "match": result.rule.match,
        "conditions": [
            {
                "field": c.condition.field,
                "op": c.condition.op,
                "value": c.condition.value,
                "negate": c.condition.negate,
                "matched": c.matched,
            }
            for c in result.conditions
        ],
    }


def explain_message(
    route_list: Sequence[tuple[int | None, Route, dict[str, Any]]],
    rule_list: Sequence[tuple[int | None, Rule, bool]],
    msg: ParsedMessage,
    envelope_to: Sequence[str] = (),
) -> dict[str, Any]:
    """The explanation as the API answers it. `route_list`: (id, route, its public
    form) in order; `rule_list`: (id, rule, enabled) in order."""
    recipients = rule_engine.message_recipients(envelope_to, msg)
    out: dict[str, Any] = {"message": _message(msg), "recipients": recipients}
    route = find_route([r for _, r, _ in route_list], recipients)
    if route is None:
        out.update(
            route=None,
            no_route=str(NoRouteError(recipients)),
            rules=[],
            result=None,
        )
        return out
    rid, public = next((i, p) for i, r, p in route_list if r is route)
    found = rule_engine.explain(route, [(r, on) for _, r, on in rule_list], msg, recipients)
    d = found.decision
    name = (
        msg.from_.name if msg.from_ and msg.from_.name else (msg.from_.address if msg.from_ else "")
    )
    rendered = (
        mc.render_template(d.auto_ack, reference=SAMPLE_REFERENCE, name=name, subject=msg.subject)
        if d.auto_ack
        else None
    )
    out.update(
        route={"id": rid, **public},
        no_route=None,
        rules=[
            _rule_out(res, rule_id)
            for res, (rule_id, _, _) in zip(found.rules, rule_list, strict=True)
        ],
        result={
            "queue": d.queue,
            "priority": d.priority,
            "skills": {skill: level for skill, level in d.skills},
            "language": d.language,
            "tags": list(d.tags),
            "auto_ack": d.auto_ack,
            "auto_ack_rendered": rendered,
            "discard_reason": d.discard_reason,
            "preferred_agents": list(d.preferred_agents),
            "preferred_window_s": d.preferred_window_s,
            "deadline_s": d.deadline_s,
            "reply_from": d.reply_from,
            "reply_from_name": route.reply_from_name,
            "matched_rules": list(d.matched_rules),
        },
    )
    return out


def stored(
    conn: sa.Connection,
) -> tuple[list[tuple[int | None, Route, dict[str, Any]]], list[tuple[int | None, Rule, bool]]]:
    """The stored routes and every rule (disabled ones too), in order."""
    route_list: list[tuple[int | None, Route, dict[str, Any]]] = []
    for row in conn.execute(sa.select(routes).order_by(routes.c.position, routes.c.id)):
        route = RouteModel.model_validate(row.config)
        route_list.append((int(row.id), route.to_domain(), route.public()))
    rule_list: list[tuple[int | None, Rule, bool]] = []
    for row in rule_svc.rows_in_order(conn):
        model = rule_svc.model_of(row)
        rule_list.append((int(row.id), model.to_domain(), model.enabled))
    return route_list, rule_list


def dry_run(
    db: sa.Engine,
    raw: bytes,
    *,
    envelope_to: Sequence[str] = (),
    rules: Sequence[RuleModel] | None = None,
) -> dict[str, Any]:
    """Explain what intake would do with `raw` now. `rules`, when given, replace the
    stored rules (try a rule set before saving it). Nothing is stored."""
    if len(raw) > MAX_RAW:
        raise MessageTooLargeError(
            f"the message is {len(raw)} bytes; the dry run takes at most {MAX_RAW}"
        )
    msg = parse_message(raw)
    with db.connect() as conn:
        route_list, rule_list = stored(conn)
    if rules is not None:
        rule_list = [(None, r.to_domain(), r.enabled) for r in rules]
    return explain_message(route_list, rule_list, msg, [a.strip().lower() for a in envelope_to])
