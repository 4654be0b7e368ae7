"""The parser's child process: same result as parsing inline, a time budget that
stops a parse, a dead child reported as such, and a fresh child for the next message."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator

import pytest

from postroom.ingest.parse_process import ProcessParser
from postroom.mail.model import ParsedMessage
from postroom.mail.parse import parse_message
from postroom.services.intake import ParserDied, ParseTimeout, cid_url
from tests.mailfactory import make_email


def hostile_parse(raw: bytes, *, cid_url: Callable[[str], str]) -> ParsedMessage:
    """Runs in the child: hangs, dies or fails on a marker, else parses."""
    if b"HANG" in raw:
        time.sleep(600)
    if b"DIE" in raw:
        os._exit(3)
    if b"FAIL" in raw:
        raise ValueError("cannot read this")
    return parse_message(raw, cid_url=cid_url)


@pytest.fixture
def parser() -> Iterator[ProcessParser]:
    p = ProcessParser(0.5, slow_s=5.0, parse=hostile_parse)
    yield p
    p.close()


def parse(p: ProcessParser, raw: bytes, pk: int = 7) -> ParsedMessage:
    return p.parse(pk, raw, functools.partial(cid_url, pk))


def test_result_is_what_parsing_inline_gives(parser: ProcessParser) -> None:
    raw = make_email(
        html='<p>Hi <img src="cid:logo@x"></p>',
        attachment=("a.pdf", b"%PDF-1.4 hello", "application/pdf"),
    )
    got = parse(parser, raw)
    want = parse_message(raw, cid_url=functools.partial(cid_url, 7))
    assert got == want and got.html == want.html
    assert [a.data for a in got.attachments] == [a.data for a in want.attachments]


def test_parse_over_budget_is_stopped_and_the_next_one_runs(parser: ProcessParser) -> None:
    with pytest.raises(ParseTimeout, match=r"took longer than 0\.5 s to parse"):
        parse(parser, make_email(subject="HANG"), pk=41)
    assert parse(parser, make_email(subject="fine")).subject == "fine"


def test_a_dying_child_is_reported_and_replaced(parser: ProcessParser) -> None:
    with pytest.raises(ParserDied, match="exit code 3"):
        parse(parser, make_email(subject="DIE"))
    assert parse(parser, make_email(subject="fine")).subject == "fine"


def test_errors_in_the_child_come_back_as_themselves(parser: ProcessParser) -> None:
    with pytest.raises(ValueError, match="cannot read this"):
        parse(parser, make_email(subject="FAIL"))
    assert parse(parser, make_email(subject="fine")).subject == "fine"


def test_close_stops_the_child(parser: ProcessParser) -> None:
    parse(parser, make_email())
    proc = parser._proc
    assert proc is not None and proc.is_alive()
    parser.close()
    assert not proc.is_alive()


def test_sigterm_to_the_process_group_does_not_kill_a_parse(parser: ProcessParser) -> None:
    import signal

    parse(parser, make_email())
    proc = parser._proc
    assert proc is not None and proc.pid is not None
    os.kill(proc.pid, signal.SIGTERM)  # what a service manager sends every process
    os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends
    time.sleep(0.2)
    assert proc.is_alive()
    assert parse(parser, make_email(subject="still here")).subject == "still here"


def test_a_hanging_parse_dies_with_a_killed_server(tmp_path: object) -> None:
    import signal
    import subprocess
    import sys

    # A server process whose parse hangs (it says so once the parse runs), then
    # kill -9 of that process.
    script = (
        "import functools, logging, threading\n"
        "from postroom.ingest.parse_process import ProcessParser\n"
        "from postroom.services.intake import cid_url\n"
        "from tests.unit.ingest.test_parse_process import hostile_parse\n"
        "running = threading.Event()\n"
        "class H(logging.Handler):\n"
        "    def emit(self, record):\n"
        "        if record.getMessage() == 'message still parsing': running.set()\n"
        "logging.getLogger('postroom.pipeline').addHandler(H())\n"
        "p = ProcessParser(600, slow_s=0.2, parse=hostile_parse)\n"
        "t = threading.Thread(target=p.parse, args=(1, b'Subject: HANG\\r\\n\\r\\n',"
        " functools.partial(cid_url, 1)), daemon=True)\n"
        "t.start()\n"
        "running.wait()\n"
        "print(p._proc.pid, flush=True)\n"
        "t.join()\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    child = int(server.stdout.readline())
    assert _alive(child)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_process_that_never_closes_its_parser_still_exits() -> None:
    import subprocess
    import sys

    script = (
        "import functools\n"
        "from postroom.ingest.parse_process import ProcessParser\n"
        "from postroom.services.intake import cid_url\n"
        "p = ProcessParser(5)\n"
        "print(p.parse(1, b'Subject: hi\\r\\n\\r\\nbody\\r\\n', functools.partial(cid_url, 1)).subject)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "hi\n")
