"""The independent oracle: what Radar must make of each fixture record.

It works on the *logical* record (the Python data that was handed to the SDK or
serializer, with the few fields the SDK adds itself filled in), never on the
bytes the libraries produced.  The rules are those of the fixture brief:

* every Radar field takes the first path of its list whose value exists and is
  not null (presets per envelope, any key written in the TOML replaces the
  preset for that key);
* no (or empty) account id -> {"rejected": "no_account"};
* name -> `types` table value; not in table: passes through if it is itself a
  Radar type, else {"unmapped": name};
* else {"event": {...}} with every mapped property that had a value.
"""

from __future__ import annotations

import datetime as dt
import re

RADAR_FIELDS = ["event_id", "type", "account_id", "timestamp", "user_id", "received_at"]

RADAR_TYPES = [
    "seat_threshold_90pct",
    "team_invite_sent",
    "api_tier_exceeded",
    "entitlement_updated",
    "usage_snapshot",
    "health_updated",
    "nps_submitted",
    "user_login",
    "feature_limit_hit",
    "premium_feature_attempted",
]

# Every property any Radar type reads (the union over the types above).
RADAR_PROPERTIES = [
    "seats_used",
    "seat_limit",
    "api_calls",
    "api_limit",
    "plan",
    "arr",
    "contract_end",
    "customer_since",
    "active_users_1d",
    "active_users_30d",
    "api_calls_period",
    "features_adopted",
    "health_score",
    "churn_risk",
    "score",
]

DATE_PROPERTIES = {"contract_end", "customer_since"}

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def presets(envelope: str) -> dict:
    """Fields / convert / properties Radar fills in for an envelope."""
    if envelope == "segment":
        return {
            "fields": {
                "event_id": ["messageId"],
                "type": ["event", "type"],
                "account_id": ["context.groupId", "groupId"],
                "timestamp": ["timestamp"],
                "user_id": ["userId", "anonymousId"],
                "received_at": ["receivedAt"],
            },
            "convert": {"timestamp": "rfc3339"},
            "properties": {p: [f"properties.{p}", f"traits.{p}"] for p in RADAR_PROPERTIES},
        }
    if envelope == "cloudevents":
        return {
            "fields": {
                "event_id": ["id"],
                "type": ["type"],
                "account_id": ["accountid", "data.account_id", "subject"],
                "timestamp": ["time"],
                "user_id": ["data.user_id"],
            },
            "convert": {"timestamp": "rfc3339"},
            "properties": {p: [f"data.{p}"] for p in RADAR_PROPERTIES},
        }
    if envelope == "radar":
        return {
            "fields": {f: [f] for f in RADAR_FIELDS},
            "convert": {},
            "properties": {p: [f"properties.{p}"] for p in RADAR_PROPERTIES},
        }
    if envelope == "custom":
        return {"fields": {}, "convert": {}, "properties": {}}
    raise ValueError(envelope)


def effective(source: dict) -> dict:
    eff = presets(source["envelope"])
    for table in ("fields", "convert", "properties"):
        eff[table] = {**eff[table], **source.get(table, {})}
    eff["types"] = dict(source.get("types", {}))
    return eff


_MISSING = object()


def lookup(record, path: str):
    cur = record
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def first(record, paths):
    for p in paths:
        v = lookup(record, p)
        if v is not _MISSING and v is not None:
            return v
    return None


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def to_ms(value) -> int:
    """Milliseconds since the epoch, sub-millisecond digits truncated."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in fixture data")
        return (value - EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, str):
        m = _RFC3339.match(value)
        if m:
            y, mo, d, h, mi, s, frac, off = m.groups()
            frac_ms = int((frac or "").ljust(3, "0")[:3])
            if off in ("Z", "z"):
                tz = dt.timezone.utc
            else:
                sign = 1 if off[0] == "+" else -1
                tz = dt.timezone(sign * dt.timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
            base = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=tz)
            return (base - EPOCH) // dt.timedelta(milliseconds=1) + frac_ms
        m = _DATE.match(value)
        if m:
            base = dt.datetime(*map(int, m.groups()), tzinfo=dt.timezone.utc)
            return (base - EPOCH) // dt.timedelta(milliseconds=1)
    raise ValueError(f"not a timestamp: {value!r}")


def convert(value, how: str | None):
    if how is None:
        return value
    if how == "rfc3339":
        # A datetime stands for the RFC 3339 string the SDK renders from it.
        assert isinstance(value, (str, dt.datetime)), value
        return to_ms(value)
    if how == "unix_ms":
        assert isinstance(value, int), value
        return value
    if how == "unix_s":
        assert isinstance(value, int), value
        return value * 1000
    if how == "number_string":
        assert isinstance(value, str), value
        return float(value) if any(c in value for c in ".eE") else int(value)
    raise ValueError(how)


def expected(source: dict, record) -> dict:
    """The expected Radar outcome for one logical record."""
    if record is None:
        raise ValueError("use an explicit rejection for undecodable records")
    eff = effective(source)
    f = eff["fields"]
    conv = eff["convert"]

    def field(name):
        return first(record, f.get(name, []))

    account = field("account_id")
    if account is None or account == "":
        return {"rejected": "no_account"}
    name = field("type")
    if name in eff["types"]:
        rtype = eff["types"][name]
    elif name in RADAR_TYPES:
        rtype = name
    else:
        return {"unmapped": name}
    ts = field("timestamp")
    ts_ms = to_ms(convert(ts, conv.get("timestamp")) if conv.get("timestamp") else ts)
    props = {}
    for p, paths in eff["properties"].items():
        v = first(record, paths)
        if v is None:
            continue
        v = convert(v, conv.get(p))
        if p in DATE_PROPERTIES:
            v = to_ms(v)
        props[p] = v
    user = field("user_id")
    return {
        "event": {
            "event_id": field("event_id"),
            "type": rtype,
            "account_id": account,
            "timestamp_ms": ts_ms,
            "user_id": None if user is None else str(user),
            "properties": props,
        }
    }


def toml_for(source: dict) -> str:
    """Render one [[sources]] entry in the TOML shape Radar parses."""

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _s(k)

    def val(v) -> str:
        if isinstance(v, str):
            return _s(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        raise TypeError(v)

    out = ["[[sources]]"]
    for k in ("name", "topics", "format", "framing", "envelope", "key", "schema_dir"):
        if k in source:
            out.append(f"{k} = {val(source[k])}")
    for table in ("fields", "convert", "properties", "types"):
        out.append("")
        out.append(f"[sources.{table}]")
        for k, v in source.get(table, {}).items():
            out.append(f"{key(k)} = {val(v)}")
    return "\n".join(out) + "\n"


def _s(s: str) -> str:
    import json

    assert s.isascii()
    return json.dumps(s)
