"""Link sources against real HTTP servers on 127.0.0.1."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from downloader.exceptions import SourceError
from downloader.sources.imgur import ImgurFetch
from downloader.sources.links_file import LinksFile


class ScriptedApi:
    """Answers each path with the next of its scripted (status, headers, body) replies."""

    def __init__(self, script: dict[str, list[tuple[int, dict, object]]]) -> None:
        self.script, self.seen = script, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                api.seen.append((self.path, self.headers.get("Authorization"), time.monotonic()))
                replies = api.script.get(self.path) or [(404, {}, {"data": {}})]
                status, headers, body = replies.pop(0) if len(replies) > 1 else replies[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def image(n, kind="image/jpeg"):
    return {"id": f"i{n}", "type": kind, "link": f"https://i.example/{n}.jpg"}


def test_imgur_waits_out_429_expands_albums_keeps_images_and_respects_the_quota():
    page0 = [image(1), image(2, "video/mp4"), {"id": "al1", "is_album": True, "images": [image(3), image(4)]},
             {"id": "al2", "is_album": True}, "junk"]
    api = ScriptedApi({
        "/3/gallery/random/random/0": [(429, {"Retry-After": "1"}, {}), (200, {}, {"data": page0})],
        "/3/album/al2/images": [(200, {"X-RateLimit-ClientRemaining": "0"}, {"data": [image(5), image(6, "text/html")]})],
        "/3/gallery/random/random/1": [(200, {}, {"data": [image(7)]})],
    })
    try:
        source = ImgurFetch("my-id", api.url, gallery_pages=2)
        links = [item.url for item in source.items()]
        assert links == [f"https://i.example/{n}.jpg" for n in (1, 3, 4, 5)]
        assert all(auth == "Client-ID my-id" for _, auth, _ in api.seen)
        first, second = api.seen[0][2], api.seen[1][2]
        assert second - first >= 0.9  # Retry-After honoured
        assert "/3/gallery/random/random/1" not in [p for p, _, _ in api.seen]  # quota spent: stop paging
        assert source.cut_short and "quota is used up" in source.cut_short          # and say so
    finally:
        api.stop()


def test_imgur_rate_limit_beyond_patience_is_a_clear_error():
    api = ScriptedApi({"/3/gallery/random/random/0": [(429, {"Retry-After": "3600"}, {})]})
    try:
        with pytest.raises(SourceError, match="rate limited"):
            list(ImgurFetch("x", api.url).items())
    finally:
        api.stop()


def test_links_file_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "links.txt"
    path.write_text("# header\n\nhttps://a/1.png\n   \n  https://a/2.png  \n#x\n")
    assert list(LinksFile(str(path)).links()) == ["https://a/1.png", "https://a/2.png"]
    with pytest.raises(SourceError, match="cannot read"):
        list(LinksFile(str(tmp_path / "nope.txt")).links())
