"""An offline stand-in for the Imgur API: a gallery of generated, valid images.

    downloader demo-server --images 120 --port 8765

Serves GET /3/gallery/random/random/{page} (Imgur's JSON shape, 60 items a
page; every 7th item is an album of 3 images, some inline, some only through
/3/album/{id}/images) and the images themselves at /i/{id}.{jpg,png}: real
JPEG and PNG bytes in several sizes, made with Pillow and cached. Requests
need an `Authorization: Client-ID ...` header (any id, or only `client_ids`).
`latency` adds a pause to every request, to play a far-away server.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

PER_PAGE = 60
SIZES = [(64, 48), (160, 120), (320, 240), (640, 480), (1024, 768)]


@lru_cache(maxsize=4096)
def render(image_id: str, fmt: str) -> bytes:
    """A deterministic picture for an id: gradient plus noise, so sizes vary."""
    rnd = random.Random(image_id)
    width, height = SIZES[rnd.randrange(len(SIZES))]
    base = Image.linear_gradient("L").resize((width, height))
    color = Image.merge("RGB", [base, base.rotate(90).resize((width, height)), Image.effect_noise((width, height), 60)])
    out = io.BytesIO()
    color.save(out, "JPEG" if fmt == "jpg" else "PNG", quality=85)
    return out.getvalue()


class Gallery:
    def __init__(self, images: int, base_url: str) -> None:
        self.items: list[dict] = []
        self.albums: dict[str, list[dict]] = {}
        n = 0
        while n < images:
            index = len(self.items)
            if index % 7 == 6 and images - n >= 3:
                album_id = f"album{index}"
                members = [self._image(f"a{index}x{k}", base_url, n + k) for k in range(3)]
                self.albums[album_id] = members
                inline = {"images": members} if index % 2 == 0 else {}
                self.items.append({"id": album_id, "is_album": True, "images_count": 3, **inline})
                n += 3
            else:
                self.items.append(self._image(f"img{index}", base_url, n))
                n += 1

    @staticmethod
    def _image(image_id: str, base_url: str, n: int) -> dict:
        fmt = "png" if n % 3 == 0 else "jpg"
        return {"id": image_id, "is_album": False, "type": "image/png" if fmt == "png" else "image/jpeg",
                "link": f"{base_url}/i/{image_id}.{fmt}", "title": f"Demo image {n}"}

    def page(self, number: int) -> list[dict]:
        return self.items[number * PER_PAGE:(number + 1) * PER_PAGE]


def make_handler(server_state: "DemoServer"):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if server_state.latency:
                time.sleep(server_state.latency)
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:1] == ["i"] and len(parts) == 2 and "." in parts[1]:
                image_id, fmt = parts[1].rsplit(".", 1)
                if fmt not in ("jpg", "png"):
                    return self._send(404, b"not found", "text/plain")
                return self._send(200, render(image_id, fmt), "image/png" if fmt == "png" else "image/jpeg")
            auth = self.headers.get("Authorization", "")
            client = auth[len("Client-ID "):] if auth.startswith("Client-ID ") else ""
            if not client or (server_state.client_ids and client not in server_state.client_ids):
                return self._json(403, {"data": {"error": "Invalid client_id"}, "success": False, "status": 403})
            if parts[:4] == ["3", "gallery", "random", "random"]:
                page = int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 0
                return self._json(200, {"data": server_state.gallery.page(page), "success": True, "status": 200})
            if parts[:2] == ["3", "album"] and len(parts) == 4 and parts[3] == "images":
                images = server_state.gallery.albums.get(parts[2])
                if images is not None:
                    return self._json(200, {"data": images, "success": True, "status": 200})
            return self._json(404, {"data": {"error": "Not found"}, "success": False, "status": 404})

        def _json(self, code: int, body: dict) -> None:
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class DemoServer:
    def __init__(self, images: int = 120, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 client_ids: set[str] | None = None) -> None:
        self.latency, self.client_ids = latency, client_ids or set()
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.gallery = Gallery(images, self.url)
        self.image_count = images

    def start(self) -> "DemoServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
