#!/usr/bin/env python3
"""Checks that every metric a Grafana dashboard or a Prometheus rule file queries exists
in a scrape of radar's /metrics: a renamed or misspelled metric leaves a panel empty or
an alert silent without any other error.

Usage:
  metric_names.py --scrape FILE [--dashboard JSON]... [--rules YAML]...
  metric_names.py --list [--dashboard JSON]... [--rules YAML]...   (print what is queried)

A name counts as present when the scrape has samples under exactly that name, so a
histogram is queried through its _bucket, _sum or _count series (a histogram's bare
name has no samples, and Prometheus has no series by it: the checker says so). Exit 1
when a name is missing or an expression cannot be read (e.g. an unknown function).

How names are found in PromQL: string literals, comments, range and subquery brackets and
label-matcher braces are skipped (a `__name__="…"` matcher counts as a name); identifiers
followed by "(" are functions or aggregations and must be known ones; the label lists of
by/without/on/ignoring/group_left/group_right are skipped; keywords and numbers are
ignored; every other identifier is a metric name. Grafana's variables ($x, ${x},
[[x]], $__rate_interval) are neutralised first, and its variable queries
(label_values(metric, label), query_result(expr)) are read for their metric.

Standard library only (rule files are read by a small extractor of `expr:` values, which
handles plain, quoted and block scalars).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# PromQL functions (Prometheus 2.x/3.x), aggregation operators, and the words that
# precede a parenthesised label list or modify an operator.
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "double_exponential_smoothing", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
    "info", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
    "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan",
    "tanh", "time", "timestamp", "vector", "year",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
LABEL_LIST_MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
# `@ start()` and `@ end()` are the only calls to these.
FUNCTIONS |= {"start", "end"}

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
)
GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\[\[[^\]]*\]\]|\$[A-Za-z_][A-Za-z0-9_]*")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Series Prometheus makes itself for every target or rule: never in a /metrics scrape.
PROMETHEUS_SERIES = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE",
}


class PromQLError(ValueError):
    pass


@dataclass
class Names:
    """What one expression queries."""

    metrics: set[str] = field(default_factory=set)
    # __name__ matched by a regex: cannot be checked name by name.
    regex_names: list[str] = field(default_factory=list)


def neutralise_grafana(expr: str) -> str:
    """Grafana variables out: `$__rate_interval` in a range becomes a duration, other
    variables (in matchers, numbers) a harmless 0. Strings are untouched otherwise."""
    expr = re.sub(r"\$__(rate_)?interval(_ms)?|\$\{__(rate_)?interval(_ms)?\}|\$__range(_s|_ms)?", "5m", expr)
    return GRAFANA_VARIABLE.sub("0", expr)


def _skip_string(expr: str, i: int) -> int:
    """Index just past the string literal starting at expr[i]."""
    quote = expr[i]
    j = i + 1
    while j < len(expr):
        c = expr[j]
        if c == "\\" and quote != "`":
            j += 2
            continue
        if c == quote:
            return j + 1
        j += 1
    raise PromQLError(f"unterminated string at {i}: {expr[i:i + 30]!r}")


def _string_value(literal: str) -> str:
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    return re.sub(r"\\(.)", r"\1", body)


def _matching(expr: str, i: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at expr[i], skipping strings inside."""
    depth = 0
    j = i
    while j < len(expr):
        c = expr[j]
        if c in "\"'`":
            j = _skip_string(expr, j)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise PromQLError(f"unbalanced {open_!r} at {i}: {expr[i:i + 30]!r}")


def _next_significant(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _label_matchers(body: str, names: Names) -> None:
    """Reads a `{…}` matcher list for `__name__` matchers."""
    for m in re.finditer(
        r"""([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)""",
        body,
    ):
        label, op, literal = m.groups()
        if label == "__name__":
            if op == "=":
                names.metrics.add(_string_value(literal))
            else:
                names.regex_names.append(f"__name__{op}{literal}")


def promql_names(expr: str) -> Names:
    """The metric names a PromQL expression queries."""
    names = Names()
    expr = neutralise_grafana(expr)
    i = 0
    n = len(expr)
    depth = 0  # of parentheses, to refuse unbalanced ones
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":  # a comment, to the end of the line
            end = expr.find("\n", i)
            i = n if end < 0 else end + 1
        elif c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "{":
            end = _matching(expr, i, "{", "}")
            _label_matchers(expr[i + 1 : end], names)
            i = end + 1
        elif c == "[":  # a range or subquery: durations only
            i = _matching(expr, i, "[", "]") + 1
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = DURATION.match(expr, i) or NUMBER.match(expr, i)
            if not m:
                raise PromQLError(f"unreadable number at {i}: {expr[i:i + 20]!r}")
            i = m.end()
        elif IDENT.match(expr, i):
            m = IDENT.match(expr, i)
            word = m.group(0)
            i = m.end()
            after = _next_significant(expr, i)
            lower = word.lower()
            if lower in LABEL_LIST_MODIFIERS:
                if after < n and expr[after] == "(":
                    i = _matching(expr, after, "(", ")") + 1
                # group_left without a list is fine as it is.
            elif lower in KEYWORDS or lower in AGGREGATIONS:
                # Operators (`and (`…), modifiers, and aggregations whichever way they are
                # written (`sum(x) by (l)`, `sum by (l) (x)`): never metric names, as
                # PromQL reserves these words.
                pass
            elif after < n and expr[after] == "(":
                if word not in FUNCTIONS:
                    raise PromQLError(f"unknown function {word}()")
            else:
                names.metrics.add(word)
        elif c in "()":
            depth += 1 if c == "(" else -1
            if depth < 0:
                raise PromQLError(f"unbalanced ')' at {i}")
            i += 1
        else:
            i += 1  # operators, commas, @
    if depth:
        raise PromQLError("unbalanced '('")
    return names


def grafana_variable_names(query: str) -> Names:
    """The metric a Grafana Prometheus variable query reads."""
    query = query.strip()
    m = re.fullmatch(r"label_values\((.*)\)", query, re.DOTALL)
    if m:
        inner = m.group(1)
        # label_values(label) reads no metric; label_values(selector, label) reads one.
        depth, split = 0, None
        j = 0
        while j < len(inner):
            ch = inner[j]
            if ch in "\"'`":
                j = _skip_string(inner, j)
                continue
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                split = j
            j += 1
        return promql_names(inner[:split]) if split is not None else Names()
    m = re.fullmatch(r"query_result\((.*)\)", query, re.DOTALL)
    if m:
        return promql_names(m.group(1))
    if re.fullmatch(r"(metrics|label_names)\(.*\)", query, re.DOTALL):
        return Names()
    return promql_names(query)


# ------------------------------------------------------------------ sources of queries


def dashboard_queries(path: Path) -> list[tuple[str, str, str]]:
    """(where, kind, text) for every query in a Grafana dashboard JSON: panel targets
    (nested rows too) and Prometheus variable queries."""
    dashboard = json.loads(path.read_text())
    out: list[tuple[str, str, str]] = []

    def panels(items: list) -> None:
        for panel in items:
            for target in panel.get("targets", []) or []:
                if target.get("expr"):
                    out.append((f"panel {panel.get('title')!r} {target.get('refId', '')}", "promql", target["expr"]))
            panels(panel.get("panels", []) or [])

    panels(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if query:
            out.append((f"variable ${variable.get('name')}", "grafana", query))
    return out


def _unquote(text: str, lines: list[str], k: int) -> tuple[str, int]:
    """A quoted YAML scalar that starts `text` (may continue on following lines); returns
    its value and the index of the last line used."""
    quote = text[0]
    buf = text
    while True:
        body = buf[1:]
        if quote == "'":
            m = re.match(r"((?:[^']|'')*)'", body, re.DOTALL)
            if m:
                return _fold(m.group(1)).replace("''", "'"), k
        else:
            m = re.match(r'((?:[^"\\]|\\.)*)"', body, re.DOTALL)
            if m:
                value = _fold(m.group(1))
                value = re.sub(r"\\n", "\n", value)
                return re.sub(r"\\(.)", r"\1", value), k
        k += 1
        if k >= len(lines):
            raise PromQLError(f"unterminated quoted scalar: {text[:40]!r}")
        buf += "\n" + lines[k].strip()


def _fold(text: str) -> str:
    # Line breaks inside a flow scalar are spaces: all the same to PromQL.
    return re.sub(r"\s*\n\s*", " ", text)


def rule_queries(path: Path) -> list[tuple[str, str, str]]:
    """(where, kind, text) for every `expr:` in a Prometheus rule file."""
    lines = path.read_text().splitlines()
    out: list[tuple[str, str, str]] = []
    rule = "?"
    k = 0
    while k < len(lines):
        line = lines[k]
        named = re.match(r"\s*(?:-\s+)?(alert|record):\s*(.+?)\s*$", line)
        if named:
            rule = f"{named.group(1)} {named.group(2).strip(chr(34) + chr(39))}"
        m = re.match(r"^(\s*(?:-\s+)?)expr:(?:\s+(.*?))?\s*$", line)
        if not m:
            k += 1
            continue
        key_column = len(m.group(1))
        rest = (m.group(2) or "").strip()
        if rest and rest[0] in "|>" and re.fullmatch(r"[|>][0-9+-]*(\s+#.*)?", rest):
            block = []
            k += 1
            while k < len(lines) and (not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > key_column):
                block.append(lines[k])
                k += 1
            out.append((rule, "promql", "\n".join(block)))
            continue
        if rest[:1] in ("'", '"'):
            value, k = _unquote(rest, lines, k)
            out.append((rule, "promql", value))
            k += 1
            continue
        # A plain scalar, maybe continued on more indented lines; " #" starts a comment.
        parts = [re.sub(r"\s+#.*$", "", rest)]
        k += 1
        while k < len(lines) and lines[k].strip() and len(lines[k]) - len(lines[k].lstrip()) > key_column:
            if re.match(r"\s*[A-Za-z_]+:\s", lines[k] + " ") and not lines[k].strip().startswith(("(", ")")):
                break
            parts.append(re.sub(r"\s+#.*$", "", lines[k].strip()))
            k += 1
        out.append((rule, "promql", " ".join(p for p in parts if p)))
    return out


# ------------------------------------------------------------------ the scrape


@dataclass
class Scrape:
    samples: set[str]
    types: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> "Scrape":
        samples: set[str] = set()
        types: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 4:
                    types[parts[2]] = parts[3]
            elif line and not line.startswith("#"):
                m = IDENT.match(line)
                if m:
                    samples.add(m.group(0))
        return cls(samples, types)

    def problem(self, name: str) -> str | None:
        """Why `name` has no series in this scrape, or None when it has."""
        if name in self.samples:
            return None
        kind = self.types.get(name)
        if kind in ("histogram", "summary"):
            return f"{name} is a {kind}: its series are {name}_bucket, {name}_sum and {name}_count"
        if kind:
            return f"{name} is declared ({kind}) but has no samples in the scrape"
        for suffix in HISTOGRAM_SUFFIXES:
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base and self.types.get(base) in ("histogram", "summary"):
                return f"{name}: {base} is a {self.types[base]} without {suffix} samples in the scrape"
        return f"{name} is not in the scrape"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrape", type=Path, help="a /metrics scrape (Prometheus text format)")
    parser.add_argument("--dashboard", type=Path, action="append", default=[])
    parser.add_argument("--rules", type=Path, action="append", default=[])
    parser.add_argument("--list", action="store_true", help="print the names queried and exit")
    args = parser.parse_args(argv)
    if not args.list and not args.scrape:
        parser.error("--scrape FILE is required (or --list)")

    queries: list[tuple[Path, str, str, str]] = []
    for path in args.dashboard:
        queries += [(path, *q) for q in dashboard_queries(path)]
    for path in args.rules:
        queries += [(path, *q) for q in rule_queries(path)]
    if not queries:
        print("metric_names: no queries found in the given files", file=sys.stderr)
        return 1

    errors: list[str] = []
    used: dict[str, list[str]] = {}
    for path, where, kind, text in queries:
        try:
            names = grafana_variable_names(text) if kind == "grafana" else promql_names(text)
        except PromQLError as e:
            errors.append(f"{path.name}: {where}: {e}")
            continue
        for regex in names.regex_names:
            errors.append(f"{path.name}: {where}: {regex} selects metrics by regex; name them so they can be checked")
        if not names.metrics:
            errors.append(f"{path.name}: {where}: queries no metric: {text.strip()[:80]!r}")
        for name in names.metrics:
            used.setdefault(name, []).append(f"{path.name}: {where}")

    if args.list:
        for name in sorted(used):
            print(f"{name}  ({len(used[name])} queries)")
        return 1 if errors else 0

    scrape = Scrape.parse(args.scrape.read_text())
    if not scrape.samples:
        errors.append(f"{args.scrape}: no samples: is this a /metrics scrape?")
    for name in sorted(used):
        if name in PROMETHEUS_SERIES:
            continue  # made by Prometheus from the scrape itself
        problem = scrape.problem(name)
        if problem:
            errors.append(f"{problem}; queried by " + "; ".join(sorted(set(used[name]))[:3]))
    for error in errors:
        print(f"metric_names: {error}", file=sys.stderr)
    if errors:
        return 1
    families = {s for s in scrape.samples if s.startswith("radar_")}
    unused = sorted(
        s for s in families
        if s not in used and not (s.endswith("_bucket") and s[:-7] + "_count" in used)
        and not (s.endswith("_sum") and s[:-4] + "_bucket" in used)
        and not (s.endswith("_count") and s[:-6] + "_bucket" in used)
    )
    print(
        f"metric_names: ok: {len(used)} metric names in {len(queries)} queries all exist in {args.scrape.name}"
        + (f"; exported but queried nowhere: {', '.join(unused)}" if unused else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
