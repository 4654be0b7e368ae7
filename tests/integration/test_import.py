"""`postroom import` keeps file order and threading: replies join the thread of the
message they answer, also when that message is large (spooled through the blob
store) or comes after the reply; Outlook's binary .msg files are reported, not
spooled."""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.cli import main
from postroom.store.schema import messages
from tests.mailfactory import make_email

BIG = b"\1" * 300_000  # above the spool's 256 KiB inline limit


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "postroom.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[[queues]]\nname = "support"\n[[routes]]\naddress = "support@example.com"\nqueue = "support"\n'
    )
    return cfg


def stored(tmp_path: Path) -> list[sa.Row[Any]]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'postroom.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(messages).order_by(messages.c.id)))
    finally:
        engine.dispose()


def pair(i: int) -> tuple[str, bytes, bytes]:
    root_id = f"<root{i}@customer{i}.example>"
    sender = f"Customer {i} <c{i}@customer{i}.example>"
    root = make_email(
        sender=sender,
        subject=f"Question {i}",
        message_id=root_id,
        attachment=("scan.bin", BIG, "application/octet-stream") if i % 2 == 0 else None,
    )
    reply = make_email(
        sender=sender,
        subject=f"Re: Question {i}",
        message_id=f"<reply{i}@customer{i}.example>",
        in_reply_to=root_id,
        references=root_id,
    )
    return root_id, root, reply


def test_import_keeps_file_order_and_every_reply_joins_its_root(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = mailbox.mbox(str(tmp_path / "archive.mbox"))
    order: list[str] = []
    for i in range(12):
        root_id, root, reply = pair(i)
        box.add(root)
        box.add(reply)
        order += [root_id.strip("<>"), f"reply{i}@customer{i}.example"]
    box.flush()
    assert main(["import", str(tmp_path / "archive.mbox"), "--config", str(config)]) == 0
    assert "imported 24 new of 24" in capsys.readouterr().out
    rows = stored(tmp_path)
    assert [r.header_message_id for r in rows] == order  # ids in file order
    assert {r.status for r in rows} == {"processed"}
    by_id = {r.header_message_id: r for r in rows}
    for i in range(12):
        root = by_id[f"root{i}@customer{i}.example"]
        reply = by_id[f"reply{i}@customer{i}.example"]
        assert (reply.thread_id, reply.conversation_id) == (root.thread_id, root.conversation_id)
    assert len({r.thread_id for r in rows}) == 12


def test_a_reply_imported_before_its_root_is_joined_by_it(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "folder"
    src.mkdir()
    _, root, reply = pair(0)  # a large root
    (src / "1-reply.eml").write_bytes(reply)
    (src / "2-root.eml").write_bytes(root)
    assert main(["import", str(src), "--config", str(config)]) == 0
    first, second = stored(tmp_path)
    assert first.header_message_id.startswith("reply0")
    assert (second.thread_id, second.conversation_id) == (first.thread_id, first.conversation_id)


def test_msg_files_in_rfc_822_form_are_read_outlook_ones_reported(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "folder"
    src.mkdir()
    (src / "saved.msg").write_bytes(make_email(subject="saved as text"))
    (src / "outlook.msg").write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 4000)
    (src / "notes.txt").write_bytes(b"not mail")
    assert main(["import", str(src), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "imported 1 new of 1" in out
    assert "skipped 1 Outlook .msg file" in err and "outlook.msg" in err
    (row,) = stored(tmp_path)
    assert row.subject == "saved as text"
