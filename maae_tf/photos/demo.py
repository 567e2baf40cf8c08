"""A web page to edit a photo with one slider per attribute.

    python -m maae_tf.demo --model=export/face_edit              # an export (base or version folder) or a workdir
    python -m maae_tf.demo --server=HOST:8500 --model=face_edit   # TF Serving (gRPC) as the backend
    python -m maae_tf.demo --rest=http://HOST:8501 --model=face_edit
    python -m maae_tf.demo --model=export/face_edit --bench [PHOTO] # slider-move latency figures, then exit

Starts a small web app on 127.0.0.1 (`--port`, default 8765; 0 takes a free one) and prints its
URL. On the page: upload a photo (JPEG, PNG or WebP; EXIF orientation applied) or pick a built-in
synthetic example; every face is found as `python -m maae_tf.edit` finds it (dlib, CelebA
alignment); with several faces, click the one to edit. One slider per attribute of the model (δ
from −δmax to +δmax) re-edits the face as it moves; "Show original" flips between before and
after; "Download" gives the full-resolution result in the photo's format, the same file, byte for
byte, that `python -m maae_tf.edit PHOTO --model=… --attr NAME=δ … --face=I` writes. A photo that
does not read, has no face or only faces too small gets a message on the page; the app goes on.

Detection, alignment and the head mask run once per photo; a slider move runs the model on the
face's crop, pastes the change back (`edit.blend_edit`) and sends a PNG of the result (photos
larger than --preview px are shown scaled down; the download is always full resolution).

The page is a standard-library `http.server` with one HTML file (`demo_page.html`, plain JS):
no web framework to install (the README's "Demo" section says why not gradio).

Exit codes: 0 stopped with Ctrl-C (or --bench done); 2 bad arguments (no --model, a port in use,
a model folder that is not one); 1 the model or the server failed to load.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import http.server
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse

import numpy as np

from maae_tf.photos import edit

from maae_tf.data import faces
from maae_tf.photos import heads
from maae_tf.files import decode_photo, encode_photo
from maae_tf.serving.client import ServingError

DEFAULT_PORT = 8765
MAX_UPLOAD = 50 << 20        # bytes
KEEP_PHOTOS = 8              # photos held in memory (the oldest is dropped)
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_page.html")
EXIT_BAD_INPUT, EXIT_MODEL = 2, 1
EXAMPLES = ("one synthetic face", "two synthetic faces")


class UsageError(Exception):
    """A bad command line: one `error:` line, exit 2."""


# ------------------------------------------------------------------------------------ the app
@dataclasses.dataclass
class Photo:
    """One uploaded photo with everything a slider move reuses: its faces aligned and their
    head masks (computed once, when the photo arrives)."""

    sid: str
    name: str
    photo: np.ndarray              # as read (gray, RGB or RGBA), upright
    fmt: str                       # PIL's format name
    faces: list                    # one dict per face found (what the page shows)
    aligned: dict                  # face index → edit.AlignedFace (the faces big enough to edit)
    heads: dict                    # face index → heads.HeadMask
    original_png: bytes            # what the page shows as "before"
    scale: float                   # shown size / photo size (1 unless the photo is larger than --preview)


def example_photo(n: int) -> tuple[np.ndarray, str]:
    """Built-in example n (RGB, file name): faces drawn by the synthetic face set, never a real one."""
    import cv2

    from maae_tf.data import synthetic_faces

    if n == 0:
        rgb = synthetic_faces.render(0, 1, synthetic_faces.identity_params(0, 0))[0]
        name = "synthetic-portrait.png"
    elif n == 1:
        a = synthetic_faces.render(0, 7, synthetic_faces.identity_params(0, 3))[0]
        b = synthetic_faces.render(0, 12, synthetic_faces.identity_params(0, 5))[0]
        rgb, name = np.concatenate([a, b], 1), "synthetic-pair.png"
    else:
        raise edit.BadInput(f"no example {n} (there are {len(EXAMPLES)})")
    return cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), name


class DemoApp:
    """What the page asks for, independent of HTTP: load a photo, render an edit, the download.
    `model` an edit.LocalModel or edit.ServedModel, `detector` RGB → [faces.Face] (dlib's in the
    command), `masker` a heads.HeadMasker. Model calls are serialised (one at a time)."""

    def __init__(self, model, detector, masker, min_face: int = 64, quality: int = 95, preview: int = 1600,
                 log=print):
        self.model, self.detector, self.masker = model, detector, masker
        self.min_face, self.quality, self.preview, self.log = min_face, quality, preview, log
        self.photos: collections.OrderedDict[str, Photo] = collections.OrderedDict()
        # one computation at a time (dlib, the segmenter's interpreter and the model are not
        # meant to be called from two threads at once); the photo store has its own lock
        self.work, self.lock = threading.Lock(), threading.Lock()
        self._last = None                     # (key, result): the download after a move reuses it
        self._examples: dict[int, tuple[bytes, str]] = {}

    def info(self) -> dict:
        m = self.model
        return {"attributes": list(m.attributes), "delta_max": [float(v) for v in m.delta_max],
                "image_size": int(m.image_size), "source": m.source, "min_face": self.min_face,
                "examples": [{"id": i, "title": t} for i, t in enumerate(EXAMPLES)]}

    # ----- a photo arrives: detect, align, head masks, once
    def load(self, data: bytes, name: str) -> dict:
        name = os.path.basename(name or "photo") or "photo"
        try:
            photo, fmt = decode_photo(data, name)
        except ValueError as e:
            raise edit.BadInput(f"{e}. Upload a JPEG, PNG or WebP photo.") from None
        rgb = faces.as_rgb(photo)
        with self.work:
            return self._prepare(name, photo, fmt, rgb)

    def _prepare(self, name, photo, fmt, rgb) -> dict:
        found = self.detector(rgb)
        if not found:
            raise edit.BadInput(edit.no_face_message(name, photo)
                                + ". Upload a photo where a face looks at the camera.")
        listed, aligned, heads, small = [], {}, {}, []
        for i, face in enumerate(found):
            a = edit.align_face(rgb, face, self.model.crop, with_crop=False)
            reason = None
            if a.width < self.min_face:
                small.append(a.width)
                reason = (f"{a.width:.0f} px wide, below the {self.min_face} px the demo edits "
                          f"(--min_face)")
            else:
                try:
                    heads[i] = edit.head_mask(self.masker, rgb, face, name, i)
                    aligned[i] = edit.align_face(rgb, face, self.model.crop)
                except edit.BadInput as e:
                    reason = str(e)
            listed.append({"index": i, "box": [float(v) for v in face.box], "width": round(float(a.width), 1),
                           "ok": reason is None, "reason": reason})
        if not aligned:
            if len(small) == len(listed):
                widest = max(small)
                raise edit.BadInput(edit.all_too_small_message(name, len(listed))
                                    + f": the widest is {widest:.0f} px, the demo edits faces from "
                                    f"{self.min_face} px. Upload a photo with a larger face.")
            raise edit.BadInput(f"{name}: no face can be edited: "
                                + "; ".join(f"face {f['index']}: {f['reason']}" for f in listed))
        h, w = photo.shape[:2]
        scale = min(1.0, self.preview / max(h, w))
        photo_entry = Photo(secrets.token_hex(8), name, photo, fmt, listed, aligned, heads,
                            self._png(photo, scale), scale)
        with self.lock:
            self.photos[photo_entry.sid] = photo_entry
            while len(self.photos) > KEEP_PHOTOS:
                self.photos.popitem(last=False)
        return self.describe(photo_entry)

    def load_example(self, n: int) -> dict:
        if n not in self._examples:
            rgb, name = example_photo(n)
            self._examples[n] = (encode_photo(rgb, ".png"), name)
        data, name = self._examples[n]
        return self.load(data, name)

    @staticmethod
    def describe(p: Photo) -> dict:
        h, w = p.photo.shape[:2]
        return {"sid": p.sid, "name": p.name, "width": w, "height": h, "format": p.fmt, "faces": p.faces,
                "shown": [round(w * p.scale), round(h * p.scale)], "download_name": download_name(p.name, p.fmt),
                "face": min(p.aligned)}

    def _png(self, image: np.ndarray, scale: float) -> bytes:
        if scale < 1.0:
            import cv2

            h, w = image.shape[:2]
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        return encode_photo(image, ".png")

    # ----- a slider move
    def photo(self, sid: str) -> Photo:
        with self.lock:
            p = self.photos.get(sid)
        if p is None:
            raise KeyError(f"this photo is no longer held by the demo (it keeps the last {KEEP_PHOTOS}); "
                           f"upload it again")
        return p

    def deltas(self, text: str) -> np.ndarray:
        """δ per attribute from the page's comma-separated numbers (column order: info()["attributes"])."""
        k = len(self.model.attributes)
        try:
            d = np.array([float(v) for v in text.split(",")], np.float32)
        except ValueError:
            raise edit.BadInput(f"δ must be {k} comma-separated numbers, got {text!r}") from None
        if d.shape != (k,) or not np.all(np.isfinite(d)):
            raise edit.BadInput(f"δ must be {k} finite numbers ({', '.join(self.model.attributes)}), got {text!r}")
        return d

    def result(self, sid: str, face: int, delta_text: str) -> tuple[Photo, np.ndarray, dict]:
        """(photo, the edited photo at full resolution, ms per stage): exactly what
        `edit --face=FACE` computes for these δ (the same functions, the same order)."""
        p = self.photo(sid)
        if face not in p.aligned:
            raise edit.BadInput(f"{p.name}: face {face} cannot be edited (faces: "
                                f"{', '.join(str(i) for i in sorted(p.aligned))})")
        delta = self.deltas(delta_text)
        key = (sid, face, delta.tobytes())
        ms = {}
        with self.work:
            if self._last is not None and self._last[0] == key:
                return p, self._last[1], {"edit": 0.0, "blend": 0.0}
            a = p.aligned[face]
            t0 = time.perf_counter()
            new = self.model.edit(a.crop[None], delta[None])[0]
            t1 = time.perf_counter()
            out, _ = edit.blend_edit(p.photo, a, new, p.heads[face])
            t2 = time.perf_counter()
            self._last = (key, out)
        ms["edit"], ms["blend"] = (t1 - t0) * 1000, (t2 - t1) * 1000
        return p, out, ms

    def render(self, sid: str, face: int, delta_text: str) -> tuple[bytes, dict]:
        """The PNG the page shows for these δ and the time of each stage (ms)."""
        p, out, ms = self.result(sid, face, delta_text)
        t = time.perf_counter()
        png = self._png(out, p.scale)
        ms["encode"] = (time.perf_counter() - t) * 1000
        return png, ms

    def download(self, sid: str, face: int, delta_text: str) -> tuple[bytes, str]:
        """(file bytes, file name): what `edit` writes for this photo and δ (format kept, --quality)."""
        p, out, _ = self.result(sid, face, delta_text)
        name = download_name(p.name, p.fmt)
        try:
            return encode_photo(out, os.path.splitext(name)[1], self.quality), name
        except ValueError as e:
            raise edit.BadInput(f"{name}: {e}") from None


def download_name(name: str, fmt: str) -> str:
    """The file name `edit` gives the output of photo `name` (same name, the format's suffix)."""
    return os.path.basename(edit.output_path(name, fmt, "edited", 2))


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
            except edit.BadInput as e:
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
                raise edit.BadInput("the request needs sid, face (a number) and d") from None

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
                        raise edit.BadInput(f"no example {q.get('n')!r}") from None
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
                    raise edit.BadInput(f"{q.get('name', 'the photo')}: {length / 2**20:.0f} MB, more than the "
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


# ------------------------------------------------------------------------------------ command
@dataclasses.dataclass
class Options:
    """How to serve the page: the flags of `python -m maae_tf.demo` (maae_tf/demo.py says each).
    `bench`: None, or the photo to benchmark ("example": the built-in one)."""
    model: str | None = None
    server: str | None = None
    rest: str | None = None
    model_name: str | None = None
    timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    landmarks: int = 68
    min_face: int = 64
    quality: int = 95
    preview: int = 1600
    bench: str | None = None
    bench_moves: int = 40


def check_options(args: Options) -> None:
    """UsageError for options no demo can start with."""
    if not args.model:
        raise UsageError("give --model=EXPORT_OR_WORKDIR (or --server=HOST:8500 / --rest=URL with --model=NAME)")
    if args.server and args.rest:
        raise UsageError("give --server or --rest, not both")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    if args.bench_moves < 1:
        raise UsageError(f"--bench_moves must be at least 1, got {args.bench_moves}")
    if args.bench and args.bench != "example" and not os.path.isfile(args.bench):
        raise UsageError(f"--bench={args.bench}: no such photo")


def serve(args: Options, detector=None, masker=None, log=print, ready=None) -> int:
    """`python -m maae_tf.demo`: serves the page (or runs --bench) until Ctrl-C; returns the exit
    code. `detector` and `masker` replace dlib and the default head masker in tests;
    `ready(server)` is called once the page is served (tests stop it with server.shutdown())."""
    err = lambda msg: print(f"error: {msg}", file=sys.stderr)  # noqa: E731
    try:
        check_options(args)
        # the port first: a taken port is refused before the model loads
        server = bind(args.host, 0 if args.bench else args.port)
    except UsageError as e:
        err(e)
        return EXIT_BAD_INPUT
    try:
        try:
            if detector is None:
                detector = faces.DlibDetector(args.landmarks)
        except (ValueError, RuntimeError) as e:
            err(e)
            return EXIT_BAD_INPUT
        start = time.perf_counter()
        try:
            model = edit.load_model(args)
            edit.warm_up(model)
        except ValueError as e:
            err(e)
            return EXIT_BAD_INPUT
        except Exception as e:  # a model that does not load or a server that does not answer
            err(f"{type(e).__name__}: {e}")
            return EXIT_MODEL
        log(f"model: {model.source} ({', '.join(model.attributes)}; {model.image_size} px; loaded in "
            f"{time.perf_counter() - start:.1f} s)")
        if masker is None:
            masker = heads.HeadMasker(edit.default_segmenter(log))
        app = DemoApp(model, detector, masker, args.min_face, args.quality, args.preview, log)
        attach(server, app)
        if args.bench:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                return bench(url_of(server), args.bench, args.bench_moves, log)
            finally:
                server.shutdown()
        log(f"demo: {url_of(server)}  (open it in a browser; Ctrl-C stops the demo)")
        sys.stdout.flush()  # the URL reaches a pipe (a script waiting for it) at once
        if ready is not None:
            threading.Thread(target=ready, args=(server,), daemon=True).start()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log("demo: stopped")
        return 0
    finally:
        server.server_close()


# ------------------------------------------------------------------------------------ benchmark
def _get(url: str, data: bytes | None = None):
    import urllib.request

    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=120) as r:
        return r.read(), dict(r.headers)


def bench(base: str, photo: str, moves: int, log=print) -> int:
    """Times what the page does over HTTP on this machine: the photo's upload (detection,
    alignment, head mask: once), then `moves` slider moves across −δmax … +δmax of the first
    attribute, each a full round trip (request, edit, paste-back, PNG, transfer)."""
    import urllib.error

    info = json.loads(_get(base + "api/info")[0])
    t = time.perf_counter()
    try:
        if photo == "example":
            body = _get(base + "api/example?n=0")[0]
            photo = "the built-in example (synthetic face)"
        else:
            with open(photo, "rb") as f:
                body = _get(base + "api/photo?name=" + urllib.parse.quote(os.path.basename(photo)), f.read())[0]
    except urllib.error.HTTPError as e:
        print(f"error: {json.loads(e.read()).get('error')}", file=sys.stderr)
        return EXIT_BAD_INPUT
    prepare = (time.perf_counter() - t) * 1000
    p = json.loads(body)
    k, dmax = len(info["attributes"]), info["delta_max"][0]
    values = np.linspace(-dmax, dmax, moves)
    rng = np.random.default_rng(0)
    values = np.round(rng.permutation(values), 1)
    round_trip, parts = [], []
    query = lambda v: f"api/edit?sid={p['sid']}&face={p['face']}&d=" + ",".join([f"{v:g}"] + ["0"] * (k - 1))  # noqa: E731
    _get(base + query(0.05))  # the first move of a photo (graph warm for this crop size)
    for v in values:
        t = time.perf_counter()
        png, headers = _get(base + query(v))
        round_trip.append((time.perf_counter() - t) * 1000)
        parts.append(json.loads(headers["X-Timing"]))
    rt = np.array(round_trip)
    med = lambda key: float(np.median([x[key] for x in parts]))  # noqa: E731
    face = p["faces"][p["face"]]
    log(f"bench: {photo}: {p['width']}x{p['height']} px, {len(p['faces'])} face(s), editing face {p['face']} "
        f"(crop {face['width']:.0f} px); model {info['source']} at {info['image_size']} px; {moves} slider moves "
        f"over HTTP on this machine")
    log(f"  photo in (upload, detection, alignment, head mask; once per photo): {prepare:.0f} ms")
    log(f"  slider move, round trip: median {np.median(rt):.0f} ms, p90 {np.percentile(rt, 90):.0f} ms, "
        f"max {rt.max():.0f} ms; server side at the median: model {med('edit'):.0f} ms, paste-back "
        f"{med('blend'):.1f} ms, PNG {med('encode'):.1f} ms ({len(png) / 1024:.0f} KiB)")
    log(f"  within 300 ms: {int((rt <= 300).sum())} of {moves} moves")
    return 0

