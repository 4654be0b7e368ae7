"""Parse time of an HTML nesting bomb beside a normal message, in the same run.

    .venv/bin/python bench/parse_bomb.py [--depth N] [--rounds N] [--json]

The bomb is the one from the field report: an HTML part of ``<div>`` nested
--depth times (100,000 by default: 500 KB), with no text
alternative. The normal message is a multipart/alternative reply with a
newsletter-sized HTML part (about 60 KB). Each is parsed --rounds times with
postroom.mail.parse.parse_message; the best round is reported, in seconds.

With --json the last line is one JSON object with the keys ``bomb_parse_s`` and
``baseline_normal_parse_s`` (plus the sizes and what the parser did).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from postroom.mail.parse import parse_message  # noqa: E402


def _message(parts: list[tuple[str, str]]) -> bytes:
    head = (
        "From: Jane Customer <jane@example.com>\r\nTo: support@postroom.test\r\n"
        "Subject: Where is my order?\r\nMessage-ID: <bench@example.com>\r\n"
        "Date: Tue, 7 Apr 2026 10:00:01 +0200\r\nMIME-Version: 1.0\r\n"
    )
    if len(parts) == 1:
        ctype, body = parts[0]
        return (head + f"Content-Type: {ctype}; charset=utf-8\r\n\r\n{body}\r\n").encode()
    out = head + 'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    for ctype, body in parts:
        out += f"--alt\r\nContent-Type: {ctype}; charset=utf-8\r\n\r\n{body}\r\n"
    return (out + "--alt--\r\n").encode()


def bomb(depth: int) -> bytes:
    return _message([("text/html", "<div>" * depth + "Hello, where is my order?")])


def normal() -> bytes:
    text = "Hello,\n\nmy order 4711 has not arrived yet. Could you check?\n\nThanks, Jane\n"
    row = (
        '<tr><td style="padding:4px;color:#333"><a href="https://shop.example/p/1">'
        "Product name</a></td><td><img src=\"https://cdn.example/i.png\" width=50></td>"
        "<td>Some text &amp; a price: 10 EUR</td></tr>\n"
    )
    html = (
        "<html><body><p>Hello,</p><p>my order 4711 has not arrived yet.</p>"
        '<div class="gmail_quote"><blockquote><table>' + row * 300 + "</table></blockquote>"
        "</div></body></html>"
    )
    return _message([("text/plain", text), ("text/html", html)])


def best_of(raw: bytes, rounds: int) -> tuple[float, tuple[str, ...], bool]:
    best = float("inf")
    defects: tuple[str, ...] = ()
    rich = False
    for _ in range(rounds):
        start = time.perf_counter()
        parsed = parse_message(raw)
        best = min(best, time.perf_counter() - start)
        defects, rich = parsed.defects, parsed.html is not None
    return best, defects, rich


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=100_000, help="nesting depth of the bomb")
    parser.add_argument("--rounds", type=int, default=3, help="parses of each message")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    bomb_raw, normal_raw = bomb(args.depth), normal()
    bomb_s, bomb_defects, bomb_rich = best_of(bomb_raw, args.rounds)
    normal_s, _, normal_rich = best_of(normal_raw, args.rounds)
    print(f"bomb:   {len(bomb_raw):>9,} bytes  {bomb_s * 1000:8.1f} ms  html kept: {bomb_rich}")
    for defect in bomb_defects:
        print(f"        defect: {defect}")
    size, ms = len(normal_raw), normal_s * 1000
    print(f"normal: {size:>9,} bytes  {ms:8.1f} ms  html kept: {normal_rich}")
    if args.json:
        print(
            json.dumps(
                {
                    "bomb_parse_s": round(bomb_s, 6),
                    "baseline_normal_parse_s": round(normal_s, 6),
                    "bomb_bytes": len(bomb_raw),
                    "normal_bytes": len(normal_raw),
                    "bomb_depth": args.depth,
                    "bomb_html_kept": bomb_rich,
                    "bomb_defects": list(bomb_defects),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
