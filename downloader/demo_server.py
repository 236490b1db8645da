"""An offline stand-in for the Imgur API: a gallery of generated, valid images.

    downloader demo-server --images 120 --port 8765

Serves Imgur's routes and JSON shapes (60 posts a page): the random gallery
and the sections (/3/gallery/{hot,top,user}/...), tags (/3/gallery/t/...),
subreddits (/3/gallery/r/...), search (?q= on titles), a user's submissions
(/3/account/{name}/submissions/{page}), posts (/3/gallery/{id}), albums
(/3/album/{id}, which lists only part of some albums, and
/3/album/{id}/images), images (/3/image/{id}), and the files at /i/{id}.ext:
real JPEG and PNG bytes in several sizes (Pillow, cached) and, with
``videos``, small MP4 files. Every post has a title, an author (user0-3), a
tag (cats, dogs, space) and a subreddit (pics, aww); every 7th is an album
of 3. Answers carry X-RateLimit headers counting down from ``quota`` (of
``limit``, reset ``reset_in`` seconds from each answer);
``throttle_every`` N answers every Nth API request with 429 (Retry-After: 1).
Requests need `Authorization: Client-ID ...` (any id, or only ``client_ids``).
``latency`` adds a pause to every request, to play a far-away server.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

PER_PAGE = 60
SIZES = [(64, 48), (160, 120), (320, 240), (640, 480), (1024, 768)]
TAGS, SUBREDDITS, AUTHORS = ("cats", "dogs", "space"), ("pics", "aww"), 4
EPOCH = 1_700_000_000  # posts are dated a day apart from here


@lru_cache(maxsize=4096)
def render(image_id: str, fmt: str) -> bytes:
    """A deterministic picture for an id: gradient plus noise, so sizes vary."""
    if fmt == "mp4":
        return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + random.Random(image_id).randbytes(4000)
    rnd = random.Random(image_id)
    width, height = SIZES[rnd.randrange(len(SIZES))]
    base = Image.linear_gradient("L").resize((width, height))
    color = Image.merge("RGB", [base, base.rotate(90).resize((width, height)), Image.effect_noise((width, height), 60)])
    out = io.BytesIO()
    color.save(out, "JPEG" if fmt == "jpg" else "PNG", quality=85)
    return out.getvalue()


class Gallery:
    def __init__(self, images: int, base_url: str, videos: int = 0, per_page: int = PER_PAGE) -> None:
        self.per_page = per_page
        self.items: list[dict] = []
        self.albums: dict[str, list[dict]] = {}
        self.by_id: dict[str, dict] = {}
        n = 0
        while n < images:
            index = len(self.items)
            if index % 7 == 6 and images - n >= 3:
                album_id = f"album{index}"
                members = [self._image(f"a{index}x{k}", base_url, n + k, index) for k in range(3)]
                self.albums[album_id] = members
                inline = {"images": members} if index % 2 == 0 else {}
                self.items.append({"id": album_id, "is_album": True, "images_count": 3, "title": f"Demo album {index}",
                                   **self._about(index), **inline})
                n += 3
            else:
                self.items.append(self._image(f"img{index}", base_url, n, index))
                n += 1
        for v in range(videos):
            index = len(self.items)
            gifv = v % 2 == 1  # an animation Imgur hands out as .gifv, with the mp4 beside it
            link = f"{base_url}/i/vid{v}.{'gifv' if gifv else 'mp4'}"
            self.items.append({"id": f"vid{v}", "is_album": False, "type": "video/mp4", "link": link,
                               "mp4": f"{base_url}/i/vid{v}.mp4", "title": f"Demo video {v}", **self._about(index)})
        for item in self.items:
            self.by_id[item["id"]] = item
            for member in self.albums.get(item["id"], []):
                self.by_id[member["id"]] = member

    @staticmethod
    def _about(index: int) -> dict:
        return {"account_url": f"user{index % AUTHORS}", "datetime": EPOCH + 86400 * index,
                "tags": [{"name": TAGS[index % len(TAGS)]}], "section": SUBREDDITS[index % len(SUBREDDITS)]}

    @classmethod
    def _image(cls, image_id: str, base_url: str, n: int, index: int) -> dict:
        fmt = "png" if n % 3 == 0 else "jpg"
        return {"id": image_id, "is_album": False, "type": "image/png" if fmt == "png" else "image/jpeg",
                "link": f"{base_url}/i/{image_id}.{fmt}", "title": f"Demo image {n}", **cls._about(index)}

    def page(self, number: int, posts: list[dict] | None = None) -> list[dict]:
        posts = self.items if posts is None else posts
        return posts[number * self.per_page:(number + 1) * self.per_page]

    def album(self, album_id: str) -> dict | None:
        post = self.by_id.get(album_id)
        if not post or not post.get("is_album"):
            return None
        members = self.albums[album_id]
        shown = members if int(album_id[5:]) % 4 else members[:2]  # some answers list only part of the album
        return {**{k: v for k, v in post.items() if k != "images"}, "images": shown}

    def listing(self, parts: list[str], query: str) -> list[dict] | dict | None:
        """The posts of a paged listing route, or None when the route is not one."""
        page = int(parts[-1]) if parts[-1].isdigit() else 0
        if parts[:4] == ["3", "gallery", "random", "random"]:
            return self.page(page)
        if parts[:3] == ["3", "gallery", "t"] and len(parts) >= 4:
            posts = [p for p in self.items if {"name": parts[3]} in p["tags"]]
            return {"name": parts[3], "items": self.page(page, posts)}
        if parts[:3] == ["3", "gallery", "r"] and len(parts) >= 4:
            return self.page(page, [p for p in self.items if p["section"] == parts[3] and not p["is_album"]])
        if parts[:3] == ["3", "gallery", "search"]:
            return self.page(page, [p for p in self.items if query.lower() in p["title"].lower()])
        if parts[:2] == ["3", "gallery"] and len(parts) >= 4 and parts[2] in ("hot", "top", "user"):
            return self.page(page, self.items if parts[2] != "top" else self.items[::-1])
        if parts[:2] == ["3", "account"] and len(parts) == 5 and parts[3] == "submissions":
            return self.page(page, [p for p in self.items if p["account_url"] == parts[2]])
        return None


def make_handler(server_state: "DemoServer"):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if server_state.latency:
                time.sleep(server_state.latency)
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:1] == ["i"] and len(parts) == 2 and "." in parts[1]:
                image_id, fmt = parts[1].rsplit(".", 1)
                if fmt not in ("jpg", "png", "mp4"):
                    return self._send(404, b"not found", "text/plain")
                kind = {"png": "image/png", "jpg": "image/jpeg", "mp4": "video/mp4"}[fmt]
                return self._send(200, render(image_id, fmt), kind)
            auth = self.headers.get("Authorization", "")
            client = auth[len("Client-ID "):] if auth.startswith("Client-ID ") else ""
            if not client or (server_state.client_ids and client not in server_state.client_ids):
                return self._json(403, {"data": {"error": "Invalid client_id"}, "success": False, "status": 403})
            if server_state.throttled():
                return self._json(429, {"data": {"error": "Too Many Requests"}, "status": 429}, {"Retry-After": "1"})
            data = self._route(parts, parse_qs(url.query).get("q", [""])[0])
            if data is None:
                return self._json(404, {"data": {"error": "Not found"}, "success": False, "status": 404})
            return self._json(200, {"data": data, "success": True, "status": 200}, server_state.quota_headers())

        def _route(self, parts: list[str], query: str):
            gallery = server_state.gallery
            listing = gallery.listing(parts, query)
            if listing is not None:
                return listing
            if parts[:2] == ["3", "album"] and len(parts) == 4 and parts[3] == "images":
                return gallery.albums.get(parts[2])
            if parts[:2] == ["3", "album"] and len(parts) == 3:
                return gallery.album(parts[2])
            if parts[:2] in (["3", "image"], ["3", "gallery"]) and len(parts) == 3:
                post = gallery.by_id.get(parts[2])
                if post is not None and parts[1] == "gallery" and post.get("is_album"):
                    return gallery.album(parts[2])
                return post if post is not None and (parts[1] == "gallery" or not post.get("is_album")) else None
            return None

        def _json(self, code: int, body: dict, headers: dict | None = None) -> None:
            self._send(code, json.dumps(body).encode(), "application/json", headers)

        def _send(self, code: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


class DemoServer:
    def __init__(self, images: int = 120, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 client_ids: set[str] | None = None, videos: int = 0, quota: int = 12500, limit: int = 12500,
                 reset_in: float = 3600.0, throttle_every: int = 0, per_page: int = PER_PAGE) -> None:
        self.latency, self.client_ids = latency, client_ids or set()
        self.quota, self.limit, self.reset_in, self.throttle_every = quota, limit, reset_in, throttle_every
        self.api_requests = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.gallery = Gallery(images, self.url, videos, per_page)
        self.image_count = images

    def throttled(self) -> bool:
        with self._lock:
            self.api_requests += 1
            return bool(self.throttle_every) and self.api_requests % self.throttle_every == 0

    def quota_headers(self) -> dict[str, str]:
        with self._lock:
            self.quota = max(0, self.quota - 1)
            left = self.quota
        return {"X-RateLimit-ClientLimit": str(self.limit), "X-RateLimit-ClientRemaining": str(left),
                "X-RateLimit-UserLimit": str(self.limit), "X-RateLimit-UserRemaining": str(left),
                "X-RateLimit-UserReset": str(round(time.time() + self.reset_in))}

    def start(self) -> "DemoServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
