"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, per path:

    /img/NAME.png        a valid PNG (bytes depend on NAME)
    /missing.png         404                 /forbidden.png   403
    /flaky/KEY.png       500 the first time for KEY, then the PNG
    /limited/KEY.png     429 (Retry-After: 1) the first time, then the PNG
    /slow/NAME.png       the PNG in small pieces with pauses (slow_delay)
    /big.png             announces 10 MB     /endless.png     streams past any limit, no length
    /page.html           text/html           /fake.png        image/png header, HTML body
    /toggle.png          404 until `server.toggle_on = True`
    /redirect/NAME.png   302 to /img/NAME.png  /loop.png      302 to itself, for ever
    /chunked/NAME.png    the PNG, chunked      /drop/NAME.png the PNG, then the idle connection is dropped
    /changing/NAME.png   like /slow/, but its bytes (and ETag) change with `server.version`
    /norange/NAME.png    like /slow/, but Range is ignored: always 200 and the whole body
    /badrange/NAME.png   like /slow/, but a Range is answered 206 from byte 0
    /early/NAME.png      103 Early Hints, then the PNG
    /busy/VALUE          503 with Retry-After: VALUE (%-decoded)
    /to-file.png         302 to file:///etc/passwd
    anything else        a valid PNG (for path-traversal URLs)
It counts hits per path, so tests can tell what was downloaded twice.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from PIL import Image


def png(name: str, size: int = 48) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((size, size), 40 + len(name) % 50).convert("RGB").save(out, "PNG")
    return out.getvalue()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass


class _Served:
    """A threaded HTTP server on 127.0.0.1, in the background until ``stop``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MisbehavingServer(_Served):
    def __init__(self, slow_delay: float = 0.05, slow_size: int = 120, tls: ssl.SSLContext | None = None) -> None:
        self.hits: Counter[str] = Counter()
        self.ranges: list[tuple[str, int]] = []  # (path, first byte asked) of Range requests
        self.if_ranges: list[tuple[str, str | None]] = []  # (path, If-Range sent with the Range)
        self.toggle_on = False
        self.slow_delay = slow_delay
        self.slow_body = png("slow", slow_size)
        self.version = 0
        self.connections = 0  # TCP connections accepted
        self.aborted: list[str] = []  # paths whose body a client stopped reading mid-way
        self.cap, self.in_flight, self.most_in_flight, self.refused = 2, 0, 0, 0  # /capped/: 429 beyond cap at once
        self.bodies_in_flight = self.most_bodies_in_flight = 0  # slow bodies being sent at once, and the most
        self.lock = threading.Lock()
        self.starts: list[tuple[float, str]] = []  # (monotonic time, path) of every request
        self.paused_at: float | None = None  # /pause-once/: when it answered 503 + Retry-After: 3
        self._count = threading.Lock()
        self._versions: dict[int, bytes] = {}
        self._serve(self._handler(), tls)

    def changing_body(self) -> bytes:
        """The same bytes for one version (png() draws fresh noise each call)."""
        if self.version not in self._versions:
            self._versions[self.version] = png(f"changing-{self.version}", 760)
        return self._versions[self.version]

    def _handler(self):
        server = self

        class Handler(_Quiet):
            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                path = self.path
                server.hits[path] += 1
                server.starts.append((time.monotonic(), path))
                if path.startswith("/capped/"):
                    return self.capped()
                if path.startswith("/pause-once/") and server.paused_at is None:
                    server.paused_at = time.monotonic()  # the host's first answer asks every client for 3 s
                    return self.send(503, b"busy", "text/plain", {"Retry-After": "3"})
                if path.startswith("/pause-once/"):
                    time.sleep(0.02)
                first = server.hits[path] == 1
                if path == "/missing.png" or (path == "/toggle.png" and not server.toggle_on):
                    return self.send(404, b"no such image", "text/plain")
                if path == "/forbidden.png":
                    return self.send(403, b"forbidden", "text/plain")
                if path.startswith("/flaky/") and first:
                    return self.send(500, b"oops", "text/plain")
                if path.startswith("/limited/") and first:
                    return self.send(429, b"slow down", "text/plain", {"Retry-After": "1"})
                if path == "/big.png":
                    return self.send_headers(200, "image/png", 10_000_000, close=True)
                if path == "/endless.png":
                    self.send_headers(200, "image/png", None, close=True)
                    try:
                        self.wfile.write(png("endless"))
                        for _ in range(2000):
                            self.wfile.write(b"\0" * 65536)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up, as it should
                    return
                if path == "/page.html":
                    return self.send(200, b"<html>hello</html>", "text/html")
                if path == "/fake.png":
                    return self.send(200, b"<html>not a png</html>", "image/png")
                if path.startswith("/slow/"):
                    return self.ranged(server.slow_body)
                if path.startswith("/changing/"):
                    return self.ranged(server.changing_body())
                if path.startswith("/norange/"):
                    return self.ranged(server.slow_body, honour_range=False)
                if path.startswith("/badrange/"):
                    return self.ranged(server.slow_body, wrong_start=True)
                if path.startswith("/early/"):
                    self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                    return self.send(200, png(path), "image/png")
                if path.startswith("/busy/"):
                    return self.send(503, b"busy", "text/plain", {"Retry-After": unquote(path[6:])})
                if path == "/to-file.png":
                    return self.send(302, b"", "text/plain", {"Location": "file:///etc/passwd"})
                if path.startswith("/redirect/"):
                    return self.send(302, b"", "text/plain", {"Location": "/img/" + path.rsplit("/", 1)[1]})
                if path == "/loop.png":
                    return self.send(302, b"", "text/plain", {"Location": "/loop.png"})
                if path.startswith("/chunked/"):
                    body = png(path)
                    self.send_headers(200, "image/png", None, extra={"Transfer-Encoding": "chunked"})
                    for start in range(0, len(body), 1000):
                        piece = body[start:start + 1000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if path.startswith("/drop/"):
                    self.close_connection = True  # without saying so: the client's kept-alive connection goes stale
                    return self.send(200, png(path), "image/png")
                return self.send(200, png(path), "image/png")

            def capped(self) -> None:
                """A host that allows ``cap`` requests at once and answers 429 beyond."""
                with server._count:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                    over = server.in_flight > server.cap
                    server.refused += over
                try:
                    if over:
                        return self.send(429, b"slow down", "text/plain", {"Retry-After": "1"})
                    time.sleep(0.03)
                    self.send(200, png(self.path), "image/png")
                finally:
                    with server._count:
                        server.in_flight -= 1

            def ranged(self, body: bytes, honour_range: bool = True, wrong_start: bool = False) -> None:
                """Slowly, with a strong ETag; a Range is honoured only under a matching If-Range."""
                etag = '"%s"' % hashlib.sha1(body).hexdigest()[:16]
                start = 0
                rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                if rng and rng.startswith("bytes="):
                    server.ranges.append((self.path, int(rng[6:].split("-")[0])))
                    server.if_ranges.append((self.path, if_range))
                if rng and rng.startswith("bytes=") and honour_range and if_range in (None, etag):
                    start = 0 if wrong_start else int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                with server.lock:
                    server.bodies_in_flight += 1
                    server.most_bodies_in_flight = max(server.most_bodies_in_flight, server.bodies_in_flight)
                try:
                    for offset in range(start, len(body), 4096):
                        self.wfile.write(body[offset:offset + 4096])
                        self.wfile.flush()
                        time.sleep(server.slow_delay)
                except (BrokenPipeError, ConnectionResetError):
                    server.aborted.append(self.path)  # the client hung up mid-body
                finally:
                    with server.lock:
                        server.bodies_in_flight -= 1

            def send_headers(self, code, content_type, length, close=False, extra=None):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()

            def send(self, code, body, content_type, extra=None):
                self.send_headers(code, content_type, len(body), extra=extra)
                self.wfile.write(body)

        return Handler


class ForwardProxy(_Served):
    """A forward proxy on 127.0.0.1: GET with an absolute URL is fetched from
    the origin and relayed; CONNECT opens a tunnel (for https://). It records
    what it was asked. With ``tls``, clients speak TLS to the proxy itself (an
    ``https://`` proxy)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str | None]] = []  # (absolute URL, Proxy-Authorization)
        proxy = self

        class Handler(_Quiet):
            def do_CONNECT(self) -> None:
                proxy.requests.append((f"CONNECT {self.path}", self.headers.get("Proxy-Authorization")))
                host, port = self.path.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                _relay(self.connection, upstream)

            def do_GET(self) -> None:
                proxy.requests.append((self.path, self.headers.get("Proxy-Authorization")))
                parts = urlsplit(self.path)
                if parts.scheme != "http":
                    self.send_error(400, "absolute http:// URL expected")
                    return
                origin = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
                origin.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
                answer = origin.getresponse()
                body = answer.read()
                origin.close()
                self.send_response(answer.status)
                for name in ("Content-Type", "Location", "Retry-After"):
                    if answer.getheader(name):
                        self.send_header(name, answer.getheader(name))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler, tls)


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or 10 s of silence)."""
    with b, selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        while events := selector.select(timeout=10):
            for key, _ in events:
                try:
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return


class Http2Server:
    """An HTTPS server that speaks HTTP/2 (hypercorn, ALPN h2) on 127.0.0.1,
    in a thread of its own; it notes the HTTP version of every request."""

    def __init__(self, certfile: str, keyfile: str) -> None:
        import asyncio

        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        self.versions: list[str] = []
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.certfile, config.keyfile = certfile, keyfile
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = config.errorlog = None
        self._loop = asyncio.new_event_loop()
        self._stopped = asyncio.Event()

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
                return
            self.versions.append(scope["http_version"])
            body = png(scope["path"])
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve(app, config, shutdown_trigger=self._stopped.wait))
            except Exception:
                pass  # a client's connection torn down at shutdown: nothing for the test to learn

        # hypercorn picks the port when it binds: bind our own socket and hand it over
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config.bind = [f"127.0.0.1:{self.port}"]
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        self.url = f"https://localhost:{self.port}"

    def stop(self) -> None:
        """Stops listening; a connection a client keeps open may linger (the thread is a daemon)."""
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=0.5)
