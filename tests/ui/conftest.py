"""Fixtures of the browser tests: a real Herald, a real receiver, Debian's Chromium.

Chromium is started as the machine allows (no sandbox as root, no background networking:
the machine has no network beyond loopback). Every test gets a fresh Herald.
"""

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

TOKEN = "ui-test-admin-token"
CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.path.join(os.path.dirname(__file__), "../../docs/screenshots")


class Receiver:
    """Records every delivery; answers with `status` and `body`, which a test may change."""

    def __init__(self):
        self.requests = []
        self.status = 200
        self.body = b"thanks"
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with outer.cond:
                    status, answer = outer.status, outer.body
                    outer.requests.append({"path": self.path, "body": body})
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, status, body):
        with self.cond:
            self.status, self.body = status, body

    def count(self, path):
        with self.cond:
            return len([r for r in self.requests if r["path"] == path])

    def wait_for(self, path, n, timeout=15.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: len([r for r in self.requests if r["path"] == path]) >= n, timeout)
            got = [r for r in self.requests if r["path"] == path]
        assert ok, f"expected {n} requests on {path}, got {len(got)}"
        return got


class Herald:
    """A `herald serve` of its own, and its API for what the test does outside the page."""

    def __init__(self, binary, extra=()):
        self.data_dir = tempfile.mkdtemp(prefix="herald-ui-")
        # Retries an hour apart: a failed delivery waits for the person to resend it.
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", self.data_dir, "--admin-token", TOKEN,
             "--retry-schedule", "1h", "--poll-interval", "50ms", "--allow-destination", "127.0.0.0/8", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.url = None
        for line in self.proc.stdout:
            if line.startswith("Herald listening on "):
                self.url = line.split()[-1]
                break
        assert self.url, "herald did not start"
        self.log = []
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        threading.Thread(target=lambda: [self.log.append(line) for line in self.proc.stderr], daemon=True).start()

    def api(self, method, path, body=None, token=TOKEN):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
                return resp.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as err:
            text = err.read()
            return err.code, (json.loads(text) if text else None)

    def ok(self, method, path, body=None, token=TOKEN):
        status, answer = self.api(method, path, body, token)
        assert 200 <= status < 300, f"{method} {path}: {status} {answer}"
        return answer

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def binary():
    return os.environ.get("HERALD_BIN", os.path.join(os.path.dirname(__file__), "../../target/debug/herald"))


@pytest.fixture
def herald():
    h = Herald(binary())
    yield h
    h.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        # The README test command installs Chromium; without it this is a failure, not a skip.
        pytest.fail(f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    p = context.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.set_default_timeout(10_000)
    yield p
    context.close()
    assert not errors, f"errors in the page: {errors}"


def menu(page, name):
    """A link of the page's main navigation."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


def open_message(page, log_link, msg_id):
    """Opens the delivery log by `log_link`, then the message."""
    log_link.click()
    page.get_by_role("link", name=msg_id).click()
    expect(page.get_by_role("heading", name=msg_id)).to_be_visible()


def screenshot(page, name):
    """The screen at desktop width and at 375 px, under docs/screenshots/."""
    os.makedirs(SHOTS, exist_ok=True)
    size = page.viewport_size
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 780})
    page.screenshot(path=os.path.join(SHOTS, f"{name}-375.png"), full_page=True)
    page.set_viewport_size(size)
