"""A loopback TCP relay between one process and a server, which a test can
stall (bytes stop flowing, every socket stays open: a black hole) or cut
(every connection is closed and new ones are dropped at once), then heal."""

from __future__ import annotations

import select
import socket
import threading


class Forwarder:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.cut_off = False
        self.closed = False
        self.attempts = 0  # connections the process tried (accepted, also those dropped while cut)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="forwarder", daemon=True).start()

    def url(self, db: int = 0, query: str = "") -> str:
        return f"redis://127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def stall(self) -> None:
        self.flowing.clear()

    def cut(self) -> None:
        """Close every relayed connection; new ones are dropped until heal()."""
        self.cut_off = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            _close(s)

    def heal(self) -> None:
        self.cut_off = False
        self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.flowing.set()
        _close(self.listener)

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.attempts += 1
            if self.cut_off:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                readable, _, _ = select.select([src], [], [], 0.05)
                if not readable:
                    if src.fileno() < 0:
                        return
                    continue
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()  # a stall that began while we read holds these bytes too
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
