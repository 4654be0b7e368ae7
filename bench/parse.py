"""Parse throughput: postroom.mail.parse_message beside two stdlib baselines.

    .venv/bin/python bench/parse.py [--corpus DIR] [--rounds N] [--seed S]

Message set: a generated, deterministic mix (plain text, multipart/alternative with
HTML, attachments of 50-500 KB, RFC 2047 encoded headers, a reply thread with
quotes), plus the stalwart corpus messages when that folder exists. Every parser
sees the same bytes, in the same order, in the same process.

Baselines:
  stdlib policy.default: message_from_bytes(policy=default) + walk + get_content()
                         on every leaf (text and attachments)
  stdlib compat32:       message_from_bytes() + walk + get_payload(decode=True)
                         and a charset decode of text parts

Ours does more work than either baseline (address/date/id decoding, HTML
sanitizing, HTML-to-text, reply extraction, sha256 and type sniffing of each
attachment), so the comparison is conservative. Peak memory is measured in a
separate pass under tracemalloc (which slows everything down).
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import quopri
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from email.message import Message
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from postroom.mail.parse import parse_message  # noqa: E402

DEFAULT_CORPUS = REPO / ".." / "shared" / "corpus" / "stalwart-mail-parser"

_WORDS = (
    "order", "invoice", "delivery", "refund", "account", "password", "help", "please",
    "thanks", "regards", "package", "tracking", "number", "customer", "support", "issue",
    "broken", "screen", "replacement", "warranty", "Lieferung", "Rechnung", "Bestellung",
    "commande", "facture", "livraison",
)  # fmt: skip


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _body(rng: random.Random, paragraphs: int) -> str:
    return "\n\n".join(
        "\n".join(_sentence(rng, rng.randint(6, 12)) for _ in range(rng.randint(2, 5)))
        for _ in range(paragraphs)
    )


def _headers(rng: random.Random, index: int, encoded: bool) -> str:
    subject = f"Bestellung {index} – Rückfrage zur Lieferung" if encoded else f"Order {index}"
    if encoded:
        b64 = base64.b64encode(subject.encode()).decode()
        subject_header = f"=?utf-8?B?{b64}?="
        from_header = "=?iso-8859-1?Q?J=FCrgen_M=FCller?= <juergen@Example.DE>"
    else:
        subject_header = subject
        from_header = "Jane Customer <jane@example.com>"
    return (
        f"Return-Path: <bounce-{index}@example.com>\r\n"
        f"Received: from mx{index % 7}.example.com (mx.example.com [192.0.2.{index % 250}])\r\n"
        f"\tby mail.postroom.test with ESMTPS id abc{index}; Tue, 7 Apr 2026 10:00:01 +0000\r\n"
        f"From: {from_header}\r\n"
        f"To: Support <support@postroom.test>\r\n"
        f"Cc: Billing <billing@postroom.test>, =?utf-8?Q?Zo=C3=AB?= <zoe@example.org>\r\n"
        f"Subject: {subject_header}\r\n"
        f"Date: Tue, 7 Apr 2026 10:{index % 60:02d}:01 +0200\r\n"
        f"Message-ID: <msg-{index}-{rng.randrange(10**9)}@example.com>\r\n"
        f"In-Reply-To: <msg-{index - 1}@example.com>\r\n"
        f"References: <msg-{index - 3}@example.com>\r\n <msg-{index - 2}@example.com>\r\n"
        f" <msg-{index - 1}@example.com>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"X-Mailer: Bench 1.0\r\n"
        f"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from:to:subject;\r\n"
        f"\tb={base64.b64encode(rng.randbytes(128)).decode()}\r\n"
    )


def _plain(rng: random.Random, index: int) -> bytes:
    text = _body(rng, 3) + "\n\nOn Mon, 6 Apr 2026, Support wrote:\n> " + _sentence(rng, 10)
    return (
        _headers(rng, index, index % 2 == 0)
        + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + text.replace("\n", "\r\n")
        + "\r\n"
    ).encode()


def _html_of(text: str) -> str:
    paragraphs = "".join(f"<p style='color:#333'>{p}</p>" for p in text.split("\n\n"))
    return (
        f"<html><head><style>p{{margin:0}}</style></head><body><div>{paragraphs}</div>"
        "<div class='gmail_quote'><blockquote>Earlier message</blockquote></div>"
        "<img src='https://tracker.example.com/pixel.gif' width=1 height=1></body></html>"
    )


def _alternative(rng: random.Random, index: int, boundary: str = "alt-b") -> str:
    text = _body(rng, 4)
    html = _html_of(text)
    qp_html = quopri.encodestring(html.encode()).decode().replace("\n", "\r\n")
    return (
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp_html}\r\n"
        f"--{boundary}--\r\n"
    )


def _with_attachments(rng: random.Random, index: int) -> bytes:
    parts = [_alternative(rng, index)]
    for n in range(rng.randint(1, 2)):
        size = rng.randint(50_000, 500_000)
        data = b"%PDF-1.4\n" + rng.randbytes(size)
        encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
        parts.append(
            f'Content-Type: application/pdf; name="scan-{n}.pdf"\r\n'
            f"Content-Disposition: attachment; filename*=utf-8''R%C3%BCcksendung-{n}.pdf\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
    body = "".join(f"--mixed-b\r\n{p}\r\n" for p in parts) + "--mixed-b--\r\n"
    return (
        _headers(rng, index, True)
        + 'Content-Type: multipart/mixed; boundary="mixed-b"\r\n\r\n'
        + body
    ).encode()


def _html_alternative(rng: random.Random, index: int) -> bytes:
    return (_headers(rng, index, index % 3 == 0) + _alternative(rng, index)).encode()


def generated_messages(seed: int, count: int = 60) -> list[bytes]:
    rng = random.Random(seed)
    makers = (_plain, _html_alternative, _html_alternative, _plain, _with_attachments)
    return [makers[i % len(makers)](rng, i + 10) for i in range(count)]


def corpus_messages(corpus: Path) -> list[bytes]:
    if not corpus.is_dir():
        return []
    return [p.read_bytes() for p in sorted(corpus.glob("*/*.eml"))]


# --- parsers under test -----------------------------------------------------


def run_ours(raw: bytes) -> None:
    parse_message(raw, cid_url=lambda cid: f"/attachments/{cid}")


def run_policy_default(raw: bytes) -> None:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("subject", "from", "to", "cc", "date", "message-id"):
        message.get(name)
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            part.get_content()  # type: ignore[attr-defined]
        except (LookupError, ValueError, KeyError, AssertionError):
            part.get_payload(decode=True)


def run_compat32(raw: bytes) -> None:
    message: Message = email.message_from_bytes(raw)
    for name in ("subject", "from", "to", "cc", "date", "message-id"):
        message.get(name)
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and part.get_content_maintype() == "text":
            charset = part.get_content_charset() or "us-ascii"
            try:
                payload.decode(charset, "replace")
            except LookupError:
                payload.decode("latin-1")


PARSERS: dict[str, Callable[[bytes], None]] = {
    "postroom parse_message": run_ours,
    "stdlib policy.default": run_policy_default,
    "stdlib compat32": run_compat32,
}


def throughput(fn: Callable[[bytes], None], messages: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in messages:
            fn(raw)
        best = min(best, time.perf_counter() - start)
    return best


def peak_memory(fn: Callable[[bytes], None], messages: list[bytes]) -> int:
    tracemalloc.start()
    for raw in messages:
        fn(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def bench(name: str, messages: list[bytes], rounds: int) -> None:
    total = sum(len(m) for m in messages)
    print(f"\n{name}: {len(messages)} messages, {total / 1e6:.2f} MB, best of {rounds} rounds")
    print(f"{'parser':<26} {'msgs/s':>9} {'MB/s':>8} {'peak KiB':>9} {'ours is':>9}")
    results = {}
    for label, fn in PARSERS.items():
        fn(messages[0])  # warm imports and caches
        seconds = throughput(fn, messages, rounds)
        results[label] = (seconds, peak_memory(fn, messages))
    ours = results["postroom parse_message"][0]
    for label, (seconds, peak) in results.items():
        ratio = "" if label.startswith("postroom") else f"{seconds / ours:8.2f}x"
        print(
            f"{label:<26} {len(messages) / seconds:>9.0f} {total / 1e6 / seconds:>8.1f} "
            f"{peak / 2**10:>9.0f} {ratio:>9}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    generated = generated_messages(args.seed)
    small = [m for m in generated if len(m) < 40_000]
    large = [m for m in generated if len(m) >= 40_000]
    corpus = corpus_messages(args.corpus.resolve())
    print("'ours is' = how many times faster parse_message is than that baseline")
    bench("generated mix (all)", generated, args.rounds)
    bench("generated, without large attachments", small, args.rounds)
    bench("generated, only with 50-500 KB attachments", large, args.rounds)
    if corpus:
        bench("stalwart corpus", corpus, args.rounds)
        bench("generated mix + corpus", generated + corpus, args.rounds)
    else:
        print(f"\n(corpus not found at {args.corpus}; skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
