"""One GET on the loop (one hop of a redirect chain): its options, its headers,
and the decision, at the first byte of the body, whether the body is wanted (a
200 or 206 goes to the part file; a redirect's body is dropped; an error status
ends the transfer there, at its first chunk). curl hands the header lines to a
list's append (no Python frame per line); they are read once, at the decision."""

from __future__ import annotations

import os
import ssl
import time
from functools import lru_cache
from typing import Callable
from urllib.parse import quote, urlsplit

import pycurl

from ..exceptions import TransientDownloadError
from .proxy import proxy_for

HTTP_ONLY = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS  # never file://, ftp://, scp://... (curl speaks them all)
BUFFER = 256 * 1024
SUPPRESS_CONNECT_HEADERS = getattr(pycurl, "SUPPRESS_CONNECT_HEADERS", 265)  # a proxy's CONNECT answer is not ours
_SAFE = "/%:@!$&'()*+,;=-._~"  # left as they are in a path or query; anything else (spaces, non-ASCII) is %-encoded


class Hop:
    def __init__(self, url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float,
                 on_body: Callable[["Hop"], Callable[[bytes], None] | None],
                 on_done: Callable[["Hop"], None] | None = None, max_recv: int = 0,
                 before: Callable[[], None] | None = None) -> None:
        self.url, self.request_headers = url, headers
        self._before = before              # a last look before the request goes out (it may raise)
        self.max_recv = max_recv           # bytes/s this transfer may take (0: no cap)
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._on_body = on_body            # called once: returns the body's writer, None to drop it
        self._on_done = on_done            # called last, on the loop's thread, when the hop is over
        self.status = 0
        self.headers: dict[str, str] = {}  # the final response's, names in lower case
        self._lines: list[bytes] = []      # every response's header lines, as curl hands them over
        self.error: BaseException | None = None
        self.cancelled = False             # its owner stopped it (engine.cancel): never started if not yet
        self.code, self.text = 0, ""       # curl's result
        self._writer: Callable[[bytes], None] | None = None
        self._decided = False
        self.received = 0                  # bytes of the body so far
        self._seen, self._last = 0, time.monotonic()  # what deadline() saw last, and when it changed

    # -- the engine's side ---------------------------------------------------------------

    def setup(self, curl: pycurl.Curl) -> None:
        if self._before is not None:
            self._before()
        parts = urlsplit(self.url)
        scheme, port = parts.scheme.lower(), parts.port or (443 if parts.scheme.lower() == "https" else 80)
        curl.setopt(pycurl.URL, wire_url(self.url))
        curl.setopt(pycurl.PROTOCOLS, HTTP_ONLY)
        curl.setopt(pycurl.REDIR_PROTOCOLS, HTTP_ONLY)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)  # fetch() follows, checking each target and its proxy
        curl.setopt(pycurl.PROXY, proxy_for(scheme, parts.hostname or "", port))  # "" = direct, never curl's own env
        curl.setopt(SUPPRESS_CONNECT_HEADERS, 1)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.connect_timeout * 1000)))
        curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in self.request_headers.items()])
        curl.setopt(pycurl.HEADERFUNCTION, self._lines.append)
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.BUFFERSIZE, BUFFER)
        # (no PIPEWAIT: transfers added together, as a driven worker adds them, would all wait for the first
        # connection even to an HTTP/1.1 host; an HTTP/2 one is multiplexed on once its first connection is up)
        if self.max_recv:
            curl.setopt(pycurl.MAX_RECV_SPEED_LARGE, self.max_recv)
        ca = ca_bundle()
        if ca:
            curl.setopt(pycurl.CAINFO, ca)
            curl.setopt(pycurl.PROXY_CAINFO, ca)

    def deadline(self) -> float:
        """No byte (of headers or body) for read_timeout seconds: stalled. The
        engine asks every few tens of milliseconds; a chunk only counts bytes
        (16 KiB a call: at 1 GiB, 65,536 calls, so each one stays lean); a
        header line counts as a byte."""
        progress = self.received + len(self._lines)
        if progress != self._seen:
            self._seen, self._last = progress, time.monotonic()
        return self._last + self.read_timeout

    def stalled(self) -> None:
        self.error = self.error or TransientDownloadError(
            f"network error: timed out (connect {self.connect_timeout:g} s, read {self.read_timeout:g} s)")

    def finished(self, code: int, text: str) -> None:
        self.code, self.text = code, text
        if not self._decided:
            self._read_headers()
            ended = self.status >= 200 and self._lines[-1] in (b"\r\n", b"\n")  # a final response's whole head
            if self.error is None and (code == 0 or ended):
                self._decide()  # no body came: what the headers say (404, too large...) is the answer
        if self._on_done is not None:
            self._on_done(self)

    # -- curl's callbacks (on the loop's thread) -----------------------------------------

    def _read_headers(self) -> None:
        """The final response's status and headers: from its status line
        (the last one: a 1xx such as 103 Early Hints comes before it) on."""
        lines = self._lines
        for first in range(len(lines) - 1, -1, -1):
            if lines[first].startswith(b"HTTP/"):
                break
        else:
            return
        fields = lines[first].split(b" ", 2)
        self.status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        headers = self.headers = {}
        for line in lines[first + 1:]:
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()

    def _decide(self) -> bool:
        """Where the body goes, before its first byte (an error status or a
        size over the limit ends the transfer here, its body unread); the
        headers are read already."""
        self._decided = True
        try:
            self._writer = self._on_body(self)
            return True
        except BaseException as exc:  # fetch() raises it
            self.error = exc
            return False

    def _write(self, data: bytes) -> int | None:
        self.received += len(data)
        if not self._decided:
            self._read_headers()
            if not self._decide():
                return 0
        try:
            if self._writer is not None:
                self._writer(data)
            return None  # all taken (a redirect's body is dropped)
        except BaseException as exc:  # stop the transfer here; fetch() raises it
            self.error = exc
            return 0


def wire_url(url: str) -> str:
    """The URL as sent: the host in IDNA, the path and query %-encoded."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():
        host = (parts.hostname or "").encode("idna").decode()
        netloc = host + (f":{parts.port}" if parts.port else "")
    path = quote(parts.path or "/", safe=_SAFE)
    query = "?" + quote(parts.query, safe=_SAFE + "?") if parts.query else ""
    return f"{parts.scheme}://{netloc}{path}{query}"


@lru_cache(maxsize=1)
def ca_bundle() -> str | None:
    """The CA certificates to trust: SSL_CERT_FILE or CURL_CA_BUNDLE when set,
    else the system's bundle, else certifi's."""
    for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        if os.environ.get(name):
            return os.environ[name]
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    try:
        import certifi
        return certifi.where()
    except ImportError:
        return None
