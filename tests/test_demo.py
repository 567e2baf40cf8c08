"""`maae_tf.photos.demo`, the web page: its app (upload, edit, download = edit's file), its HTTP errors,
its command line, and the page itself in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium; skipped with the reason where either is missing).

The model is conftest's `exported` tiny export; faces come from a stand-in detector that knows
where test_edit's synthetic face was placed (dlib is tested in test_edit.py), the head mask from
the landmark prior, in both the demo and the `edit` command it is compared with.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from PIL import Image
from test_edit import make_photo

from maae_tf import edit as edit_command
from maae_tf.photos import demo, demo_app, demo_server, edit

from maae_tf.data import faces
from maae_tf.photos import heads
from maae_tf.photos.align import BadInput
from maae_tf.photos.models import LocalModel, ServedModel
from maae_tf.files import read_photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ShapeDetector:
    """Stands in for dlib: the faces of each known photo, by its size; no face in any other."""

    def __init__(self, by_shape: dict):
        self.by_shape = by_shape

    def __call__(self, rgb):
        return list(self.by_shape.get(rgb.shape[:2], []))


def boxed(face: faces.Face) -> faces.Face:
    """The face with a detector-like box around its landmarks (make_photo's is the whole photo)."""
    lo, hi = face.points.min(0), face.points.max(0)
    pad = 0.6 * (hi - lo).max()
    return faces.Face((lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad / 2), face.points, face.template)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """face.png (one placed face, 420×480), face.jpg (the same), two.png (two faces), tiny.png
    (one 51 px face), noface.png, broken.jpg; and the detector that knows them."""
    root = tmp_path_factory.mktemp("demo_photos")
    photo, face, _ = make_photo()
    Image.fromarray(photo).save(root / "face.png")
    Image.fromarray(photo).save(root / "face.jpg", quality=90)
    two, left, _ = make_photo(scale=1.0, angle=-6, offset=(20, 60), size=(520, 360), seed=3)
    right_face, right, _ = make_photo(scale=1.0, angle=9, offset=(300, 70), size=(520, 360), seed=3)
    two[:, 260:] = right_face[:, 260:]
    Image.fromarray(two).save(root / "two.png")
    tiny, tiny_face, _ = make_photo(scale=0.3, angle=0, offset=(10, 10), size=(120, 100))
    Image.fromarray(tiny).save(root / "tiny.png")
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(root / "noface.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    face, left, right, tiny_face = (boxed(f) for f in (face, left, right, tiny_face))
    detector = ShapeDetector({photo.shape[:2]: [face], two.shape[:2]: [left, right], tiny.shape[:2]: [tiny_face]})
    return {"root": root, "photo": photo, "face": face, "two": two, "detector": detector}


def pixels(data: bytes) -> np.ndarray:
    """The pixels of an encoded image."""
    return np.asarray(Image.open(io.BytesIO(data)))


def edit_output(photo_path, model, delta, out, detector, *extra):
    """What `python -m maae_tf.edit` writes for this photo and δ (same detector, the prior's head mask)."""
    options = edit_command.parse(["edit", str(photo_path), f"--model={model}", f"--delta={delta}", "-o", str(out),
                                  *extra])
    code = edit.edit_photos(options, detector=detector, masker=heads.HeadMasker(), log=lambda *a: None)
    assert code == 0
    return out.read_bytes()


@pytest.fixture(scope="module")
def app(exported, photos):
    model = LocalModel(str(exported["single"]))
    return demo_app.DemoApp(model, photos["detector"], heads.HeadMasker(), log=lambda *a: None)


# ------------------------------------------------------------------------------------ the app
def test_download_is_edits_file_byte_for_byte(app, exported, photos, tmp_path):
    root = photos["root"]
    for name in ("face.png", "face.jpg"):
        p = app.load((root / name).read_bytes(), name)
        assert p["faces"][0]["ok"] and p["face"] == 0 and p["download_name"] == name
        data, filename = app.download(p["sid"], 0, "2.5")
        assert filename == name
        expected = edit_output(root / name, exported["single"], 2.5, tmp_path / name, photos["detector"])
        assert data == expected, name
        shown, ms = app.render(p["sid"], 0, "2.5")
        assert set(ms) == {"edit", "blend", "encode"}
        if name == "face.png":  # what the page shows is the same image (a PNG; the photo is small)
            np.testing.assert_array_equal(pixels(shown), read_photo(str(tmp_path / name))[0])
    # δ = 0 shows the photo as it is
    p = app.load((root / "face.png").read_bytes(), "face.png")
    shown, _ = app.render(p["sid"], 0, "0")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(shown))), photos["photo"])


def test_several_faces_each_edited_as_edit_face_i(app, exported, photos, tmp_path):
    root = photos["root"]
    p = app.load((root / "two.png").read_bytes(), "two.png")
    assert [f["ok"] for f in p["faces"]] == [True, True] and p["faces"][0]["box"][0] < p["faces"][1]["box"][0]
    for i in (0, 1):
        data, _ = app.download(p["sid"], i, "-3")
        expected = edit_output(root / "two.png", exported["single"], -3, tmp_path / f"two{i}.png",
                               photos["detector"], f"--face={i}")
        assert data == expected
    with pytest.raises(BadInput, match="face 5 cannot be edited"):
        app.download(p["sid"], 5, "1")
    with pytest.raises(BadInput, match="δ must be 1 finite numbers"):
        app.render(p["sid"], 0, "nan")
    with pytest.raises(KeyError, match="upload it again"):
        app.render("gone", 0, "1")


def test_bad_photos_get_a_message(app, photos):
    root = photos["root"]
    with pytest.raises(BadInput, match=r"broken.jpg: not a readable image .*Upload a JPEG, PNG or WebP"):
        app.load((root / "broken.jpg").read_bytes(), "broken.jpg")
    with pytest.raises(BadInput, match="empty"):
        app.load(b"", "nothing.png")
    with pytest.raises(BadInput, match=r"noface.png: no face found \(400x300 px\)"):
        app.load((root / "noface.png").read_bytes(), "noface.png")
    with pytest.raises(BadInput, match=r"tiny.png: every face found \(1\) is too small: the widest is 51 px"):
        app.load((root / "tiny.png").read_bytes(), "tiny.png")


def test_examples_are_synthetic_faces():
    for n, shape in ((0, (436, 356, 3)), (1, (436, 712, 3))):
        rgb, name = demo_app.example_photo(n)
        assert rgb.shape == shape and name.startswith("synthetic-")
    with pytest.raises(BadInput, match="no example 2"):
        demo_app.example_photo(2)


# ------------------------------------------------------------------------------------ HTTP
@pytest.fixture
def served(exported, photos):
    """The demo command running in a thread on a free port (stand-in detector, prior head mask);
    its base URL. Stopped after the test."""
    box, ready = {}, threading.Event()

    def on_ready(server):
        box["server"] = server
        ready.set()

    thread = threading.Thread(target=demo.serve, kwargs=dict(
        args=demo.Options(model=str(exported["single"]), port=0), detector=photos["detector"],
        masker=heads.HeadMasker(), log=lambda *a: None, ready=on_ready), daemon=True)
    thread.start()
    assert ready.wait(120), "the demo did not start"
    yield demo_server.url_of(box["server"])
    box["server"].shutdown()
    thread.join(30)


def fetch(url, data=None):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_http_api_and_errors_keep_the_app_running(served, photos):
    root = photos["root"]
    status, body, _ = fetch(served)
    assert status == 200 and b"one slider per attribute" in body
    info = json.loads(fetch(served + "api/info")[1])
    assert info["attributes"] == ["mouth_slightly_open"] and info["delta_max"] == [5.0]
    for name, message in (("broken.jpg", "not a readable image"), ("noface.png", "no face found"),
                          ("tiny.png", "too small")):
        status, body, _ = fetch(served + f"api/photo?name={name}", (root / name).read_bytes())
        assert status == 400 and message in json.loads(body)["error"], body
    status, body, _ = fetch(served + "api/photo?name=face.png", (root / "face.png").read_bytes())
    assert status == 200
    p = json.loads(body)
    status, png, headers = fetch(served + f"api/edit?sid={p['sid']}&face=0&d=1.5")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n" and json.loads(headers["X-Timing"])["edit"] >= 0
    status, data, headers = fetch(served + f"api/download?sid={p['sid']}&face=0&d=1.5")
    assert status == 200 and "face.png" in headers["Content-Disposition"]
    np.testing.assert_array_equal(pixels(data), pixels(png))  # the file holds the image shown
    for query, code in (("sid=nope&face=0&d=1", 404), (f"sid={p['sid']}&face=x&d=1", 400),
                        (f"sid={p['sid']}&face=0&d=1,2", 400)):
        status, body, _ = fetch(served + "api/edit?" + query)
        assert status == code and json.loads(body)["error"], query
    assert fetch(served + "api/info")[0] == 200  # still running


# ------------------------------------------------------------------------------------ command line
def run_demo(*argv):
    """The command in its own process (stderr, exit code)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "maae_tf.demo", *argv], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=120)
    return r.returncode, r.stderr


@pytest.mark.faults
def test_bad_command_lines_get_one_error_line(tmp_path, exported):
    code, err = run_demo()
    assert code == 2 and err.strip().splitlines() == [
        "error: give --model=EXPORT_OR_WORKDIR (or --server=HOST:8500 / --rest=URL with --model=NAME)"]
    code, err = run_demo("--model=x", "--colour=red")
    assert code == 2 and err.strip() == "error: unrecognized arguments: --colour=red"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, err = run_demo(f"--model={exported['single']}", f"--port={port}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: --port={port}: 127.0.0.1:{port} is in use") and "--port=0" in err
    # a model folder that is not one: refused once the port is free (in this process: no TF start-up twice)
    lines = []
    code = demo.serve(demo.Options(model=str(tmp_path / "nope"), port=0), detector=lambda rgb: [], log=lines.append)
    assert code == 2


# ------------------------------------------------------------------------------------ in a browser
def chromium_or_skip():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no chromium/chromedriver installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


SHOWN_BYTES = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {
  let s = ""; const u = new Uint8Array(b);
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
  done(btoa(s));
}).catch(e => done("error: " + e));
"""


def test_the_page_in_chromium(served, exported, photos, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium_or_skip()
    try:
        wait = WebDriverWait(browser, 60)
        idle = lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle"  # noqa: E731
        browser.set_script_timeout(60)
        shown = lambda: base64.b64decode(browser.execute_async_script(  # noqa: E731
            SHOWN_BYTES, browser.find_element(By.ID, "result").get_attribute("src")))
        browser.get(served)
        wait.until(idle)
        slider = browser.find_element(By.ID, "delta-mouth_slightly_open")
        assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("-5", "5")

        # upload a photo: the face is found and shown at δ = 0 (the photo itself)
        browser.find_element(By.ID, "upload").send_keys(str(photos["root"] / "face.png"))
        wait.until(lambda b: idle(b) and b.find_element(By.ID, "result").get_attribute("data-showing") == "edit")
        before = shown()
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(before))), photos["photo"])

        # move the slider with the keyboard, as a person would: 25 steps of 0.1 to the right
        slider.send_keys(*[Keys.ARROW_RIGHT] * 25)
        value = slider.get_attribute("value")
        assert float(value) == pytest.approx(2.5)
        wait.until(lambda b: idle(b) and b.find_element(By.ID, "result").get_attribute("data-query")
                   .endswith("&d=" + value))
        after = shown()
        assert after != before  # the face changed
        expected = edit_output(photos["root"] / "face.png", exported["single"], value, tmp_path / "edit.png",
                               photos["detector"])
        # the page shows the image edit writes (the downloaded file is that file, byte for byte)
        np.testing.assert_array_equal(pixels(after), read_photo(str(tmp_path / "edit.png"))[0])
        link = browser.find_element(By.ID, "download")
        assert link.get_attribute("download") == "face.png"
        assert base64.b64decode(browser.execute_async_script(SHOWN_BYTES, link.get_attribute("href"))) == expected
        browser.save_screenshot(str(tmp_path / "demo_edit.png"))

        # before / after
        toggle = browser.find_element(By.ID, "toggle")
        toggle.click()
        wait.until(lambda b: b.find_element(By.ID, "result").get_attribute("data-showing") == "original")
        assert shown() == before
        toggle.click()
        wait.until(lambda b: b.find_element(By.ID, "result").get_attribute("data-showing") == "edit")

        # a photo without a face: a message on the page, and the app goes on
        browser.find_element(By.ID, "upload").send_keys(str(photos["root"] / "noface.png"))
        message = browser.find_element(By.ID, "message")
        wait.until(lambda b: message.is_displayed() and "no face found" in message.text)
        assert "noface.png: no face found (400x300 px)" in message.text
        browser.save_screenshot(str(tmp_path / "demo_no_face.png"))
        browser.find_element(By.ID, "upload").send_keys(str(photos["root"] / "face.png"))
        wait.until(lambda b: idle(b) and not message.is_displayed())
        assert shown() == after  # the slider kept its value: the same edit again
    finally:
        browser.quit()
    assert cv2.imread(str(tmp_path / "demo_edit.png")) is not None
    print(f"screenshots: {tmp_path / 'demo_edit.png'}, {tmp_path / 'demo_no_face.png'}")


def test_tf_serving_rest_backend_gives_the_same_file(exported, photos, tmp_path):
    from support.tf_serving_double import ModelServerDouble

    root = photos["root"]
    with ModelServerDouble({"mouth_open": str(exported["single"].parent)}, rest=True) as server:
        for model in (ServedModel(server.rest_address, "mouth_open", rest=True),
                      ServedModel(server.grpc_address, "mouth_open")):
            app = demo_app.DemoApp(model, photos["detector"], heads.HeadMasker(), log=lambda *a: None)
            p = app.load((root / "face.png").read_bytes(), "face.png")
            data, _ = app.download(p["sid"], 0, "-2")
            assert data == edit_output(root / "face.png", exported["single"], -2, tmp_path / "local.png",
                                       photos["detector"])
