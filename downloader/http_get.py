"""GET over keep-alive connections: the standard library's http.client, one
connection per thread and host.

Why not urllib3 or requests: on a fast server the CPU spent per request is the
download rate, and urllib3 spends twice what http.client does (pool keys, retry
and timeout objects, response wrappers; requests three times more). What a
download needs of HTTP is small: GET, redirects, connect and read timeouts,
TLS with verification, keep-alive, a second try on a kept-alive connection the
server closed meanwhile, and the proxy the environment names (http_proxy,
https_proxy, no_proxy, as curl and wget read them). Retries of anything else
belong to jobqueue.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit

MAX_REDIRECTS = 5
MAX_IDLE = 16  # idle connections kept per thread (one per host)
_REDIRECTS = (301, 302, 303, 307, 308)
# a kept-alive connection the server has closed fails in one of these ways, before any response
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"  # left as they are; anything else (spaces, non-ASCII) is %-encoded
_DEFAULT_PORT = {"http": 80, "https": 443}
_local = threading.local()
_tls: ssl.SSLContext | None = None
_proxies: dict[str, str] | None = None  # the environment's, read once per process
_routes: dict[tuple[str, str, int], "Proxy | None"] = {}  # origin -> its proxy, worked out once


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)  # Proxy-Authorization, from user:password@


class TooManyRedirects(http.client.HTTPException):
    """More than MAX_REDIRECTS redirects, or a redirect loop."""


class Response:
    """An open response. Read its body with ``readinto``; ``release`` hands the
    connection back if the body was read to its end, and closes it otherwise."""

    def __init__(self, key: tuple[str, str, int], conn: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse) -> None:
        self.key, self.conn, self.raw = key, conn, raw
        self.status, self.reason, self.headers = raw.status, raw.reason, raw.headers

    def readinto(self, buffer: memoryview) -> int:
        """Up to len(buffer) bytes of the body (dechunked); 0 at its end."""
        return self.raw.readinto(buffer)

    def release(self) -> None:
        if self.conn is None:
            return
        conn, self.conn = self.conn, None
        if self.raw.isclosed() and not self.raw.will_close:
            _keep(self.key, conn)
        else:
            conn.close()


def get(url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> Response:
    """GET ``url``, following up to MAX_REDIRECTS redirects (with the same
    headers). Raises http.client.InvalidURL for a URL it cannot send,
    TooManyRedirects, OSError (timeouts included) or http.client.HTTPException."""
    for _ in range(MAX_REDIRECTS + 1):
        response = _request(url, headers, connect_timeout, read_timeout)
        location = response.headers.get("Location")
        if response.status not in _REDIRECTS or not location:
            return response
        response.release()  # the redirect's body is not read: that connection closes
        url = urljoin(url, location.strip())
    raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects (last to {url})")


def _request(url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> Response:
    key, target = _split(url)
    proxy = _proxy_for(key)
    if proxy and key[0] == "http":  # a plain-HTTP proxy is asked for the whole URL
        target = f"http://{_authority(key)}{target}"
        headers = {**headers, **proxy.headers}
    conn = _idle().pop(key, None)
    reused = conn is not None
    while True:
        if conn is None or conn.sock is None:
            conn = _connect(key, proxy, connect_timeout)
        conn.sock.settimeout(read_timeout)
        try:
            conn.request("GET", target, headers=headers)
            return Response(key, conn, conn.getresponse())
        except _STALE:
            conn.close()
            if not reused:
                raise
            conn, reused = None, False  # the server closed the idle connection: once more, anew
        except BaseException:
            conn.close()
            raise


def _split(url: str) -> tuple[tuple[str, str, int], str]:
    """((scheme, host, port), request target)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise http.client.InvalidURL(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise http.client.InvalidURL("expected http(s)://host/path")
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_PATH + "?")
    return (scheme, parts.hostname, port or _DEFAULT_PORT[scheme]), target


def _connect(key: tuple[str, str, int], proxy: Proxy | None, timeout: float) -> http.client.HTTPConnection:
    scheme, host, port = key
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            proxy.host if proxy else host, proxy.port if proxy else port, timeout=timeout, context=_tls_context())
        if proxy:
            conn.set_tunnel(host, port, headers=proxy.headers)  # CONNECT, then TLS with the origin
    else:
        conn = http.client.HTTPConnection(proxy.host if proxy else host, proxy.port if proxy else port,
                                          timeout=timeout)
    conn.connect()
    return conn


def _authority(key: tuple[str, str, int]) -> str:
    scheme, host, port = key
    name = f"[{host}]" if ":" in host else host
    return name if port == _DEFAULT_PORT[scheme] else f"{name}:{port}"


def _proxy_for(key: tuple[str, str, int]) -> Proxy | None:
    if key not in _routes:
        _routes[key] = _route(key)
    return _routes[key]


def _route(key: tuple[str, str, int]) -> Proxy | None:
    global _proxies
    if _proxies is None:
        _proxies = urllib.request.getproxies_environment()
    url = _proxies.get(key[0])
    if not url or urllib.request.proxy_bypass_environment(key[1], _proxies):
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    headers = {}
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(secret).decode()
    return Proxy(parts.hostname or "", parts.port or 80, headers)


def _tls_context() -> ssl.SSLContext:
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()  # verifies the certificate and the host name
    return _tls


def _idle() -> OrderedDict:
    idle = getattr(_local, "idle", None)
    if idle is None:
        idle = _local.idle = OrderedDict()
    return idle


def _keep(key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
    idle = _idle()
    old = idle.pop(key, None)
    if old is not None:
        old.close()
    idle[key] = conn
    while len(idle) > MAX_IDLE:
        idle.popitem(last=False)[1].close()
