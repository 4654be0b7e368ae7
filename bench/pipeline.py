"""Pipeline throughput: how many spooled messages a second intake takes to a conversation.

Spools N messages (25 KiB plain text, and the same with an HTML alternative),
then times `IntakeService.drain()` on SQLite in a temporary folder: parse,
classify, thread, rules, conversation and the commit, per message.

    .venv/bin/python bench/pipeline.py [--messages 600] [--html] [--dir /dev/shm]

`--dir` puts the data folder elsewhere: on a tmpfs, fsync costs nothing and the
figure is the pipeline's own CPU cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from postroom.runtime.settings import from_mapping  # noqa: E402
from postroom.runtime.wiring import build  # noqa: E402

SIZE = 25 * 1024


def message(i: int, html: bool) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"c{i}@customer.example"  # distinct senders: no loop guard
    msg["To"] = "support@example.com"
    msg["Subject"] = f"bench {i}"
    msg["Message-ID"] = f"<p{i}.{time.time_ns()}@customer.example>"
    line = "The quick brown fox jumps over the lazy dog. 0123456789\n"
    text = line * (SIZE // len(line))
    msg.set_content(text)
    if html:
        msg.add_alternative("<html><body>" + "<p>" + text.replace("\n", "</p><p>") + "</p>")
    return msg.as_bytes(policy=SMTP)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--html", action="store_true", help="add an HTML alternative part")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where the data goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        settings = from_mapping(
            {
                "intake": {"loop_guard_max_messages": 0},
                "queues": [{"name": "support"}],
                "routes": [{"address": "support@example.com", "queue": "support"}],
            }
        )
        comps = build(replace(settings, data_dir=Path(tmp) / "data"))
        spool = comps.spool()
        futures = [
            spool.submit(message(i, args.html), source="smtp", envelope_to=["support@example.com"])
            for i in range(args.messages)
        ]
        for f in futures:
            f.result()
        comps.intake.process_pending(5)  # warm up caches and any worker process
        start = time.perf_counter()
        done = comps.intake.drain()
        elapsed = time.perf_counter() - start
        comps.close()
    kind = "25 KiB text + HTML" if args.html else "25 KiB text"
    print(f"pipeline, {kind}: {done} messages in {elapsed:.2f} s = {done / elapsed:,.0f} msgs/s")


if __name__ == "__main__":
    main()
