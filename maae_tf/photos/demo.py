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
after; "Download" gives the full-resolution result in the photo's format (its ICC profile and
EXIF kept), the same file, byte for byte, that `python -m maae_tf.edit PHOTO --model=… --attr
NAME=δ … --face=I` writes. A photo that does not read, has no face or only faces too small gets
a message on the page; the app goes on.

Detection, alignment and the head mask run once per photo; a slider move runs the model on the
face's crop, pastes the change back (`align.blend_edit`) and sends a PNG of the result (photos
larger than --preview px are shown scaled down; the download is always full resolution).

The page is a standard-library `http.server` with one HTML file (`demo_page.html`, plain JS):
no web framework to install (the README's "Demo" section says why not gradio). What the page
asks for is maae_tf.photos.demo_app's `DemoApp`; the HTTP side is maae_tf.photos.demo_server's.

Exit codes: 0 stopped with Ctrl-C (or --bench done); 2 bad arguments (no --model, a port in use,
a model folder that is not one); 1 the model or the server failed to load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time

import numpy as np

from maae_tf.data import faces
from maae_tf.photos import heads, models
from maae_tf.photos.demo_app import DemoApp
from maae_tf.photos.demo_server import UsageError, attach, bind, url_of

DEFAULT_PORT = 8765


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
    try:
        check_options(args)
        # the port first: a taken port is refused before the model loads
        server = bind(args.host, 0 if args.bench else args.port)
    except UsageError as e:
        return models.failure(e)
    try:
        try:
            if detector is None:
                detector = faces.DlibDetector(args.landmarks)
            model = models.open_model(args, log)
        except (ValueError, RuntimeError, models.ModelError) as e:
            return models.failure(e)
        if masker is None:
            masker = heads.default_masker(log)
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
        return models.failure(ValueError(json.loads(e.read()).get("error")))
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

