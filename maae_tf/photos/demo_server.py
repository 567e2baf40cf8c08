"""The web demo over HTTP: the standard library's `http.server` serving the page (`demo_page.html`,
plain JS) and its JSON/PNG API over a `demo_app.DemoApp` (`make_handler`), bound before the model
loads (`bind`) and given the app once it has (`attach`)."""

from __future__ import annotations

import errno
import http.server
import json
import os
import time
import urllib.parse

from maae_tf.photos.align import BadInput
from maae_tf.photos.demo_app import DemoApp
from maae_tf.serving.client import ServingError

MAX_UPLOAD = 50 << 20        # bytes
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_page.html")


class UsageError(Exception):
    """A bad command line: one `error:` line, exit 2."""


MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


# ------------------------------------------------------------------------------------ HTTP
def make_handler(app: DemoApp, page: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "maae_tf-demo"

        def log_message(self, *args):  # quiet: the page shows what went wrong
            pass

        def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj):
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _guarded(self, work):
            try:
                work()
            except BadInput as e:
                app.log(f"demo: {e}")
                self._json(400, {"error": str(e)})
            except KeyError as e:
                self._json(404, {"error": e.args[0] if e.args else "not found"})
            except ServingError as e:
                app.log(f"demo: the model server failed: {e}")
                self._json(502, {"error": f"the model server failed: {e}"})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page went away (a newer slider move replaced this one)
            except Exception as e:  # the app keeps running whatever one request did
                app.log(f"demo: error: {type(e).__name__}: {e}")
                self._json(500, {"error": f"{type(e).__name__}: {e}"})

        def _query(self):
            url = urllib.parse.urlsplit(self.path)
            return url.path, {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}

        def _edit_args(self, q):
            try:
                return q["sid"], int(q["face"]), q["d"]
            except (KeyError, ValueError):
                raise BadInput("the request needs sid, face (a number) and d") from None

        def do_GET(self):
            path, q = self._query()

            def work():
                if path in ("/", "/index.html"):
                    self._send(200, page, "text/html; charset=utf-8")
                elif path == "/api/info":
                    self._json(200, app.info())
                elif path == "/api/example":
                    try:
                        n = int(q.get("n", "0"))
                    except ValueError:
                        raise BadInput(f"no example {q.get('n')!r}") from None
                    self._json(200, app.load_example(n))
                elif path == "/api/original":
                    self._send(200, app.photo(q.get("sid", "")).original_png, "image/png")
                elif path == "/api/edit":
                    t = time.perf_counter()
                    png, ms = app.render(*self._edit_args(q))
                    ms["server"] = (time.perf_counter() - t) * 1000
                    self._send(200, png, "image/png", {"X-Timing": json.dumps({k: round(v, 2) for k, v in ms.items()})})
                elif path == "/api/download":
                    data, name = app.download(*self._edit_args(q))
                    mime = MIME.get(os.path.splitext(name)[1].lower(), "application/octet-stream")
                    quoted = urllib.parse.quote(name)
                    self._send(200, data, mime, {"Content-Disposition": f"attachment; filename*=UTF-8''{quoted}"})
                else:
                    self._json(404, {"error": f"no page {path}"})

            self._guarded(work)

        def do_POST(self):
            path, q = self._query()

            def work():
                if path != "/api/photo":
                    self._json(404, {"error": f"no page {path}"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_UPLOAD:
                    self.close_connection = True
                    raise BadInput(f"{q.get('name', 'the photo')}: {length / 2**20:.0f} MB, more than the "
                                        f"{MAX_UPLOAD >> 20} MB the demo takes")
                data = self.rfile.read(length) if length else b""
                self._json(200, app.load(data, q.get("name", "photo")))

            self._guarded(work)

    return Handler


class DemoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use is refused, not shared


def bind(host: str, port: int, app: DemoApp | None = None) -> DemoServer:
    """The server socket, bound and listening (the app attached later with `attach`); UsageError
    when the port is taken or cannot be bound."""
    try:
        server = DemoServer((host, port), make_handler(app, b""), bind_and_activate=True)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"--port={port}: {host}:{port} is in use (another demo or program); "
                             f"choose another port, or --port=0 for a free one") from None
        raise UsageError(f"--host={host} --port={port}: cannot listen there ({e.strerror or e})") from None
    return server


def attach(server: DemoServer, app: DemoApp) -> DemoServer:
    with open(PAGE, "rb") as f:
        server.RequestHandlerClass = make_handler(app, f.read())
    return server


def url_of(server: DemoServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
