"""A throw-away Dovecot IMAP server on loopback for integration tests.

Starts Debian's `dovecot` in the foreground with its own configuration, mail
and state under a temporary folder, on a free 127.0.0.1 port, and stops it by
PID. It never touches the system configuration (/etc/dovecot) and never
starts the system service.

When the binary is missing the caller's test is skipped, unless the
environment variable CI is "true": there a missing server is a failure
(`apt-get install -y dovecot-imapd` provides it).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")
DEFAULT_USERS: dict[str, str] = {"support@example.org": "secret"}


def find_dovecot() -> str | None:
    """Return the path of the dovecot binary, or None."""
    for candidate in DOVECOT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("dovecot")


def require_dovecot() -> str:
    """Return the dovecot binary; skip the test without it (fail when CI=true)."""
    binary = find_dovecot()
    if binary is not None:
        return binary
    reason = (
        "Dovecot is not installed (no /usr/sbin/dovecot); "
        "install it with `apt-get install -y dovecot-imapd` to run the IMAP tests"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _descendants(root: int) -> list[int]:
    """PIDs of all live descendants of `root` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) in parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _is_dovecot(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"dovecot")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Dovecot:
    """One Dovecot instance rooted at `root`; restartable on the same port."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        binary: str | None = None,
        users: dict[str, str] | None = None,
        port: int | None = None,
        tls: bool = False,
    ) -> None:
        self.binary = binary or require_dovecot()
        # Dovecot's auth process (user dovecot) and mail processes (nobody) must
        # traverse the folder: pytest's tmp_path is 0700, so take our own.
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="postroom-dovecot-")) if root is None else root
        self.root = self.root.resolve()
        self.root.chmod(0o755)
        self.users = dict(users or DEFAULT_USERS)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        # With tls=True: STARTTLS on `port`, implicit TLS on `ssl_port`, and a
        # self-signed certificate for 127.0.0.1 in `cafile`.
        self.tls = tls
        self.ssl_port = free_port() if tls else 0
        self.cafile = self.root / "cert.pem"
        self.config = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    # -- configuration -------------------------------------------------

    def _write_config(self) -> None:
        root = self.root
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "users").write_text(
            "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in self.users.items())
        )
        (root / "users").chmod(0o644)
        ssl_conf = "ssl = no"
        if self.tls:
            self._make_certificate()
            ssl_conf = f"ssl = yes\nssl_cert = <{self.cafile}\nssl_key = <{root}/key.pem"
        if os.geteuid() == 0:
            # Mail owned by "nobody"; login processes run as Debian's dovenull/dovecot users.
            uid = gid = 65534
            os.chown(root / "mail", uid, gid)
            extra = ""
        else:
            # Unprivileged: everything runs as the current user.
            uid, gid = os.getuid(), os.getgid()
            name = pwd.getpwuid(uid).pw_name
            extra = (
                f"default_login_user = {name}\n"
                f"default_internal_user = {name}\n"
                "service imap {\n  user = $default_internal_user\n}\n"
            )
        self.config.write_text(
            f"""protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
{ssl_conf}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
first_valid_uid = {min(uid, 1000)}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.ssl_port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
{extra}"""
        )

    def _make_certificate(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl is needed to make a test certificate")
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(self.root / "key.pem"), "-out", str(self.cafile),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    # -- process -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"dovecot exited at start: {err}\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.port}\n{self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the master and every process it started, like a real outage.

        Dovecot's master leaves running mail processes (and their client
        connections) alive when it exits, so they are ended by PID too.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        children = _descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stderr is not None:
            proc.stderr.close()
        for pid in children:
            if _is_dovecot(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Wait until the port is free so a restart can bind it.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Stop the server and remove its folder if this object created it."""
        self.stop()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- client helpers --------------------------------------------------

    def client(self, user: str = "support@example.org") -> imaplib.IMAP4:
        """A logged-in imaplib client (the caller logs out)."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(user, self.users[user])
        return conn

    def append(
        self,
        raw: bytes,
        *,
        folder: str = "INBOX",
        user: str = "support@example.org",
        flags: str | None = None,
    ) -> None:
        """Deliver `raw` into `folder` with IMAP APPEND (RFC 3501 §6.3.11)."""
        conn = self.client(user)
        try:
            typ, data = conn.append(folder, flags, None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
        finally:
            conn.logout()

    def create_folder(self, folder: str, user: str = "support@example.org") -> None:
        conn = self.client(user)
        try:
            conn.create(folder)
        finally:
            conn.logout()

    def uids(
        self, folder: str = "INBOX", criteria: str = "ALL", user: str = "support@example.org"
    ) -> list[int]:
        """UIDs in `folder` matching a SEARCH criterion (read-only EXAMINE)."""
        conn = self.client(user)
        try:
            typ, _ = conn.select(folder, readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("SEARCH", criteria)
            return [int(x) for x in data[0].split()] if typ == "OK" and data[0] else []
        finally:
            conn.logout()

    def uidvalidity(self, folder: str = "INBOX", user: str = "support@example.org") -> int:
        conn = self.client(user)
        try:
            conn.select(folder, readonly=True)
            _, data = conn.response("UIDVALIDITY")
            return int(data[0]) if data and data[0] else 0
        finally:
            conn.logout()
