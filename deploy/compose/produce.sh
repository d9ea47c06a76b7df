#!/usr/bin/env bash
# The compose demo's event source: feeds the events `radar generate` wrote into Kafka at a
# steady rate, each record keyed by its account_id (Radar dead-letters a record keyed
# otherwise as key_mismatch: Kafka keeps one key's records in order only on one
# partition). Runs in the apache/kafka image, with its console producer and busybox awk.
#
# Environment: EVENTS_FILE (default /events/events.jsonl), EVENTS_PER_SECOND (200),
# TOPIC (product-events), BOOTSTRAP_SERVERS (kafka:9092).
set -euo pipefail

file="${EVENTS_FILE:-/events/events.jsonl}"
rate="${EVENTS_PER_SECOND:-200}"
topic="${TOPIC:-product-events}"
bootstrap="${BOOTSTRAP_SERVERS:-kafka:9092}"

lines="$(wc -l < "$file")"
echo "produce: $lines events from $file to $topic at $rate/s (about $((lines / rate / 60)) min)"

# awk prints "<account_id><TAB><event>" per line, pausing a second after every `rate`
# lines. A malformed line without an account_id (the generator mixes some in, so the
# dead-letter topic and radar_events_rejected_total have something to show) is keyed
# "none". "account_id":" is 14 characters: the value starts right after it.
awk -v rate="$rate" '
    {
        key = "none"
        if (match($0, /"account_id":"[^"]*"/)) key = substr($0, RSTART + 14, RLENGTH - 15)
        print key "\t" $0
        if (NR % rate == 0) { fflush(); system("sleep 1") }
    }
    END { fflush() }
' "$file" | /opt/kafka/bin/kafka-console-producer.sh \
    --bootstrap-server "$bootstrap" \
    --topic "$topic" \
    --property parse.key=true \
    --property "key.separator=$(printf '\t')"

echo "produce: done; radar keeps running (docker compose logs -f receiver)"
