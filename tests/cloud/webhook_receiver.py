"""A real HTTP receiver of webhooks on loopback: checks each signature on its own (not with the
hub's code), records what came, and fails on demand."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    secret: str
    url: str = ""
    fail_next: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, header: str, body: bytes) -> bool:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        mac = hmac.new(self.secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return abs(time.time() - t) < 300 and hmac.compare_digest(mac, parts["v1"])

    def accepted(self, event_type: str | None = None) -> list[Received]:
        """Deliveries answered 2xx with a valid signature (of ``event_type`` if given)."""
        with self.lock:
            return [
                r
                for r in self.received
                if r.signature_ok
                and r.headers.get("x-answer") == "200"
                and (event_type is None or r.json["type"] == event_type)
            ]


@contextlib.contextmanager
def receiving(secret: str) -> Iterator[Receiver]:
    receiver = Receiver(secret=secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                ok = receiver.check(self.headers.get("Lastmile-Signature", ""), body)
            except (KeyError, ValueError):
                ok = False
            with receiver.lock:
                failing = receiver.fail_next > 0
                if failing:
                    receiver.fail_next -= 1
                answer = 401 if not ok else 500 if failing else 200
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers["x-answer"] = str(answer)
                receiver.received.append(Received(headers=headers, body=body, signature_ok=ok))
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
