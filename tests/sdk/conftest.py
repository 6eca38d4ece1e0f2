"""Fixtures: a real Herald binary on an ephemeral port, and a real HTTP receiver."""

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading

import pytest

TOKEN = "sdk-test-token"


class Receiver:
    """Records every request; answers with the next scripted status (default 200)."""

    def __init__(self):
        self.requests = []
        self.script = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with outer.cond:
                    status = outer.script.pop(0) if outer.script else 200
                    outer.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                    )
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path, n, timeout=10.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: len([r for r in self.requests if r["path"] == path]) >= n, timeout)
            got = [r for r in self.requests if r["path"] == path]
        assert ok, f"expected {n} requests on {path}, got {len(got)}"
        return got


@pytest.fixture(params=["paths as the SDK writes them", "paths with a trailing slash"])
def herald(request, monkeypatch):
    """Every SDK test runs twice: as the SDK calls, and with a trailing slash on every path
    (as scripts written from older Svix docs and SDKs call), which Svix answers too."""
    if request.param.endswith("trailing slash"):
        from svix.api import common

        original = common.ApiBase._get_httpx_kwargs
        slashed_urls = []

        def slashed(self, *args, **kwargs):
            httpx_kwargs = original(self, *args, **kwargs)
            if not httpx_kwargs["url"].endswith("/"):
                httpx_kwargs["url"] += "/"
            slashed_urls.append(httpx_kwargs["url"])
            return httpx_kwargs

        monkeypatch.setattr(common.ApiBase, "_get_httpx_kwargs", slashed)
        yield from run_herald()
        # The SDK's calls did go through the slashed paths.
        assert slashed_urls and all(u.endswith("/") for u in slashed_urls)
        return
    yield from run_herald()


def run_herald():
    binary = os.environ.get("HERALD_BIN", os.path.join(os.path.dirname(__file__), "../../target/debug/herald"))
    data_dir = tempfile.mkdtemp(prefix="herald-sdk-")
    proc = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", data_dir, "--admin-token", TOKEN,
         "--retry-schedule", "1s,1s", "--poll-interval", "50ms",
         "--allow-destination", "127.0.0.0/8"],
        stdout=subprocess.PIPE, text=True,
    )
    url = None
    for line in proc.stdout:
        if line.startswith("Herald listening on "):
            url = line.split()[-1]
            break
    assert url, "herald did not start"
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    yield url
    proc.kill()
    proc.wait()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def body_json(request):
    return json.loads(request["body"])
