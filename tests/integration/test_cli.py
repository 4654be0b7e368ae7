"""The `postroom` command line: parse, status, import, quarantine."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
import sqlalchemy as sa

from postroom.runtime import settings as runtime_settings
from postroom.runtime import wiring
from postroom.runtime.cli import main
from postroom.services import configuration
from postroom.store.schema import audit_log
from tests.mailfactory import make_email


def apply_file(config: Path) -> None:
    """The database is the source of truth once seeded: apply the edited file to it."""
    settings = runtime_settings.load(config)
    engine = wiring.open_store(settings)
    try:
        with engine.begin() as conn:
            configuration.replace_all(conn, wiring.file_configuration(settings), wiring.utc_now())
    finally:
        engine.dispose()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "postroom.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[[queues]]\nname = "support"\n[[routes]]\naddress = "support@example.com"\nqueue = "support"\n'
    )
    return cfg


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def status(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, dict[str, int]]:
    code, out, _ = run(capsys, "status", "--json", "--config", str(config))
    assert code == 0
    return json.loads(out)  # type: ignore[no-any-return]


def test_parse_json_prints_the_normalized_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(
        make_email(subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=", attachment=("a.txt", b"hi", "text/plain"))
    )
    code, out, _ = run(capsys, "parse", str(eml), "--json")
    data = json.loads(out)
    assert code == 0 and data["subject"] == "Grüße"
    for key in (
        "subject",
        "from",
        "to",
        "cc",
        "reply_to",
        "date",
        "message_id",
        "in_reply_to",
        "references",
        "auto_submitted",
        "text",
        "html",
        "attachments",
        "defects",
    ):
        assert key in data
    assert data["from"] == {"name": "Alice Customer", "address": "alice@customer.example"}
    assert set(data["attachments"][0]) >= {
        "filename",
        "content_type",
        "size",
        "sha256",
        "content_id",
        "inline",
    }


def test_errors_are_one_clear_line_and_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "parse", str(tmp_path / "nope.eml"), "--json")
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 'x'\n")
    code, _, err = run(capsys, "status", "--json", "--config", str(bad))
    assert code == 2 and "smtp.port" in err


def test_status_json_shape(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = status(capsys, config)
    assert set(st["messages"]) >= {
        "received",
        "pending",
        "quarantined",
        "duplicates",
        "auto_generated",
    }
    assert st["threads"] == 0 and st["conversations"]["queued"] == 0


def test_import_eml_mbox_maildir_idempotent(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "one.eml").write_bytes(make_email(sender="a1@c.example"))
    box = mailbox.mbox(str(src / "archive.mbox"))
    for i in range(3):
        box.add(make_email(sender=f"m{i}@c.example"))
    box.flush()
    md = mailbox.Maildir(str(tmp_path / "Maildir"))
    md.add(make_email(sender="md@c.example"))
    md.flush()

    code, out, _ = run(capsys, "import", str(src), "--config", str(config))
    assert code == 0 and "imported 4 new of 4" in out
    code, out, _ = run(capsys, "import", str(tmp_path / "Maildir"), "--config", str(config))
    assert code == 0 and "imported 1 new of 1" in out
    code, out, _ = run(capsys, "import", str(src), "--config", str(config))
    assert "imported 0 new of 4" in out
    st = status(capsys, config)
    assert st["messages"]["received"] == 5 and st["conversations"]["queued"] == 5


def test_quarantine_list_show_retry_discard(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.eml").write_bytes(make_email(to="sales@elsewhere.example", subject="first"))
    (tmp_path / "b.eml").write_bytes(make_email(to="sales@elsewhere.example", subject="second"))
    run(capsys, "import", str(tmp_path / "a.eml"), "--config", str(config))
    run(capsys, "import", str(tmp_path / "b.eml"), "--config", str(config))
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--config", str(config))
    entries = json.loads(out)
    assert [e["stage"] for e in entries] == ["rules", "rules"]
    assert "no route matches" in entries[0]["error"]
    first, second = entries[0]["id"], entries[1]["id"]

    code, out, _ = run(capsys, "quarantine", "show", str(first), "--config", str(config))
    assert json.loads(out)["subject"] == "first"
    code = main(["quarantine", "show", str(first), "--raw", "--config", str(config)])
    raw = capsys.readouterr().out
    assert code == 0 and "Subject: first" in raw

    # Fix the configuration (add a route and apply the file), then retry: it goes through.
    config.write_text(
        config.read_text() + '[[routes]]\naddress = "sales@elsewhere.example"\nqueue = "support"\n'
    )
    apply_file(config)
    code, out, _ = run(capsys, "quarantine", "retry", str(first), "--config", str(config))
    assert code == 0 and f"{first}: processed" in out
    code, out, _ = run(
        capsys, "quarantine", "discard", str(second), "--reason", "test", "--config", str(config)
    )
    assert f"{second}: discarded" in out
    st = status(capsys, config)
    assert st["messages"]["quarantined"] == 0 and st["messages"]["discarded"] == 1
    code, _, err = run(capsys, "quarantine", "show", str(second), "--config", str(config))
    assert code == 2 and "not in quarantine" in err


def test_user_add_keeps_the_role_of_an_existing_user_unless_given(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("user", "add", "--config", str(config), "--no-password")
    assert run(capsys, *base, "sam", "--role", "supervisor")[0] == 0
    code, out, _ = run(capsys, *base, "sam", "--name", "Sam Super")
    assert code == 0 and "(supervisor)" in out
    code, out, _ = run(capsys, *base, "newbie")
    assert code == 0 and "(agent)" in out
    code, out, _ = run(capsys, *base, "sam", "--role", "admin")
    assert code == 0 and "(admin)" in out


def test_quarantine_hold_and_discard_pending_messages(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.eml").write_bytes(make_email(subject=f"pending {name}"))
        run(
            capsys, "import", str(tmp_path / f"{name}.eml"), "--no-process", "--config", str(config)
        )
    code, out, _ = run(capsys, "quarantine", "list", "--pending", "--json", "--config", str(config))
    pending = json.loads(out)
    assert code == 0 and [(e["status"], e["attempts"]) for e in pending] == [("pending", 0)] * 3
    a, b, _ = (e["id"] for e in pending)
    code, out, _ = run(capsys, "quarantine", "list", "--pending", "--config", str(config))
    assert "0 attempt(s)" in out and "3 message(s) pending" in out

    code, out, _ = run(capsys, "quarantine", "hold", str(a), "--config", str(config))
    assert code == 0 and f"{a}: quarantined" in out
    code, out, _ = run(capsys, "quarantine", "discard", str(b), "--config", str(config))
    assert code == 0 and f"{b}: discarded" in out
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--config", str(config))
    held = json.loads(out)
    assert [(e["id"], e["stage"], e["error"]) for e in held] == [
        (a, "operator", "held by an operator")
    ]
    code, _, err = run(capsys, "quarantine", "hold", str(b), "--config", str(config))
    assert code == 2 and f"message {b} is not pending" in err

    code, out, _ = run(capsys, "import", str(tmp_path / "c.eml"), "--config", str(config))
    st = status(capsys, config)["messages"]
    assert (st["pending"], st["processed"], st["quarantined"], st["discarded"]) == (0, 1, 1, 1)
    code, out, _ = run(capsys, "quarantine", "retry", str(a), "--config", str(config))
    assert code == 0 and f"{a}: processed" in out


def test_quarantine_help_names_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["quarantine", "--help"])
    out = capsys.readouterr().out
    for action in ("list", "show", "retry", "hold", "discard"):
        assert action in out
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text("utf-8")
    for command in ("quarantine list --pending", "quarantine hold", "quarantine discard"):
        assert f"postroom {command}" in docs


def test_quarantine_release_a_sender_from_the_loop_guard_with_audit_entries(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(config.read_text() + "[intake]\nloop_guard_max_messages = 1\n")
    for i in range(3):
        (tmp_path / f"{i}.eml").write_bytes(make_email(sender="bot@loop.example", subject=f"auto {i}"))
        run(capsys, "import", str(tmp_path / f"{i}.eml"), "--config", str(config))
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--config", str(config))
    held = [e["id"] for e in json.loads(out) if e["stage"] == "loop_guard"]
    assert len(held) == 2
    code, out, _ = run(
        capsys, "quarantine", "release", "--message", str(held[0]), "--config", str(config)
    )
    assert code == 0 and out.splitlines() == [f"{pk}: processed" for pk in held]
    code, _, err = run(
        capsys, "quarantine", "release", "--sender", "BOT@loop.example", "--config", str(config)
    )
    assert code == 2 and "holds no message from bot@loop.example" in err
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'postroom.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.actor, audit_log.c.via, audit_log.c.action)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("cli", "cli", "quarantine.release")] * 2
