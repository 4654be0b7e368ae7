"""Conformance of postroom.mail.parse_message against the stalwart mail-parser corpus.

Runs every ``*.eml`` of the corpus (see its README.md for the expectation format) in
its LF-only and CRLF forms, compares the fields that matter to Postroom and prints,
per field, how many messages match. Exits non-zero if ``parse_message`` raised (or
fell back to its last-resort error path) on any message, ``malformed/`` included.

    .venv/bin/python bench/conformance.py [CORPUS_DIR] [--show-mismatches FIELD]

Deliberate differences from the expectations (not counted as mismatches):

* Raw 8-bit header bytes that are not UTF-8: the corpus decodes them as UTF-8 with
  U+FFFD; we fall back to cp1252/Latin-1 (legible names and subjects). Where the
  expectation holds U+FFFD, both sides are compared with non-ASCII removed.
* Text body: ours is the *first* text/plain part of the readable body (the corpus
  lists every inline text part and HTML-only bodies in text_body). We compare our
  text with the first plain-text part of the expectation's text_body, and only when
  there is one (HTML-only messages are counted as "n/a").
* Attachments: further inline text parts after the body in multipart/mixed are
  attachments for us (never silently dropped); the corpus folds them into the body.
  Attachment details (types, names, sizes) are compared only where counts agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from postroom.mail.model import Address, ParsedMessage  # noqa: E402
from postroom.mail.parse import parse_message  # noqa: E402

DEFAULT_CORPUS = REPO / ".." / "shared" / "corpus" / "stalwart-mail-parser"
FIELDS = (
    "subject",
    "from",
    "to",
    "cc",
    "date",
    "message_id",
    "in_reply_to",
    "references",
    "text_body",
    "html_presence",
    "attachment_count",
    "attachment_types",
    "attachment_filenames",
    "attachment_sizes",
)


@dataclass
class Outcome:
    matched: Counter[str]
    compared: Counter[str]
    raised: list[str]
    mismatches: dict[str, list[str]]


def _norm(text: str | None) -> str:
    return " ".join((text or "").replace("\r", "").split())


def _same_text(ours: str | None, expected: str | None) -> bool:
    a, b = _norm(ours), _norm(expected)
    if a == b:
        return True
    if "\ufffd" in b:  # see "Deliberate differences" above
        return _ascii(a) == _ascii(b)
    return False


def _ascii(text: str) -> str:
    return " ".join("".join(ch for ch in text if ord(ch) < 128).split())


def _header(part: dict[str, Any], name: str) -> Any:
    for header in part["headers"]:
        if header["name"] == name:
            return header["value"]
    return None


def _text_value(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Text" in value:
            return str(value["Text"])
        if "TextList" in value:
            return " ".join(value["TextList"])
    return None


def _id_list(value: Any) -> list[str]:
    if isinstance(value, dict):
        if "Text" in value:
            return [value["Text"]]
        if "TextList" in value:
            return list(value["TextList"])
    return []


def _address_list(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or "Address" not in value:
        return []
    inner = value["Address"]
    items = inner.get("List") or []
    for group in inner.get("Group") or []:
        items.extend(group.get("addresses") or [])
    return [((a.get("name") or ""), (a.get("address") or "")) for a in items]


def _same_addresses(ours: tuple[Address, ...], expected: list[tuple[str, str]]) -> bool:
    if len(ours) != len(expected):
        return False
    for mine, (name, address) in zip(ours, expected, strict=True):
        if mine.address.lower() != address.lower():
            return False
        if not _same_text(mine.name, name):
            return False
    return True


def _expected_date(value: Any) -> datetime | None:
    if not isinstance(value, dict) or "DateTime" not in value:
        return None
    d = value["DateTime"]
    offset = timedelta(hours=d["tz_hour"], minutes=d["tz_minute"])
    if d["tz_before_gmt"]:
        offset = -offset
    try:
        return datetime(
            d["year"], d["month"], d["day"], d["hour"], d["minute"], d["second"],
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None


def _content_type(part: dict[str, Any], default: str) -> str:
    value = _header(part, "content_type")
    if isinstance(value, dict) and "ContentType" in value:
        ct = value["ContentType"]
        sub = ct.get("c_subtype")
        return f"{ct['c_type']}/{sub}".lower() if sub else str(ct["c_type"]).lower()
    return default


def _param(part: dict[str, Any], header: str, name: str) -> str | None:
    value = _header(part, header)
    if isinstance(value, dict) and "ContentType" in value:
        for attribute in value["ContentType"].get("attributes") or []:
            if attribute["name"].lower() == name:
                return str(attribute["value"])
    return None


def _compare(ours: ParsedMessage, expected: dict[str, Any], outcome: Outcome, label: str) -> None:
    root = expected["parts"][0]
    parts = expected["parts"]

    def record(field: str, ok: bool, detail: str = "") -> None:
        outcome.compared[field] += 1
        if ok:
            outcome.matched[field] += 1
        else:
            outcome.mismatches.setdefault(field, []).append(f"{label}: {detail}")

    exp_subject = _text_value(_header(root, "subject")) or ""
    record("subject", _same_text(ours.subject, exp_subject), f"{ours.subject!r} vs {exp_subject!r}")
    exp_from = _address_list(_header(root, "from"))
    ours_from = (ours.from_,) if ours.from_ else ()
    record("from", _same_addresses(ours_from, exp_from[:1]), f"{ours_from} vs {exp_from}")
    for name, mine in (("to", ours.to), ("cc", ours.cc)):
        exp = _address_list(_header(root, name))
        record(name, _same_addresses(mine, exp), f"{mine} vs {exp}")
    exp_date = _expected_date(_header(root, "date"))
    ok_date = (ours.date is None and exp_date is None) or (
        ours.date is not None
        and exp_date is not None
        and ours.date.replace(tzinfo=None) == exp_date.replace(tzinfo=None)
        and (ours.date.utcoffset() or timedelta(0)) == exp_date.utcoffset()
    )
    record("date", ok_date, f"{ours.date} vs {exp_date}")
    exp_mid = _text_value(_header(root, "message_id"))
    record("message_id", ours.message_id == exp_mid, f"{ours.message_id!r} vs {exp_mid!r}")
    for name, mine_ids in (("in_reply_to", ours.in_reply_to), ("references", ours.references)):
        exp_ids = _id_list(_header(root, name))
        record(name, list(mine_ids) == exp_ids, f"{mine_ids} vs {exp_ids}")

    exp_text = None
    for index in expected["text_body"]:
        body = parts[index]["body"]
        if isinstance(body, dict) and "Text" in body:
            if _content_type(parts[index], "text/plain") == "text/plain":
                exp_text = body["Text"]
            break
    if exp_text is not None:
        record(
            "text_body", _same_text(ours.text, exp_text), f"{ours.text[:80]!r} vs {exp_text[:80]!r}"
        )
    exp_html = any(
        isinstance(parts[i]["body"], dict) and "Html" in parts[i]["body"]
        for i in expected["html_body"]
    )
    record("html_presence", (ours.html is not None) == exp_html, f"{ours.html is not None}")

    exp_atts = [parts[i] for i in expected["attachments"]]
    count_ok = len(exp_atts) == len(ours.attachments)
    record("attachment_count", count_ok, f"{len(ours.attachments)} vs {len(exp_atts)}")
    if count_ok and exp_atts:
        types = [_content_type(p, "text/plain") for p in exp_atts]
        mine_types = [a.content_type for a in ours.attachments]
        record("attachment_types", types == mine_types, f"{mine_types} vs {types}")
        names = [
            _param(p, "content_disposition", "filename") or _param(p, "content_type", "name")
            for p in exp_atts
        ]
        mine_names = [a.filename for a in ours.attachments]
        # Only declared names are compared (ours are made safe and never empty).
        ok_names = all(
            n is None or _same_text(m, n) for m, n in zip(mine_names, names, strict=True)
        )
        record("attachment_filenames", ok_names, f"{mine_names} vs {names}")
        sizes: list[int | None] = []
        for p in exp_atts:
            body = p["body"]
            if isinstance(body, dict) and ("Binary" in body or "InlineBinary" in body):
                sizes.append(len(body.get("Binary") or body.get("InlineBinary") or []))
            else:
                sizes.append(None)  # text or message bodies: sizes are not comparable
        mine_sizes = [a.size for a in ours.attachments]
        ok_sizes = all(s is None or s == m for m, s in zip(mine_sizes, sizes, strict=True))
        record("attachment_sizes", ok_sizes, f"{mine_sizes} vs {sizes}")


def run(corpus: Path) -> Outcome:
    outcome = Outcome(Counter(), Counter(), [], {})
    for eml in sorted(corpus.glob("*/*.eml")):
        raw = eml.read_bytes()
        lf = raw.replace(b"\r", b"")
        crlf = lf.replace(b"\n", b"\r\n")
        for form, data, suffix in (("lf", lf, ".json"), ("crlf", crlf, ".crlf.json")):
            label = f"{eml.parent.name}/{eml.name} [{form}]"
            try:
                parsed = parse_message(data)
            except Exception as exc:  # the contract is "never raises"
                outcome.raised.append(f"{label}: {exc!r}")
                continue
            if any(d.startswith("parser failure") for d in parsed.defects):
                outcome.raised.append(f"{label}: {parsed.defects}")
            expectation = eml.with_suffix(suffix)
            if form == "lf" and expectation.exists():
                _compare(parsed, json.loads(expectation.read_text("utf-8")), outcome, label)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--show-mismatches", metavar="FIELD", action="append", default=[])
    args = parser.parse_args(argv)
    corpus: Path = args.corpus.resolve()
    if not corpus.is_dir():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    outcome = run(corpus)
    print(f"corpus: {corpus}")
    print(f"{'field':<22} {'matched':>8} {'compared':>9} {'rate':>7}")
    for field_name in FIELDS:
        compared = outcome.compared[field_name]
        matched = outcome.matched[field_name]
        rate = f"{100 * matched / compared:6.1f}%" if compared else "   n/a"
        print(f"{field_name:<22} {matched:>8} {compared:>9} {rate:>7}")
    for field_name in args.show_mismatches:
        print(f"\nmismatches for {field_name}:")
        for line in outcome.mismatches.get(field_name, []):
            print("  " + line)
    if outcome.raised:
        print("\nparse_message raised on:", file=sys.stderr)
        for line in outcome.raised:
            print("  " + line, file=sys.stderr)
        return 1
    print("\nparse_message raised on nothing (LF and CRLF forms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
