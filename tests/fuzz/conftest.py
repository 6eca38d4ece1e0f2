"""Fixtures: a Herald that delivers nowhere, with a few objects for fuzzed paths to find.

Fuzzed endpoints get URLs of any host, public ones included. This Herald denies every
destination (`--deny-destination 0.0.0.0/0,::/0`): each attempt is recorded as refused
before its host name is even resolved, so the run sends nothing off loopback, not even
a DNS query. Its API listens on loopback only.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

TOKEN = "fuzz-test-token"


class Herald:
    def __init__(self, proc, url, log_path):
        self.proc = proc
        self.url = url
        self.log_path = log_path

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def herald():
    binary = os.environ.get("HERALD_BIN", os.path.join(os.path.dirname(__file__), "../../target/debug/herald"))
    data_dir = tempfile.mkdtemp(prefix="herald-fuzz-")
    log_path = os.path.join(data_dir, "herald.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", data_dir, "--admin-token", TOKEN,
         "--deny-destination", "0.0.0.0/0,::/0", "--retry-schedule", "none", "--sync", "normal"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    url = None
    for line in proc.stdout:
        if line.startswith("Herald listening on "):
            url = line.split()[-1]
            break
    assert url, "herald did not start"
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    yield Herald(proc, url, log_path)
    proc.kill()
    proc.wait()
    log.close()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def seeds(herald):
    """Objects whose ids the fuzzer puts into paths some of the time: an application
    `acme`, an endpoint `ep1` with a filter and a transform, an event type, and a message
    `evt-1` with its (refused) attempt."""
    herald.call("POST", "/api/v1/app", {"name": "Acme", "uid": "acme"})
    herald.call("POST", "/api/v1/event-type", {"name": "order.created", "description": "An order"})
    herald.call("POST", "/api/v1/app/acme/endpoint", {
        "uid": "ep1",
        "url": "https://acme.example/webhooks",
        "filter": {"payload.total": {"$gt": 10}},
        "transform": {"set": {"payload.source": {"value": "fuzz"}}},
    })
    message = herald.call("POST", "/api/v1/app/acme/msg", {
        "eventType": "order.created", "eventId": "evt-1", "payload": {"id": "o-1", "total": 12.5},
    })
    attempts = []
    deadline = time.monotonic() + 10
    while not attempts and time.monotonic() < deadline:
        attempts = herald.call("GET", f"/api/v1/app/acme/attempt/msg/{message['id']}")["data"]
        time.sleep(0.05)
    assert attempts, "the seeded message got no attempt"
    assert attempts[0]["errorKind"] == "refused", attempts[0]
    return {
        "app_id": ["acme"],
        "endpoint_id": ["ep1"],
        "msg_id": ["evt-1", message["id"]],
        "attempt_id": [attempts[0]["id"]],
        "event_type_name": ["order.created"],
    }
