#!/usr/bin/env python3
"""A webhook receiver for the compose demo: verifies each delivery's Standard Webhooks
signature and prints the opportunity on one line (`docker compose logs -f receiver`).

It answers 204 to a delivery whose signature checks out and 401 to one that does not
(radar dead-letters a 401 at once: see `radar dlq list`). GET / answers how many
deliveries it accepted. Standard library only, so it runs on a stock python image.

Environment:
  RADAR_WEBHOOK_SECRET  the whsec_… secret radar signs with (space-separated for several)
  RECEIVER_PORT         port to listen on (default 8080)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Standard Webhooks: reject messages whose timestamp is further than this from now, so a
# captured request cannot be replayed later.
TOLERANCE_S = 5 * 60


def keys(secrets: str) -> list[bytes]:
    out = []
    for secret in secrets.split():
        if not secret.startswith("whsec_"):
            sys.exit("receiver: RADAR_WEBHOOK_SECRET must be whsec_<base64> secrets")
        out.append(base64.b64decode(secret.removeprefix("whsec_")))
    if not out:
        sys.exit("receiver: RADAR_WEBHOOK_SECRET is not set")
    return out


def verified(keys: list[bytes], msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether one of the `v1,<base64>` signatures in `header` is HMAC-SHA256 of
    "id.timestamp.body" under one of the keys, and the timestamp is recent."""
    try:
        if abs(time.time() - int(timestamp)) > TOLERANCE_S:
            return False
    except ValueError:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = [
        base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    ]
    for signature in header.split():
        version, _, value = signature.partition(",")
        if version == "v1" and any(hmac.compare_digest(value, e) for e in expected):
            return True
    return False


class Receiver(BaseHTTPRequestHandler):
    server_version = "radar-demo-receiver"
    keys: list[bytes] = []
    accepted = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        msg_id = self.headers.get("webhook-id", "")
        ok = verified(
            self.keys,
            msg_id,
            self.headers.get("webhook-timestamp", ""),
            body,
            self.headers.get("webhook-signature", ""),
        )
        if not ok:
            print(f"receiver: REJECTED {msg_id or '(no webhook-id)'}: bad or stale signature", flush=True)
            self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        with Receiver.lock:
            Receiver.accepted += 1
        try:
            data = json.loads(body)["data"]
            print(
                "receiver: {occurred_at} {account_id:<14} {kind:<22} tier {tier:<8} "
                "score {score:6.2f} owner {owner:<5} (id {opportunity_id})".format(**data),
                flush=True,
            )
        except (ValueError, KeyError, TypeError):
            print(f"receiver: {msg_id}: {body[:200]!r}", flush=True)
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        text = f"accepted {Receiver.accepted} deliveries\n".encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one line per delivery is printed above; no access log


def main() -> None:
    Receiver.keys = keys(os.environ.get("RADAR_WEBHOOK_SECRET", ""))
    port = int(os.environ.get("RECEIVER_PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Receiver)
    print(f"receiver: listening on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
