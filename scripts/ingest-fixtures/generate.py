#!/usr/bin/env python3
"""Generate Radar's ingest test fixtures with the real ecosystem libraries.

Run through ../make-ingest-fixtures (it builds the pinned venv).  Usage:

    generate.py OUT_DIR

Writes into OUT_DIR (tests/fixtures/ingest): <set>.records.jsonl (Kafka
records), <set>.toml (Radar source config), <set>.expected.jsonl (oracle),
segment.jsonl, schemas/*.  Everything is deterministic: every SDK call gets an
explicit message id and timestamp, and the batch-level `sentAt` the HTTP SDKs
add is dropped together with the rest of the batch envelope.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.server
import json
import logging
import os
import shutil
import struct
import sys
import threading
from importlib import metadata

from radar_oracle import expected, toml_for

UTC = dt.timezone.utc
OUT = None  # set in main()

# --------------------------------------------------------------------------
# common output helpers


def b64(b: bytes | None):
    return None if b is None else base64.b64encode(b).decode("ascii")


def record_line(key, headers, value: bytes) -> str:
    if isinstance(key, str):
        key = key.encode("utf-8")
    hs = []
    for name, v in headers:
        if isinstance(v, str):
            v = v.encode("utf-8")
        hs.append([name, b64(v)])
    return json.dumps({"key": b64(key), "headers": hs, "value": b64(value)}, separators=(",", ":"))


def write_lines(name: str, lines) -> None:
    with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def write_text(name: str, text: str) -> None:
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def write_set(source: dict, records: list, outcomes: list) -> None:
    """records: (key, headers, value bytes); outcomes: expected dicts, same order."""
    assert len(records) == len(outcomes)
    name = source["name"]
    write_lines(f"{name}.records.jsonl", [record_line(*r) for r in records])
    write_lines(f"{name}.expected.jsonl", [compact(o) for o in outcomes])
    write_text(f"{name}.toml", toml_for(source))


# --------------------------------------------------------------------------
# loopback HTTP capture for the Segment / RudderStack SDKs


class Capture:
    def __init__(self):
        self.requests = []  # (path, headers dict, raw body bytes, decoded body bytes)
        cap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                body = raw
                if self.headers.get("Content-Encoding", "").lower() == "gzip" or raw[:2] == b"\x1f\x8b":
                    body = gzip.decompress(raw)
                cap.requests.append((self.path, dict(self.headers.items()), raw, body))
                reply = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def take(self):
        r, self.requests = self.requests, []
        return r


def batch_message_spans(body: bytes) -> list[bytes]:
    """The exact bytes of each element of the top-level `batch` array.

    The SDK serialises the whole batch as one JSON document; rather than
    re-serialising the decoded messages we cut each element's own text out of
    the SDK's document (json.JSONDecoder.raw_decode gives the end offsets),
    so key order, separators and escapes are the SDK's.
    """
    text = body.decode("utf-8")
    dec = json.JSONDecoder()
    ws = " \t\r\n"

    def skip(i):
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    i = skip(0)
    assert text[i] == "{"
    i = skip(i + 1)
    spans = None
    while text[i] != "}":
        key, i = dec.raw_decode(text, i)
        i = skip(i)
        assert text[i] == ":"
        i = skip(i + 1)
        if key == "batch":
            assert text[i] == "["
            spans = []
            i = skip(i + 1)
            while text[i] != "]":
                _, end = dec.raw_decode(text, i)
                spans.append(text[i:end].encode("utf-8"))
                i = skip(end)
                if text[i] == ",":
                    i = skip(i + 1)
            i = skip(i + 1)
        else:
            _, i = dec.raw_decode(text, i)
            i = skip(i)
        if text[i] == ",":
            i = skip(i + 1)
    assert spans is not None, "no batch array in request body"
    # Sanity: the spans are the batch's elements.
    assert [json.loads(s) for s in spans] == json.loads(text)["batch"]
    return spans


# --------------------------------------------------------------------------
# 1. Segment


def segment_context(group, page_path, ua_minor, extra=None):
    ctx = {
        "ip": "203.0.113.%d" % (10 + ua_minor),
        "locale": "en-US",
        "timezone": "Europe/Berlin",
        "userAgent": (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/124.0.6367.%d Safari/537.36" % ua_minor
        ),
        "page": {
            "path": page_path,
            "referrer": "https://app.example.com/dashboard",
            "title": "Example App",
            "url": "https://app.example.com" + page_path,
            "search": "?tab=members",
        },
        "campaign": {"source": "newsletter", "medium": "email", "name": "spring-2024"},
    }
    if group is not None:
        ctx["groupId"] = group
    if extra:
        ctx.update(extra)
    return ctx


def segment_calls():
    """(method, kwargs) for each Segment call, in record order."""
    berlin = dt.timezone(dt.timedelta(hours=2))
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    return [
        ("track", dict(
            message_id="seg-0001-seat-limit-near", user_id="u_1001", anonymous_id=None,
            event="Seat Limit Near",
            timestamp=dt.datetime(2024, 5, 1, 10, 15, 30, 123000, tzinfo=UTC),
            context=segment_context("acc_acme", "/settings/members", 1),
            properties={"seatCount": 46, "seatLimit": "50", "planTier": "growth",
                        "billingInterval": "annual", "triggeredBy": "invite-flow",
                        "experiment": {"id": "exp-42", "variant": "B"}},
        )),
        ("track", dict(
            message_id="seg-0002-api-limit", user_id="u_1002", anonymous_id=None,
            event="API Limit Exceeded",
            timestamp=dt.datetime(2024, 5, 1, 10, 20, 0, tzinfo=UTC),
            context=segment_context("acc_acme", "/developers/usage", 2),
            properties={"apiCalls": 100512, "apiLimit": 100000, "window": "30d",
                        "endpoint": "/v2/events", "httpStatus": 429, "retryAfterSeconds": 3600},
        )),
        ("track", dict(
            message_id="seg-0003-teammate-invited", user_id=None,
            anonymous_id="anon-7f3c2b9e-51d4-4c1a-9b0e-2f6a8d1c3e45",
            event="Teammate Invited",
            timestamp=dt.datetime(2024, 5, 1, 12, 5, 9, 500000, tzinfo=berlin),
            context=segment_context("acc_globex", "/settings/members/invite", 3),
            properties={"inviteeRole": "admin", "inviteMethod": "email",
                        "inviteeDomain": "globex.example", "pendingInvites": 3},
        )),
        ("track", dict(
            message_id="seg-0004-plan-changed", user_id="u_2001", anonymous_id=None,
            event="Plan Changed",
            timestamp=dt.datetime(2024, 5, 2, 8, 0, 0, 1000, tzinfo=UTC),
            context=segment_context("acc_globex", "/billing/plan", 4),
            properties={"plan": "enterprise", "arr": 48000.5, "contractEnd": "2025-06-30",
                        "previousPlan": "growth", "currency": "USD", "seatsPurchased": 120},
        )),
        ("track", dict(
            message_id="seg-0005-page-viewed", user_id="u_1001", anonymous_id=None,
            event="Page Viewed",
            timestamp=dt.datetime(2024, 5, 2, 9, 30, 15, tzinfo=UTC),
            context=segment_context("acc_acme", "/reports/weekly", 5),
            properties={"path": "/reports/weekly", "title": "Weekly report",
                        "loadTimeMs": 412, "scrollDepth": 0.75},
        )),
        ("track", dict(
            message_id="seg-0006-no-group", user_id="u_3001", anonymous_id=None,
            event="Seat Limit Near",
            timestamp=dt.datetime(2024, 5, 2, 11, 45, 0, 250000, tzinfo=UTC),
            context=segment_context(None, "/settings/members", 6),
            properties={"seatCount": 9, "seatLimit": "10", "planTier": "starter"},
        )),
        ("group", dict(
            message_id="seg-0007-group", user_id="u_1001", anonymous_id=None,
            group_id="acc_acme",
            timestamp=dt.datetime(2024, 5, 3, 0, 0, 0, tzinfo=UTC),
            context=segment_context(None, "/settings/company", 7),
            traits={"name": "Acme Corp", "industry": "Manufacturing", "seatCount": 47,
                    "employees": 250, "website": "https://acme.example",
                    "address": {"city": "Springfield", "country": "US"}},
        )),
        ("identify", dict(
            message_id="seg-0008-identify", user_id="u_1001", anonymous_id=None,
            timestamp=dt.datetime(2024, 5, 3, 0, 0, 1, 999000, tzinfo=UTC),
            context=segment_context(None, "/login", 8),
            traits={"email": "wile.e@acme.example", "name": "Wile E.", "role": "owner",
                    "createdAt": "2023-01-15T09:00:00Z"},
        )),
        ("track", dict(
            message_id="seg-0009-seat-limit-anon", user_id=None,
            anonymous_id="anon-0b1e2c3d-4f5a-6b7c-8d9e-0f1a2b3c4d5e",
            event="Seat Limit Near",
            # microseconds: the SDK renders milliseconds only (truncates)
            timestamp=dt.datetime(2024, 5, 3, 14, 22, 33, 456789, tzinfo=UTC),
            context=segment_context("acc_initech", "/settings/members", 9),
            properties={"seatCount": 9, "seatLimit": "10", "planTier": "starter",
                        "billingInterval": "monthly"},
        )),
        ("track", dict(
            message_id="seg-0010-api-limit-ist", user_id="u_4001", anonymous_id=None,
            event="API Limit Exceeded",
            timestamp=dt.datetime(2024, 5, 4, 5, 30, 0, tzinfo=kolkata),
            context=segment_context("acc_initech", "/developers/keys", 10),
            properties={"apiCalls": 2000001, "apiLimit": 2000000, "window": "30d",
                        "endpoint": "/v2/batch"},
        )),
        ("track", dict(
            message_id="seg-0011-teammate-invited", user_id="u_1002", anonymous_id="anon-u1002-device",
            event="Teammate Invited",
            timestamp=dt.datetime(2024, 5, 4, 16, 0, 0, 7000, tzinfo=UTC),
            context=segment_context("acc_acme", "/settings/members/invite", 11),
            properties={"inviteeRole": "member", "inviteMethod": "link"},
        )),
        ("track", dict(
            message_id="seg-0012-user-login", user_id="u_2001", anonymous_id=None,
            event="user_login",  # already a Radar type: passes through unmapped
            timestamp=dt.datetime(2024, 5, 5, 7, 59, 59, tzinfo=UTC),
            context=segment_context("acc_globex", "/login", 12),
            properties={"method": "sso", "provider": "okta"},
        )),
    ]


SEGMENT_TYPES = {
    "Seat Limit Near": "seat_threshold_90pct",
    "API Limit Exceeded": "api_tier_exceeded",
    "Teammate Invited": "team_invite_sent",
    "Plan Changed": "entitlement_updated",
    "group": "usage_snapshot",
}

SEGMENT_PROPERTIES = {
    "seats_used": ["properties.seatCount", "traits.seatCount"],
    "seat_limit": ["properties.seatLimit"],
    "api_calls": ["properties.apiCalls"],
    "api_limit": ["properties.apiLimit"],
    "plan": ["properties.plan"],
    "arr": ["properties.arr"],
    "contract_end": ["properties.contractEnd"],
}


def logical_http_message(method: str, kw: dict, extra: dict) -> dict:
    """The message an analytics SDK builds from a call, as logical data."""
    msg = {
        "messageId": kw["message_id"],
        "type": method,
        "userId": kw.get("user_id"),
        "anonymousId": kw.get("anonymous_id"),
        "timestamp": kw["timestamp"],
        "context": kw.get("context", {}),
    }
    if method == "track":
        msg["event"] = kw["event"]
        msg["properties"] = kw.get("properties", {})
    if method in ("group", "identify"):
        msg["traits"] = kw.get("traits", {})
    if method == "group":
        msg["groupId"] = kw["group_id"]
    msg.update(extra)
    return msg


def run_http_sdk(client, capture, calls):
    values = []
    for method, kw in calls:
        kw = dict(kw)
        kw["context"] = json.loads(json.dumps(kw["context"]))  # the SDK mutates context
        ok, _ = getattr(client, method)(**kw)
        assert ok
        reqs = capture.take()
        assert len(reqs) == 1, reqs
        path, headers, raw, body = reqs[0]
        assert path == "/v1/batch", path
        spans = batch_message_spans(body)
        assert len(spans) == 1
        values.append((spans[0], headers, raw != body))
    return values


def gen_segment(capture, notes):
    import segment.analytics as sa

    client = sa.Client(
        write_key="fixture-write-key", host=capture.url, sync_mode=True, gzip=True,
        max_retries=0,
    )
    calls = segment_calls()
    values = run_http_sdk(client, capture, calls)
    notes["segment_gzip"] = all(g for _, _, g in values)
    notes["segment_request_headers"] = {k: v for k, v in values[0][1].items()
                                        if k.lower() in ("content-type", "content-encoding", "user-agent")}
    source = {
        "name": "segment", "topics": ["segment-events"], "format": "json", "framing": "none",
        "envelope": "segment", "key": "user",
        "fields": {},
        "convert": {"seat_limit": "number_string"},
        "properties": SEGMENT_PROPERTIES,
        "types": SEGMENT_TYPES,
    }
    records, outcomes, raw_values = [], [], []
    for (method, kw), (value, _, _) in zip(calls, values):
        key = kw.get("user_id") or kw.get("anonymous_id")
        records.append((key, [], value))
        raw_values.append(value.decode("utf-8"))
        outcomes.append(expected(source, logical_http_message(method, kw, {})))
    write_set(source, records, outcomes)
    write_lines("segment.jsonl", raw_values)
    notes["segment_timestamps"] = [json.loads(v)["timestamp"] for v in raw_values]
    notes["segment_sizes"] = [len(v) for v in raw_values]


# --------------------------------------------------------------------------
# 2. RudderStack


def rudder_calls():
    ny = dt.timezone(dt.timedelta(hours=-4))
    return [
        ("track", dict(
            message_id="rs-0001-seat-limit-near", user_id="u_5001", anonymous_id=None,
            event="Seat Limit Near",
            timestamp=dt.datetime(2024, 6, 1, 9, 0, 0, 123456, tzinfo=UTC),
            context=segment_context("acc_umbrella", "/settings/members", 21),
            properties={"seatCount": 95, "seatLimit": "100", "planTier": "scale"},
        )),
        ("track", dict(
            message_id="rs-0002-api-limit", user_id=None, anonymous_id="anon-rs-9c8b7a",
            event="API Limit Exceeded",
            timestamp=dt.datetime(2024, 6, 1, 9, 5, 0, tzinfo=ny),
            context=segment_context("acc_umbrella", "/developers/usage", 22),
            properties={"apiCalls": 50001, "apiLimit": 50000, "window": "1d"},
        )),
        ("group", dict(
            message_id="rs-0003-group", user_id="u_5001", anonymous_id=None,
            group_id="acc_umbrella",
            timestamp=dt.datetime(2024, 6, 1, 10, 0, 0, tzinfo=UTC),
            context=segment_context(None, "/settings/company", 23),
            traits={"name": "Umbrella Corp", "seatCount": 96, "industry": "Pharma"},
        )),
        ("identify", dict(
            message_id="rs-0004-identify", user_id="u_5001", anonymous_id=None,
            timestamp=dt.datetime(2024, 6, 1, 10, 0, 1, 500000, tzinfo=UTC),
            context=segment_context(None, "/login", 24),
            traits={"email": "alice@umbrella.example", "role": "admin"},
        )),
        ("track", dict(
            message_id="rs-0005-page-viewed", user_id="u_5002", anonymous_id=None,
            event="Page Viewed",
            timestamp=dt.datetime(2024, 6, 1, 11, 0, 0, tzinfo=UTC),
            context=segment_context("acc_umbrella", "/reports", 25),
            properties={"path": "/reports"},
        )),
        ("track", dict(
            message_id="rs-0006-plan-changed-no-group", user_id="u_5003", anonymous_id=None,
            event="Plan Changed",
            timestamp=dt.datetime(2024, 6, 2, 0, 0, 0, 1, tzinfo=UTC),
            context=segment_context(None, "/billing/plan", 26),
            properties={"plan": "scale", "arr": 12000.0, "contractEnd": "2025-01-31"},
        )),
        ("track", dict(
            message_id="rs-0007-plan-changed", user_id="u_5001", anonymous_id=None,
            event="Plan Changed",
            timestamp=dt.datetime(2024, 6, 2, 0, 0, 0, tzinfo=UTC),
            context=segment_context("acc_umbrella", "/billing/plan", 27),
            properties={"plan": "scale", "arr": 12000.0, "contractEnd": "2025-01-31"},
        )),
    ]


def gen_rudderstack(capture, notes):
    import rudderstack.analytics as ra

    client = ra.Client(
        write_key="fixture-write-key", host=capture.url, sync_mode=True, gzip=True, max_retries=0,
    )
    calls = rudder_calls()
    values = run_http_sdk(client, capture, calls)
    notes["rudder_gzip"] = all(g for _, _, g in values)
    notes["rudder_request_headers"] = {k: v for k, v in values[0][1].items()
                                       if k.lower() in ("content-type", "content-encoding", "user-agent")}
    first_msg = json.loads(values[0][0])
    notes["rudder_message_keys"] = list(first_msg.keys())
    source = {
        "name": "rudderstack", "topics": ["rudderstack-events"], "format": "json", "framing": "none",
        "envelope": "segment", "key": "user",
        # The SDK sends only `timestamp` (and `channel: "server"`); RudderStack's
        # server adds originalTimestamp/sentAt/receivedAt before its Kafka
        # destination, so prefer the client's originalTimestamp when present.
        "fields": {
            "timestamp": ["originalTimestamp", "timestamp"],
            "received_at": ["receivedAt"],
        },
        "convert": {"timestamp": "rfc3339", "seat_limit": "number_string"},
        "properties": SEGMENT_PROPERTIES,
        "types": SEGMENT_TYPES,
    }
    records, outcomes = [], []
    for (method, kw), (value, _, _) in zip(calls, values):
        key = kw.get("user_id") or kw.get("anonymous_id")
        records.append((key, [], value))
        outcomes.append(expected(source, logical_http_message(method, kw, {"channel": "server"})))
    write_set(source, records, outcomes)
    notes["rudder_timestamps"] = [json.loads(v)["timestamp"] for v, _, _ in values]


# --------------------------------------------------------------------------
# 3. CloudEvents


CE_TYPES = {
    "com.example.seat.limit_near": "seat_threshold_90pct",
    "com.example.api.limit_exceeded": "api_tier_exceeded",
}


def gen_cloudevents(notes):
    from cloudevents.v1.http import CloudEvent as OldCloudEvent
    from cloudevents.v1 import kafka as old_kafka
    from cloudevents.core.v1.event import CloudEvent as NewCloudEvent
    from cloudevents.core.bindings import kafka as new_kafka
    from cloudevents.core.formats.json import JSONFormat

    source = {
        "name": "cloudevents", "topics": ["cloudevents"], "format": "json", "framing": "none",
        "envelope": "cloudevents", "key": "account",
        "fields": {}, "convert": {}, "properties": {},
        "types": CE_TYPES,
    }
    # (api, mode, attributes, data, kafka key)
    specs = [
        ("old", "binary",
         {"id": "ce-0001", "source": "/billing", "type": "com.example.seat.limit_near",
          "time": "2024-07-01T08:00:00.123Z", "accountid": "acc_acme"},
         {"user_id": "u_1001", "seats_used": 46, "seat_limit": 50}, "acc_acme"),
        ("old", "structured",
         {"id": "ce-0002", "source": "/billing", "type": "com.example.seat.limit_near",
          "time": "2024-07-01T08:05:00Z"},
         {"account_id": "acc_globex", "user_id": "u_2001", "seats_used": 108, "seat_limit": 120},
         "acc_globex"),
        ("old", "binary",
         {"id": "ce-0003", "source": "/web", "type": "com.example.page.viewed",
          "time": "2024-07-01T08:10:00+02:00", "accountid": "acc_acme"},
         {"user_id": "u_1002", "seats_used": 46, "seat_limit": 50}, "acc_acme"),
        ("old", "structured",
         {"id": "ce-0004", "source": "/billing", "type": "com.example.seat.limit_near",
          "time": "2024-07-01T08:15:00.5Z", "subject": "acc_initech"},
         {"user_id": "u_4001", "seats_used": 9, "seat_limit": 10}, "acc_initech"),
        ("new", "binary",
         {"id": "ce-0005", "source": "/billing", "type": "com.example.seat.limit_near",
          "time": dt.datetime(2024, 7, 2, 9, 0, 0, 654321, tzinfo=UTC), "accountid": "acc_umbrella"},
         {"user_id": "u_5001", "seats_used": 95, "seat_limit": 100}, "acc_umbrella"),
        ("new", "structured",
         {"id": "ce-0006", "source": "/api-gateway", "type": "com.example.api.limit_exceeded",
          "time": dt.datetime(2024, 7, 2, 9, 30, 0, tzinfo=UTC)},
         {"account_id": "acc_acme", "user_id": "u_1001", "seats_used": 46, "seat_limit": 50,
          "api_calls": 100512, "api_limit": 100000}, "acc_acme"),
        ("new", "binary",
         {"id": "ce-0007", "source": "/billing", "type": "com.example.seat.limit_near",
          "time": dt.datetime(2024, 7, 2, 10, 0, 0, tzinfo=UTC)},
         {"user_id": "u_9999", "seats_used": 1, "seat_limit": 1}, None),
        ("new", "structured",
         {"id": "ce-0008", "source": "/auth", "type": "user_login",
          "time": dt.datetime(2024, 7, 2, 11, 0, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
          "accountid": "acc_globex"},
         {"user_id": "u_2001", "seats_used": 108, "seat_limit": 120}, "acc_globex"),
    ]
    records, outcomes, content_types = [], [], {}
    for api, mode, attrs, data, key in specs:
        km = (lambda _e, k=key: k)
        if api == "old":
            # cloudevents.v1.kafka raises KeyError('datacontenttype') when the
            # attribute is absent, so the old API always gets it set.
            ev = OldCloudEvent({**attrs, "datacontenttype": "application/json"}, dict(data))
            msg = (old_kafka.to_binary(ev, key_mapper=km) if mode == "binary"
                   else old_kafka.to_structured(ev, key_mapper=km))
            api_name = "cloudevents.v1.kafka"
        else:
            ev = NewCloudEvent(dict(attrs), dict(data))
            fn = new_kafka.to_binary if mode == "binary" else new_kafka.to_structured
            msg = fn(ev, JSONFormat(), key_mapper=km)
            api_name = "cloudevents.core.bindings.kafka"
        headers = list(msg.headers.items())
        content_types[f"{api_name} {mode}"] = {k: v.decode() for k, v in headers if k == "content-type"}
        value = msg.value if isinstance(msg.value, bytes) else msg.value.encode("utf-8")
        assert msg.key == key
        records.append((key, headers, value))
        logical = dict(attrs)
        logical["data"] = data
        outcomes.append(expected(source, logical))
    notes["cloudevents_content_types"] = content_types
    notes["cloudevents_sample"] = {
        "old binary headers": [k for k, _ in records[0][1]],
        "new binary headers": [k for k, _ in records[4][1]],
        "new binary ce_time": dict(records[4][1])["ce_time"].decode(),
        "new structured time": json.loads(records[7][2])["time"],
    }
    write_set(source, records, outcomes)


# --------------------------------------------------------------------------
# schema registry (one mock registry for Avro, Protobuf and JSON Schema so the
# ids do not collide in tests/fixtures/ingest/schemas/)


def registry():
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # In confluent-kafka 2.16 the plain constructor SchemaRegistryClient(conf)
    # builds a real HTTP client even for mock:// URLs (it fails with
    # "unsupported protocol 'mock://'"); the factory new_client() returns the
    # in-memory MockSchemaRegistryClient for them.
    conf = {"url": "mock://radar-fixtures"}
    if hasattr(SchemaRegistryClient, "new_client"):
        return SchemaRegistryClient.new_client(conf)
    return SchemaRegistryClient(conf)


def schema_id_of(framed: bytes) -> int:
    assert framed[0] == 0
    return struct.unpack(">I", framed[1:5])[0]


# --------------------------------------------------------------------------
# 4. Avro

AVRO_V1 = {
    "type": "record", "name": "ProductEvent", "namespace": "com.example.events",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "account", "type": ["null", "string"], "default": None},
        {"name": "user", "type": ["null", "string"], "default": None},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "props", "type": {
            "type": "record", "name": "Props",
            "fields": [
                {"name": "seats", "type": ["null", "int"], "default": None},
                {"name": "seat_limit", "type": ["null", "int"], "default": None},
                {"name": "plan", "type": ["null", "string"], "default": None},
            ]}},
        {"name": "context", "type": {"type": "map", "values": "string"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "score", "type": "double"},
        {"name": "channel", "type": {"type": "enum", "name": "Channel",
                                     "symbols": ["WEB", "SERVER", "MOBILE"]}},
        {"name": "trace", "type": {"type": "fixed", "name": "TraceId", "size": 16}},
        {"name": "blob", "type": "bytes"},
        {"name": "device", "type": {
            "type": "record", "name": "Device",
            "fields": [
                {"name": "os", "type": "string"},
                {"name": "screen", "type": {"type": "array", "items": "int"}},
                {"name": "attrs", "type": {"type": "map", "values": ["null", "long", "string"]}},
                {"name": "battery", "type": ["null", "float"], "default": None},
            ]}},
    ],
}


def avro_v2():
    s = json.loads(json.dumps(AVRO_V1))
    props = s["fields"][5]["type"]["fields"]
    props.append({"name": "api_calls", "type": ["null", "long"], "default": None})
    s["fields"].append({"name": "source", "type": "string", "default": "web"})
    return s


AVRO_SOURCE = {
    "name": "avro", "topics": ["product-events-avro"], "format": "avro", "framing": "confluent",
    "envelope": "custom", "key": "account", "schema_dir": "schemas",
    "fields": {
        "event_id": ["id"], "type": ["name"], "account_id": ["account"],
        "timestamp": ["occurred_at"], "user_id": ["user"],
    },
    "convert": {},
    "properties": {
        "seats_used": ["props.seats"], "seat_limit": ["props.seat_limit"],
        "plan": ["props.plan"], "api_calls": ["props.api_calls"],
    },
    "types": {
        "Seat Limit Near": "seat_threshold_90pct",
        "API Limit Exceeded": "api_tier_exceeded",
        "Teammate Invited": "team_invite_sent",
        "Plan Changed": "entitlement_updated",
    },
}


def avro_event(i, name, account, user, when, props, version, source=None):
    trace = bytes(range(i, i + 16))
    ev = {
        "id": f"avro-{i:04d}",
        "name": name,
        "account": account,
        "user": user,
        "occurred_at": when,
        "props": {"seats": None, "seat_limit": None, "plan": None, **props},
        "context": {"ip": "198.51.100.%d" % i, "library": "radar-fixtures", "locale": "en-GB"},
        "tags": ["fixture", f"batch-{version}"] + (["vip"] if i % 3 == 0 else []),
        "score": 0.25 * i,
        "channel": ["WEB", "SERVER", "MOBILE"][i % 3],
        "trace": trace,
        "blob": b"\x00\xffnoise" + bytes([i]),
        "device": {"os": "macOS 14.4", "screen": [2560, 1440],
                   "attrs": {"cores": 8, "gpu": "M2", "unknown": None},
                   "battery": 0.5 if i % 2 else None},
    }
    if version == 2:
        ev["props"].setdefault("api_calls", None)
        if source is not None:
            ev["source"] = source
    return ev


def gen_avro(client, notes):
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    ctx = SerializationContext("product-events-avro", MessageField.VALUE)
    v1_str = json.dumps(AVRO_V1, indent=2)
    v2_str = json.dumps(avro_v2(), indent=2)
    ser = {1: AvroSerializer(client, v1_str), 2: AvroSerializer(client, v2_str)}
    t = lambda *a: dt.datetime(*a, tzinfo=UTC)  # noqa: E731
    events = [
        (1, avro_event(1, "Seat Limit Near", "acc_acme", "u_1001", t(2024, 8, 1, 9, 0, 0, 123000),
                       {"seats": 46, "seat_limit": 50}, 1)),
        (1, avro_event(2, "Teammate Invited", "acc_acme", "u_1002", t(2024, 8, 1, 9, 5, 0),
                       {}, 1)),
        (1, avro_event(3, "Plan Changed", "acc_globex", None, t(2024, 8, 1, 9, 10, 0, 500000),
                       {"plan": "enterprise", "seat_limit": 120}, 1)),
        (1, avro_event(4, "Page Viewed", "acc_globex", "u_2001", t(2024, 8, 1, 9, 15, 0),
                       {}, 1)),
        (1, avro_event(5, "Seat Limit Near", None, "u_3001", t(2024, 8, 1, 9, 20, 0),
                       {"seats": 9, "seat_limit": 10}, 1)),
        (2, avro_event(6, "API Limit Exceeded", "acc_initech", "u_4001", t(2024, 8, 2, 0, 0, 0, 1000),
                       {"api_calls": 2000001}, 2, source="api-gateway")),
        (2, avro_event(7, "Seat Limit Near", "acc_initech", "u_4002", t(2024, 8, 2, 1, 0, 0),
                       {"seats": 10, "seat_limit": 10, "api_calls": None}, 2)),  # source default
        (2, avro_event(8, "user_login", "acc_umbrella", "u_5001", t(2024, 8, 2, 2, 0, 0),
                       {}, 2, source="sso")),
        (2, avro_event(9, "Plan Changed", "acc_umbrella", "u_5001", t(2024, 8, 2, 3, 0, 0, 999000),
                       {"plan": "scale", "seats": 96}, 2, source="billing")),
        (1, avro_event(10, "Teammate Invited", "acc_initech", "u_4001", t(2024, 8, 2, 4, 0, 0),
                       {}, 1)),
    ]
    records, outcomes, ids = [], [], {}
    for version, ev in events:
        value = ser[version](ev, ctx)
        sid = schema_id_of(value)
        ids.setdefault(version, sid)
        assert ids[version] == sid
        records.append((ev["account"], [], value))
        logical = json.loads(json.dumps({k: v for k, v in ev.items()
                                         if k not in ("trace", "blob", "occurred_at")}))
        logical["occurred_at"] = ev["occurred_at"]  # timestamp-millis: no converter
        if version == 2:
            logical.setdefault("source", "web")
        outcomes.append(expected(AVRO_SOURCE, logical))
    # A record whose schema id does not exist, and one that is not Confluent-framed.
    good = records[0][2]
    records.append(("acc_acme", [], b"\x00" + struct.pack(">I", 9999) + good[5:]))
    outcomes.append({"rejected": "unknown_schema"})
    records.append(("acc_acme", [], b"\x01" + good[1:]))
    outcomes.append({"rejected": "bad_format"})
    assert 9999 not in ids.values()
    for version, sid in ids.items():
        stored = client.get_schema(sid)
        write_text(f"schemas/{sid}.avsc", stored.schema_str)
        notes.setdefault("schema_ids", {})[f"avro v{version}"] = sid
        notes.setdefault("avro_stored_equals_input", {})[sid] = (
            stored.schema_str == (v1_str if version == 1 else v2_str))
    write_set(AVRO_SOURCE, records, outcomes)


# --------------------------------------------------------------------------
# 5. Protobuf

PROTO_FILE_NAME = "radar/fixtures/product_event.proto"

# The .proto source text of the descriptor built in proto_file_descriptor().
PROTO_TEXT = """\
syntax = "proto3";

package radar.fixtures;

// First message of the file: Confluent message index [0], written as 0x00.
message Heartbeat {
  string id = 1;
  string name = 2;
  string account = 3;
  string user = 4;
  int64 occurred_at_ms = 5;
}

// Second message of the file: Confluent message index [1], written as 0x02 0x02.
message ProductEvent {
  message Props {
    optional int32 seats = 1;
    optional int32 seat_limit = 2;
    optional string plan = 3;
  }

  enum Channel {
    CHANNEL_UNSPECIFIED = 0;
    CHANNEL_WEB = 1;
    CHANNEL_SERVER = 2;
    CHANNEL_MOBILE = 3;
  }

  string id = 1;
  string name = 2;
  string account = 3;
  string user = 4;
  int64 occurred_at_ms = 5;
  Props props = 6;
  map<string, string> context = 7;
  repeated string tags = 8;
  double score = 9;
  Channel channel = 10;
  bytes blob = 11;
}
"""


def proto_file_descriptor():
    """FileDescriptorProto equal to what protoc makes of PROTO_TEXT (no protoc needed)."""
    from google.protobuf import descriptor_pb2 as d

    F = d.FieldDescriptorProto
    fdp = d.FileDescriptorProto(name=PROTO_FILE_NAME, package="radar.fixtures", syntax="proto3")

    def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None, oneof=None,
              proto3_optional=False, json_name=None):
        f = msg.field.add(name=name, number=number, type=ftype, label=label,
                          json_name=json_name or _json_name(name))
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof
        if proto3_optional:
            f.proto3_optional = True
        return f

    hb = fdp.message_type.add(name="Heartbeat")
    for i, n in enumerate(["id", "name", "account", "user"], 1):
        field(hb, n, i, F.TYPE_STRING)
    field(hb, "occurred_at_ms", 5, F.TYPE_INT64)

    ev = fdp.message_type.add(name="ProductEvent")
    props = ev.nested_type.add(name="Props")
    for i, (n, t) in enumerate([("seats", F.TYPE_INT32), ("seat_limit", F.TYPE_INT32),
                                ("plan", F.TYPE_STRING)]):
        props.oneof_decl.add(name="_" + n)
        field(props, n, i + 1, t, oneof=i, proto3_optional=True)
    entry = ev.nested_type.add(name="ContextEntry")
    entry.options.map_entry = True
    field(entry, "key", 1, F.TYPE_STRING)
    field(entry, "value", 2, F.TYPE_STRING)
    chan = ev.enum_type.add(name="Channel")
    for i, n in enumerate(["CHANNEL_UNSPECIFIED", "CHANNEL_WEB", "CHANNEL_SERVER", "CHANNEL_MOBILE"]):
        chan.value.add(name=n, number=i)
    for i, n in enumerate(["id", "name", "account", "user"], 1):
        field(ev, n, i, F.TYPE_STRING)
    field(ev, "occurred_at_ms", 5, F.TYPE_INT64)
    field(ev, "props", 6, F.TYPE_MESSAGE, type_name=".radar.fixtures.ProductEvent.Props")
    field(ev, "context", 7, F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
          type_name=".radar.fixtures.ProductEvent.ContextEntry")
    field(ev, "tags", 8, F.TYPE_STRING, label=F.LABEL_REPEATED)
    field(ev, "score", 9, F.TYPE_DOUBLE)
    field(ev, "channel", 10, F.TYPE_ENUM, type_name=".radar.fixtures.ProductEvent.Channel")
    field(ev, "blob", 11, F.TYPE_BYTES)
    return fdp


def _json_name(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


PROTO_SOURCE = {
    "name": "protobuf", "topics": ["product-events-proto"], "format": "protobuf",
    "framing": "confluent", "envelope": "custom", "key": "account", "schema_dir": "schemas",
    "fields": {
        "event_id": ["id"], "type": ["name"], "account_id": ["account"],
        "timestamp": ["occurred_at_ms"], "user_id": ["user"],
    },
    "convert": {"timestamp": "unix_ms"},
    "properties": {
        "seats_used": ["props.seats"], "seat_limit": ["props.seat_limit"], "plan": ["props.plan"],
    },
    "types": {
        "Seat Limit Near": "seat_threshold_90pct",
        "Teammate Invited": "team_invite_sent",
        "Plan Changed": "entitlement_updated",
    },
}


def gen_protobuf(client, notes):
    from google.protobuf import descriptor_pool, message_factory
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto_file_descriptor())
    Heartbeat = message_factory.GetMessageClass(pool.FindMessageTypeByName("radar.fixtures.Heartbeat"))
    ProductEvent = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("radar.fixtures.ProductEvent"))
    ctx = SerializationContext("product-events-proto", MessageField.VALUE)
    ser_ev = ProtobufSerializer(ProductEvent, client)
    ser_hb = ProtobufSerializer(Heartbeat, client)

    ms = lambda *a: (dt.datetime(*a, tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)  # noqa: E731
    # (message, fields) ; props: only the optional fields that are set
    specs = [
        ("ev", dict(id="pb-0001", name="Seat Limit Near", account="acc_acme", user="u_1001",
                    occurred_at_ms=ms(2024, 9, 1, 8, 0, 0, 123000), props={"seats": 46, "seat_limit": 50})),
        ("ev", dict(id="pb-0002", name="Plan Changed", account="acc_globex", user="u_2001",
                    occurred_at_ms=ms(2024, 9, 1, 8, 30, 0), props={"plan": "enterprise", "seat_limit": 120})),
        ("ev", dict(id="pb-0003", name="Seat Limit Near", account="acc_initech", user="u_4001",
                    occurred_at_ms=ms(2024, 9, 1, 9, 0, 0), props={"seats": 0, "seat_limit": 10})),
        ("ev", dict(id="pb-0004", name="Page Viewed", account="acc_acme", user="u_1002",
                    occurred_at_ms=ms(2024, 9, 1, 9, 30, 0), props={})),
        ("ev", dict(id="pb-0005", name="Seat Limit Near", account="", user="u_3001",
                    occurred_at_ms=ms(2024, 9, 1, 10, 0, 0), props={"seats": 9, "seat_limit": 10})),
        ("ev", dict(id="pb-0006", name="Teammate Invited", account="acc_umbrella", user="u_5001",
                    occurred_at_ms=ms(2024, 9, 1, 10, 30, 0, 999000), props=None)),
        ("hb", dict(id="pb-0007", name="user_login", account="acc_acme", user="u_1001",
                    occurred_at_ms=ms(2024, 9, 1, 11, 0, 0))),
        ("hb", dict(id="pb-0008", name="Teammate Invited", account="acc_globex", user="u_2002",
                    occurred_at_ms=ms(2024, 9, 1, 11, 30, 0, 1000))),
    ]
    records, outcomes, prefixes, ids = [], [], {}, set()
    for i, (kind, f) in enumerate(specs, 1):
        if kind == "ev":
            m = ProductEvent(id=f["id"], name=f["name"], account=f["account"], user=f["user"],
                             occurred_at_ms=f["occurred_at_ms"])
            if f["props"] is not None:
                m.props.SetInParent()
                for k, v in f["props"].items():
                    setattr(m.props, k, v)
            m.context.update({"ip": "192.0.2.%d" % i, "library": "radar-fixtures"})
            m.tags.extend(["fixture", "proto"])
            m.score = 0.5 * i
            m.channel = i % 4
            m.blob = b"\x00\x01noise" + bytes([i])
            value = ser_ev(m, ctx)
            prefixes["ProductEvent"] = value[5:7].hex()
        else:
            m = Heartbeat(**f)
            value = ser_hb(m, ctx)
            prefixes["Heartbeat"] = value[5:6].hex()
        ids.add(schema_id_of(value))
        records.append((f["account"] or None, [], value))
        # Logical view: proto3 implicit-presence scalars always read (defaults
        # included); `props` only if set, and inside it only the optional
        # fields that were set.
        logical = {k: v for k, v in f.items() if k != "props"}
        if kind == "ev" and f["props"] is not None:
            logical["props"] = dict(f["props"])
        outcomes.append(expected(PROTO_SOURCE, logical))
    assert len(ids) == 1, ids
    sid = ids.pop()
    # unknown schema id and bad magic byte, as for Avro
    good = records[0][2]
    records.append(("acc_acme", [], b"\x00" + struct.pack(">I", 9999) + good[5:]))
    outcomes.append({"rejected": "unknown_schema"})
    records.append(("acc_acme", [], b"\x7f" + good[1:]))
    outcomes.append({"rejected": "bad_format"})
    stored = client.get_schema(sid)
    write_text(f"schemas/{sid}.proto", PROTO_TEXT)
    write_text(f"schemas/{sid}.registry.txt", stored.schema_str)
    notes.setdefault("schema_ids", {})["protobuf"] = sid
    notes["protobuf_stored_type"] = stored.schema_type
    notes["protobuf_stored_prefix"] = stored.schema_str[:60]
    notes["protobuf_stored_is_base64_fdp"] = _is_b64_fdp(stored.schema_str)
    notes["protobuf_message_index_bytes"] = prefixes
    write_set(PROTO_SOURCE, records, outcomes)


def _is_b64_fdp(s: str) -> bool:
    from google.protobuf import descriptor_pb2

    try:
        fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(s, validate=True))
    except Exception:
        return False
    return fdp == proto_file_descriptor()


# --------------------------------------------------------------------------
# 6. JSON Schema

JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "RadarEvent",
    "type": "object",
    "properties": {
        "event_id": {"type": "string"},
        "type": {"type": "string"},
        "account_id": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "user_id": {"type": ["string", "null"]},
        "properties": {
            "type": "object",
            "properties": {
                "seats_used": {"type": "integer", "minimum": 0},
                "seat_limit": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": True,
        },
    },
    "required": ["event_id", "type", "account_id", "timestamp"],
    "additionalProperties": False,
}

JSON_SOURCE = {
    "name": "jsonschema", "topics": ["radar-events-json"], "format": "json",
    "framing": "confluent", "envelope": "radar", "key": "account", "schema_dir": "schemas",
    "fields": {}, "convert": {"timestamp": "rfc3339"}, "properties": {}, "types": {},
}


def gen_jsonschema(client, notes):
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    ctx = SerializationContext("radar-events-json", MessageField.VALUE)
    schema_str = json.dumps(JSON_SCHEMA, indent=2)
    ser = JSONSerializer(schema_str, client)
    values = [
        {"event_id": "js-0001", "type": "seat_threshold_90pct", "account_id": "acc_acme",
         "timestamp": "2024-10-01T12:00:00Z", "user_id": "u_1001",
         "properties": {"seats_used": 46, "seat_limit": 50}},
        {"event_id": "js-0002", "type": "seat_threshold_90pct", "account_id": "acc_globex",
         "timestamp": "2024-10-01T14:30:15.123456789+02:00", "user_id": None,
         "properties": {"seats_used": 110}},
        {"event_id": "js-0003", "type": "team_invite_sent", "account_id": "acc_initech",
         "timestamp": "2024-10-01T12:00:00.5-05:00", "user_id": "u_4001", "properties": {}},
        {"event_id": "js-0004", "type": "Some Other Event", "account_id": "acc_acme",
         "timestamp": "2024-10-01T12:00:01Z", "user_id": "u_1001", "properties": {}},
        {"event_id": "js-0005", "type": "seat_threshold_90pct", "account_id": "",
         "timestamp": "2024-10-01T12:00:02Z", "user_id": "u_3001",
         "properties": {"seats_used": 9, "seat_limit": 10}},
    ]
    records, outcomes, ids = [], [], set()
    for v in values:
        value = ser(v, ctx)
        ids.add(schema_id_of(value))
        records.append((v["account_id"] or None, [], value))
        outcomes.append(expected(JSON_SOURCE, v))
    assert len(ids) == 1
    sid = ids.pop()
    stored = client.get_schema(sid)
    write_text(f"schemas/{sid}.json", stored.schema_str)
    notes.setdefault("schema_ids", {})["jsonschema"] = sid
    notes["jsonschema_value_sample"] = records[0][2][5:].decode()
    write_set(JSON_SOURCE, records, outcomes)


# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# read-back check: the written files decode with the libraries' own readers


def verify(client):
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pool, message_factory
    from cloudevents.core.bindings import kafka as new_kafka
    from cloudevents.core.formats.json import JSONFormat

    def read(name):
        with open(os.path.join(OUT, f"{name}.records.jsonl"), encoding="utf-8") as f:
            recs = [json.loads(line) for line in f]
        with open(os.path.join(OUT, f"{name}.expected.jsonl"), encoding="utf-8") as f:
            exp = [json.loads(line) for line in f]
        assert len(recs) == len(exp), name
        for r in recs:
            assert set(r) == {"key", "headers", "value"}
        return [(base64.b64decode(r["value"]), r) for r in recs], exp

    for name in ("segment", "rudderstack"):
        recs, _ = read(name)
        with open(os.path.join(OUT, "segment.jsonl"), encoding="utf-8") as f:
            raw = f.read().splitlines()
        for v, r in recs:
            m = json.loads(v)
            assert base64.b64decode(r["key"]).decode() == (m["userId"] or m["anonymousId"])
        if name == "segment":
            assert [v.decode() for v, _ in recs] == raw

    recs, _ = read("cloudevents")
    for v, r in recs:
        msg = new_kafka.KafkaMessage(
            headers={h: base64.b64decode(b) for h, b in r["headers"]},
            key=None, value=v)
        ev = new_kafka.from_kafka(msg, JSONFormat())
        assert ev.get_id().startswith("ce-")

    ctxs = {"avro": "product-events-avro", "protobuf": "product-events-proto",
            "jsonschema": "radar-events-json"}
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto_file_descriptor())
    ev_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("radar.fixtures.ProductEvent"))
    hb_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("radar.fixtures.Heartbeat"))
    des = {
        "avro": lambda v, c: AvroDeserializer(client)(v, c),
        "jsonschema": lambda v, c: JSONDeserializer(None, schema_registry_client=client)(v, c),
        "protobuf": lambda v, c: ProtobufDeserializer(
            ev_cls if v[5:6] != b"\x00" else hb_cls, {}, schema_registry_client=client)(v, c),
    }
    for name, topic in ctxs.items():
        recs, exp = read(name)
        ctx = SerializationContext(topic, MessageField.VALUE)
        for (v, _), e in zip(recs, exp):
            want_error = e.get("rejected") in ("unknown_schema", "bad_format")
            try:
                out = des[name](v, ctx)
                ok = out is not None
            except Exception:
                ok = False
            assert ok != want_error, (name, e)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py OUT_DIR")
    OUT = sys.argv[1]
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "schemas"))
    logging.basicConfig(level=logging.WARNING)

    notes = {}
    capture = Capture()
    try:
        gen_segment(capture, notes)
        gen_rudderstack(capture, notes)
    finally:
        capture.close()
    gen_cloudevents(notes)
    client = registry()
    gen_avro(client, notes)
    gen_protobuf(client, notes)
    gen_jsonschema(client, notes)
    verify(client)

    notes["versions"] = {p: metadata.version(p) for p in (
        "segment-analytics-python", "rudder-sdk-python", "cloudevents", "confluent-kafka",
        "fastavro", "protobuf", "jsonschema")}
    # Observations for the README; printed, not written, so fixtures stay clean.
    print(json.dumps(notes, indent=2, default=str))


if __name__ == "__main__":
    main()
