"""download_link on its own (no queue): every kind of URL ends in the right state."""

import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image

from downloader.config import Settings, load
from downloader.download import download_link
from downloader.exceptions import ConfigError, PermanentDownloadError, TransientDownloadError
from downloader.naming import check_url, file_name
from tests.http_server import MisbehavingServer


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
    slow = MisbehavingServer(slow_delay=1.0)
    try:
        url = f"{slow.url}/slow/s.png"
        with pytest.raises(TransientDownloadError, match="timed out"):  # stalls mid-body
            download_link(str(stalled), url, read_timeout=0.3)
        # only a part file stands, holding a prefix of the image (for a resume), never the final name
        (part,) = stalled.iterdir()
        assert part.name == file_name(url) + ".part" and slow.slow_body.startswith(part.read_bytes())
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


def test_a_stale_part_file_is_resumed(web, tmp_path):
    url = f"{web.url}/slow/resume.png"
    name = file_name(url)
    (tmp_path / (name + ".part")).write_bytes(web.slow_body[:10000])
    result = download_link(str(tmp_path), url)
    assert (tmp_path / name).read_bytes() == web.slow_body
    assert result["bytes"] == len(web.slow_body)
    assert ("/slow/resume.png", 10000) in web.ranges
    assert not (tmp_path / (name + ".part")).exists()


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
