"""download_link on its own (no queue): every kind of URL ends in the right state."""

import gc
import shutil
import socket
import time
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme
from PIL import Image

from downloader.config import Settings, load
from downloader.download import download_link
from downloader.exceptions import ConfigError, PermanentDownloadError, TransientDownloadError
from downloader.naming import check_url, file_name
from downloader.retry_after import retry_after
from downloader.transfer import Folder, Limits, hop, part_for, proxy
from downloader.transfer import hop as hop_module
from tests.http_server import ForwardProxy, Http2Server, MisbehavingServer


@pytest.fixture(scope="module")
def web():
    server = MisbehavingServer(slow_delay=0.01)
    yield server
    server.stop()


def test_names_are_safe_bounded_deterministic_and_distinct():
    assert file_name("http://h/a/cat.JPG").startswith("cat-") and file_name("http://h/a/cat.JPG").endswith(".jpg")
    assert file_name("http://h/a/cat.jpg") == file_name("http://h/a/cat.jpg")
    assert file_name("http://h/a/cat.jpg") != file_name("http://h/b/cat.jpg")
    for evil in ["http://h/..%2F..%2Fetc%2Fpasswd", "http://h/%2e%2e/x.png", "http://h/a\\..\\..\\b.png",
                 "http://h/%00%0a%1bbad.png", "http://h/" + "a" * 500 + ".png", "http://h/.hidden", "http://h/"]:
        name = file_name(evil)
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert all(c.isprintable() for c in name) and len(name) < 110
    for bad in ["ftp://h/x.png", "not a url", "http:///x.png", "javascript:alert(1)"]:
        with pytest.raises(PermanentDownloadError, match="malformed URL"):
            check_url(bad)


def test_a_good_image_is_downloaded_then_skipped(web, tmp_path):
    first = download_link(str(tmp_path), f"{web.url}/img/a.png")
    assert first["status"] == "done"
    Image.open(tmp_path / first["file"]).verify()
    again = download_link(str(tmp_path), f"{web.url}/img/a.png")
    assert again == {"status": "skipped", "file": first["file"], "bytes": first["bytes"]}
    assert web.hits["/img/a.png"] == 1


def test_a_completed_download_leaves_no_reference_cycle(web, tmp_path):
    """Transfer._end lets go of the hop and the caller's callback: with
    Python's cyclic collector off, a completed download's transfer and hops are
    freed by reference counting alone (a cycle per download cost a worker 620
    ms of collections over 10,000 files). A failed one's exception, whose
    traceback refers to the frames that hold it, is left to the collector."""
    from downloader.transfer import Transfer
    from downloader.transfer.hop import Hop

    def left() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, (Transfer, Hop)))

    gc.collect()
    gc.disable()
    try:
        download_link(str(tmp_path), f"{web.url}/img/cycle.png")               # done
        download_link(str(tmp_path), f"{web.url}/redirect/cycle2.png")         # two hops
        download_link(str(tmp_path), f"{web.url}/img/cycle.png")               # skipped
        deadline = time.monotonic() + 5
        while left() and time.monotonic() < deadline:                         # the loop's thread lets go
            time.sleep(0.02)
        assert left() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("path,error,message", [
    ("/missing.png", PermanentDownloadError, "HTTP 404"),
    ("/forbidden.png", PermanentDownloadError, "HTTP 403"),
    ("/big.png", PermanentDownloadError, "too large"),
    ("/endless.png", PermanentDownloadError, "too large"),
    ("/page.html", PermanentDownloadError, "not an image"),
    ("/fake.png", PermanentDownloadError, "not an image"),
    ("/flaky/x1.png", TransientDownloadError, "HTTP 500"),
])
def test_failures_are_permanent_or_transient_and_leave_nothing(web, tmp_path, path, error, message):
    with pytest.raises(error, match=message):
        download_link(str(tmp_path), web.url + path, max_size=1_000_000)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_429_asks_for_the_servers_retry_after(web, tmp_path):
    with pytest.raises(TransientDownloadError) as caught:
        download_link(str(tmp_path), f"{web.url}/limited/k1.png")
    assert caught.value.retry_after == 1


def test_unreachable_host_and_read_timeouts_are_transient_and_keep_only_what_arrived(web, tmp_path):
    refused, stalled, silent_dir = tmp_path / "refused", tmp_path / "stalled", tmp_path / "silent"
    with pytest.raises(TransientDownloadError, match="network error"):
        download_link(str(refused), "http://127.0.0.1:1/x.png", connect_timeout=1)
    assert list(refused.iterdir()) == []
    slow = MisbehavingServer(slow_delay=1.0, slow_size=760)   # over 1 MiB: big enough to be worth resuming
    try:
        url = f"{slow.url}/slow/s.png"
        with pytest.raises(TransientDownloadError, match="timed out"):  # stalls mid-body
            download_link(str(stalled), url, read_timeout=0.3)
        # only the attempt's part file stands (and what names its bytes), holding a prefix, never the final name
        name = file_name(url)
        assert sorted(p.name for p in stalled.iterdir()) == [f"{name}.solo.1.meta", f"{name}.solo.1.part"]
        assert slow.slow_body.startswith((stalled / f"{name}.solo.1.part").read_bytes())
    finally:
        slow.stop()
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(TransientDownloadError, match="timed out"):
            download_link(str(silent_dir), f"http://127.0.0.1:{silent.getsockname()[1]}/x.png", read_timeout=0.3)
    assert list(silent_dir.iterdir()) == []  # no answer, no file


def test_redirects_chunked_bodies_odd_paths_and_dropped_connections(web, tmp_path):
    moved = download_link(str(tmp_path), f"{web.url}/redirect/moved.png")
    assert moved["status"] == "done" and web.hits["/img/moved.png"] == 1
    with pytest.raises(PermanentDownloadError, match="redirects"):
        download_link(str(tmp_path), f"{web.url}/loop.png")
    chunked = download_link(str(tmp_path), f"{web.url}/chunked/c.png")
    with Image.open(tmp_path / chunked["file"]) as image:  # whole: every chunk arrived
        image.load()
        assert image.size == (48, 48)
    odd = download_link(str(tmp_path), f"{web.url}/img/caf\u00e9 au lait.png")
    assert odd["status"] == "done" and web.hits["/img/caf%C3%A9%20au%20lait.png"] == 1
    for name in ("d1", "d2", "d3"):  # each one finds its kept-alive connection closed by the server
        assert download_link(str(tmp_path), f"{web.url}/drop/{name}.png")["status"] == "done"
        assert web.hits[f"/drop/{name}.png"] == 1


def test_downloads_share_kept_alive_connections(tmp_path):
    server = MisbehavingServer()
    try:
        for i in range(10):
            assert download_link(str(tmp_path), f"{server.url}/img/k{i}.png")["status"] == "done"
        assert server.connections == 1
    finally:
        server.stop()


def test_directory_removed_between_downloads_is_made_again(web, tmp_path):
    target = tmp_path / "dl"
    download_link(str(target), f"{web.url}/img/first.png")
    shutil.rmtree(target)
    result = download_link(str(target), f"{web.url}/img/second.png")
    assert result["status"] == "done" and (target / result["file"]).exists()


def test_path_traversal_urls_stay_inside_the_directory(web, tmp_path):
    target = tmp_path / "dl"
    for url in [f"{web.url}/..%2F..%2Fescape.png", f"{web.url}/%2e%2e%2f%2e%2e%2fescape2.png"]:
        result = download_link(str(target), url)
        assert (target / result["file"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dl"]


def _stall_first(server, tmp_path, url):
    """A first attempt cut off mid-body: its part and meta stay behind."""
    server.slow_delay = 0.2
    try:
        with pytest.raises(TransientDownloadError, match="timed out"):
            download_link(str(tmp_path), url, read_timeout=0.15)
    finally:
        server.slow_delay = 0.0
    (part,) = tmp_path.glob("*.part")
    assert 0 < part.stat().st_size
    return part.stat().st_size


def test_a_partial_file_is_resumed_only_under_if_range(tmp_path):
    server = MisbehavingServer(slow_delay=0.0, slow_size=760)
    try:
        url = f"{server.url}/slow/resume.png"
        have = _stall_first(server, tmp_path, url)
        result = download_link(str(tmp_path), url)
        assert (tmp_path / file_name(url)).read_bytes() == server.slow_body and result["bytes"] == len(server.slow_body)
        assert server.ranges == [("/slow/resume.png", have)]
        assert server.if_ranges[0][1].startswith('"')            # the strong ETag the first attempt saw
        assert sorted(p.name for p in tmp_path.iterdir()) == [file_name(url)]  # parts and metas gone
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/changing/c.png", "/norange/n.png", "/badrange/b.png"])
def test_a_resume_that_does_not_validate_starts_from_zero(tmp_path, path):
    """The resource changed between attempts, the server ignores Range, or it
    answers another range than asked: never old head + new tail."""
    server = MisbehavingServer(slow_delay=0.0, slow_size=760)
    try:
        url = server.url + path
        server.changing_body()                                    # drawn before the clock runs
        _stall_first(server, tmp_path, url)
        server.version = 1
        server.changing_body()                                        # /changing/ now serves other bytes
        download_link(str(tmp_path), url)
        expected = server.changing_body() if path.startswith("/changing/") else server.slow_body
        assert (tmp_path / file_name(url)).read_bytes() == expected
    finally:
        server.stop()


def test_a_small_file_is_fetched_again_whole_rather_than_resumed(tmp_path):
    server = MisbehavingServer(slow_delay=0.0)                   # 37 KB: no meta, nothing kept
    try:
        url = f"{server.url}/slow/small.png"
        server.slow_delay = 0.2
        with pytest.raises(TransientDownloadError, match="timed out"):
            download_link(str(tmp_path), url, read_timeout=0.15)
        assert list(tmp_path.iterdir()) == []
        server.slow_delay = 0.0
        download_link(str(tmp_path), url)
        assert (tmp_path / file_name(url)).read_bytes() == server.slow_body and server.ranges == []
    finally:
        server.stop()


def test_planted_symlinks_are_never_followed(web, tmp_path):
    outside, target = tmp_path / "outside.png", tmp_path / "dl"
    outside.write_bytes(b"precious")
    target.mkdir()
    url = f"{web.url}/img/planted.png"
    name = file_name(url)
    (target / f"{name}.solo.1.part").symlink_to(outside)      # at the part file's name
    (target / name).symlink_to(outside)                        # and at the final name: not "already complete"
    result = download_link(str(target), url)
    assert result["status"] == "done" and outside.read_bytes() == b"precious"
    assert (target / name).is_file() and not (target / name).is_symlink()
    Image.open(target / name).verify()
    # a worker's attempt: its part file's name is predictable (name, job, attempt); a link planted there is not followed
    part = part_for(Folder(str(target)), "x.png", "job-1", 1, Limits(check_image=False))
    (target / part.file).symlink_to(outside)
    part.open()
    part.begin(200, {"content-length": "4"})
    part.write(b"data")
    part.commit()
    assert outside.read_bytes() == b"precious" and (target / "x.png").read_bytes() == b"data"


def test_protocols_other_than_http_are_refused_even_after_a_redirect(web, tmp_path):
    with pytest.raises(PermanentDownloadError, match="file:///etc/passwd.*refused"):
        download_link(str(tmp_path), f"{web.url}/to-file.png")


def test_early_hints_and_retry_after_in_every_shape(web, tmp_path):
    assert download_link(str(tmp_path), f"{web.url}/early/e.png")["status"] == "done"
    for value, expected in [("abc", None), ("999999999", 3600.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("7", 7.0)]:
        with pytest.raises(TransientDownloadError, match="HTTP 503") as caught:
            download_link(str(tmp_path), f"{web.url}/busy/{quote(value)}")
        assert caught.value.retry_after == expected, value
    assert retry_after("120", cap=60) == 60 and retry_after("Thu, 01 Jan 2099 00:00:00 GMT") == 3600
    assert retry_after("Sun, 06 Nov 1994 08:49:37") is None    # no zone: not an HTTP date


@pytest.fixture
def fresh_environment():
    """The proxy settings and CA bundle are read once per process: read them again."""
    proxy._environment.cache_clear()
    hop.ca_bundle.cache_clear()
    yield
    proxy._environment.cache_clear()
    hop.ca_bundle.cache_clear()


def test_an_https_proxy_is_spoken_to_over_tls_with_its_credentials(web, tmp_path, monkeypatch, fresh_environment):
    ca = trustme.CA()
    proxy_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(proxy_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls_proxy = ForwardProxy(tls=proxy_tls)       # its socket speaks only TLS: a clear-text request gets nowhere
    try:
        port = tls_proxy.url.rsplit(":", 1)[1]
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        monkeypatch.setenv("http_proxy", f"https://joe:s%40cret@localhost:{port}")
        monkeypatch.setenv("no_proxy", "")
        url = f"http://localhost:{web.url.rsplit(':', 1)[1]}/img/via-tls.png"
        assert download_link(str(tmp_path / "dl"), url)["status"] == "done"
        assert tls_proxy.requests == [(url, "Basic am9lOnNAY3JldA==")]   # joe:s@cret, inside TLS
    finally:
        tls_proxy.stop()


def test_http2_is_spoken_where_the_server_offers_it(tmp_path, monkeypatch, fresh_environment):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    certfile, keyfile, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    server = Http2Server(str(certfile), str(keyfile))
    try:
        for i in range(3):
            assert download_link(str(tmp_path / "dl"), f"{server.url}/h2/{i}.png")["status"] == "done"
        assert server.versions == ["2", "2", "2"]
    finally:
        server.stop()


def test_no_proxy_entries_with_a_port_or_a_network(web, tmp_path, monkeypatch, fresh_environment):
    relay = ForwardProxy()
    port = int(web.url.rsplit(":", 1)[1])
    try:
        monkeypatch.setenv("http_proxy", relay.url)
        for i, (entry, host, proxied) in enumerate([
                (f"localhost:{port}", "localhost", False), ("localhost:1", "localhost", True),
                ("127.0.0.0/8", "127.0.0.1", False), ("10.0.0.0/8", "127.0.0.1", True),
                (".localhost", "localhost", False), ("*", "localhost", False)]):
            monkeypatch.setenv("no_proxy", entry)
            proxy._environment.cache_clear()
            before = len(relay.requests)
            download_link(str(tmp_path), f"http://{host}:{port}/img/np{i}.png")
            assert (len(relay.requests) > before) == proxied, entry
    finally:
        relay.stop()


def test_config_precedence_flag_over_env_over_file_over_default(tmp_path):
    config = tmp_path / "d.toml"
    config.write_text('dir = "from-file"\nconcurrency = 3\nqueue = "file-q"\n')
    env = {"DOWNLOADER_DIR": "from-env", "DOWNLOADER_CONCURRENCY": "5"}
    settings = load(config, env, dir="from-flag")
    assert settings.dir == "from-flag"            # flag beats env and file
    assert settings.concurrency == 5              # env beats file
    assert settings.queue == "file-q"             # file beats default
    assert settings.read_timeout == Settings().read_timeout  # default
    with pytest.raises(ConfigError, match="unknown setting"):
        (tmp_path / "bad.toml").write_text("colour = 1\n")
        load(tmp_path / "bad.toml", {})
    with pytest.raises(ConfigError, match="DOWNLOADER_CONCURRENCY"):
        load(None, {"DOWNLOADER_CONCURRENCY": "many"})


def test_shipped_config_file_holds_every_default():
    shipped = load(Path(__file__).resolve().parent.parent / "config" / "downloader.toml", {})
    assert shipped == Settings()
    text = (Path(__file__).resolve().parent.parent / "config" / "downloader.toml").read_text()
    assert all(f"\n{name} =" in "\n" + text for name in Settings.__dataclass_fields__)


def test_settings_are_range_checked_wherever_they_come_from(tmp_path):
    config = tmp_path / "d.toml"
    config.write_text('queue = "q"\n\nconcurrency = 2.7\n')
    with pytest.raises(ConfigError, match=rf"{config}:3: concurrency = 2.7 is not valid \(not a whole number\); "
                                          r"expected int from 1 to 4096"):
        load(config, {})
    for name, value, why in [("MAX_SIZE", "-1", "out of range"), ("RETRIES", "-1", "out of range"),
                             ("READ_TIMEOUT", "0", "out of range"), ("PAGES", "0", "out of range"),
                             ("RETRY_INTERVALS", "[1, -5]", "each must be"), ("QUEUE", " ", "must not be empty"),
                             ("CONCURRENCY", "0", "out of range"), ("CHECK_IMAGE", "maybe", "true or false")]:
        with pytest.raises(ConfigError, match=f"environment DOWNLOADER_{name}: .*{why}"):
            load(None, {f"DOWNLOADER_{name}": value})
    with pytest.raises(ConfigError, match="--pages: pages = 0 is not valid"):
        Settings().with_overrides(pages=0)
    assert load(None, {"DOWNLOADER_CONCURRENCY": "8", "DOWNLOADER_RETRY_INTERVALS": "1,2"}).retry_intervals == [1, 2]


def test_a_cancel_that_overtakes_its_start_still_stops_the_transfer(web):
    """A superseded attempt may cancel a hop whose start (a redirect's next
    hop, posted from the loop) reaches the engine after the cancel."""
    import threading

    from downloader.transfer.engine import engine
    ended = threading.Event()
    hop = hop_module.Hop(f"{web.url}/img/overtaken.png", {}, 5, 5, on_body=lambda h: None,
                         on_done=lambda h: ended.set())
    engine().cancel(hop)
    engine().start(hop)
    assert ended.wait(5) and hop.code == -1
    time.sleep(0.2)
    assert web.hits["/img/overtaken.png"] == 0            # never sent
