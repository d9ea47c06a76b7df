#!/usr/bin/env python3
"""Unit tests of metric_names.py: `python3 -m unittest discover -s deploy/check`.

Standard library only; the YAML extractor is also compared with PyYAML when it is
installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import textwrap
import unittest
from pathlib import Path

import metric_names as mn

HERE = Path(__file__).resolve().parent


def names(expr: str) -> set[str]:
    return mn.promql_names(expr).metrics


class PromQL(unittest.TestCase):
    def test_selectors_ranges_and_matchers(self):
        self.assertEqual(names("rate(foo_total[5m])"), {"foo_total"})
        self.assertEqual(names('x{a="b", c=~"d.*", e!="f", g!~"h"}'), {"x"})
        self.assertEqual(names("max_over_time(x[10m:1m])"), {"x"})
        self.assertEqual(names("deriv(x[15m]) > 0"), {"x"})

    def test_aggregations_either_way_round_and_label_lists(self):
        self.assertEqual(names("sum by (le, job) (rate(h_bucket[5m]))"), {"h_bucket"})
        self.assertEqual(names("sum(rate(h_bucket[5m])) by (le)"), {"h_bucket"})
        self.assertEqual(names("max without (instance, pod) (g)"), {"g"})
        self.assertEqual(names("topk(5, x)"), {"x"})
        self.assertEqual(names("quantile(0.9, x)"), {"x"})
        self.assertEqual(names('count_values("version", build_info)'), {"build_info"})

    def test_vector_matching_keywords(self):
        self.assertEqual(names("a / on (job, instance) group_left (pod) b"), {"a", "b"})
        self.assertEqual(names("a * ignoring(x) group_right b"), {"a", "b"})
        self.assertEqual(names("a and b or c unless d"), {"a", "b", "c", "d"})
        self.assertEqual(names("(a > 1) and (b < 2)"), {"a", "b"})
        self.assertEqual(names("a AND b"), {"a", "b"})
        self.assertEqual(names("x > bool 5"), {"x"})
        self.assertEqual(names("x atan2 y"), {"x", "y"})

    def test_offsets_at_and_durations(self):
        self.assertEqual(names("x offset 15m"), {"x"})
        self.assertEqual(names("x offset 1h30m"), {"x"})
        self.assertEqual(names("x @ start()"), {"x"})
        self.assertEqual(names("x @ 1609746000"), {"x"})
        self.assertEqual(names("x unless x offset 15m"), {"x"})

    def test_numbers_and_literals(self):
        self.assertEqual(names("60 * rate(x[1m])"), {"x"})
        self.assertEqual(names("1e3 * x + 0x1F - .5"), {"x"})
        self.assertEqual(names("x > Inf or y < -inf or z != NaN"), {"x", "y", "z"})
        self.assertEqual(names("-x ^ 2 % 3"), {"x"})
        self.assertEqual(names("vector(1) + time()"), set())

    def test_strings_hide_brackets_and_words(self):
        expr = 'label_replace(x, "dst", "$1 (sum) {", "src", "(.*)[")'
        self.assertEqual(names(expr), {"x"})
        self.assertEqual(names("label_join(x, 'd', ',', 'a', 'b')"), {"x"})
        self.assertEqual(names('x{a="quote \\" and } brace"}'), {"x"})
        self.assertEqual(names("x{a=`raw } string`}"), {"x"})

    def test_name_matchers(self):
        self.assertEqual(names('{__name__="y", job="z"}'), {"y"})
        parsed = mn.promql_names('{__name__=~"y.*"}')
        self.assertEqual(parsed.metrics, set())
        self.assertEqual(parsed.regex_names, ['__name__=~"y.*"'])

    def test_recording_rule_names_and_comments(self):
        self.assertEqual(names("job:rate5m:sum > 0"), {"job:rate5m:sum"})
        self.assertEqual(names("# not_a_metric here\ny # nor this\n"), {"y"})
        self.assertEqual(names("absent(up{job=\"radar\"})"), {"up"})

    def test_grafana_variables(self):
        self.assertEqual(
            names('sum by (type) (rate(t_total{job=~"$job", instance=~"${instance:regex}"}[$__rate_interval]))'),
            {"t_total"},
        )
        self.assertEqual(names("rate(x[${__interval}]) * $factor + [[legacy]]"), {"x"})
        self.assertEqual(names("increase(x[$__range])"), {"x"})

    def test_grafana_variable_queries(self):
        self.assertEqual(mn.grafana_variable_names('label_values(radar_x{job=~"$job"}, instance)').metrics, {"radar_x"})
        self.assertEqual(mn.grafana_variable_names("label_values(radar_x, job)").metrics, {"radar_x"})
        self.assertEqual(mn.grafana_variable_names("label_values(job)").metrics, set())
        self.assertEqual(mn.grafana_variable_names("query_result(topk(5, y))").metrics, {"y"})
        self.assertEqual(mn.grafana_variable_names("metrics(radar_.*)").metrics, set())

    def test_unknown_functions_and_broken_expressions_are_errors(self):
        with self.assertRaisesRegex(mn.PromQLError, "unknown function rates"):
            names("rates(x[5m])")
        with self.assertRaises(mn.PromQLError):
            names('x{a="unterminated}')
        with self.assertRaises(mn.PromQLError):
            names("rate(x[5m]")


class RuleFiles(unittest.TestCase):
    RULES = textwrap.dedent(
        """\
        groups:
          - name: g
            rules:
              - alert: Block
                expr: |
                  sum by (job) (rate(a_total[5m]))

                  /
                  sum by (job) (rate(b_total[5m])) > 0.5
                for: 5m
              - alert: Folded
                expr: >-
                  c_total
                  > 1
              - alert: Plain
                expr: d == 0 # a comment
                labels:
                  severity: warning
              - record: "job:e:rate5m"
                expr: 'rate(e_total{x=''y''}[5m])'
              - alert: Double
                expr: "f{a=\\"b\\"} > 0"
              - alert: Continued
                expr: g >
                  1
                annotations:
                  summary: "expr: not_a_query"
              - expr: |-
                  h
        """
    )

    def extracted(self) -> list[tuple[str, str]]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rules.yaml"
            path.write_text(self.RULES)
            return [(where, text) for where, _, text in mn.rule_queries(path)]

    def test_every_form_of_scalar(self):
        got = self.extracted()
        self.assertEqual([w for w, _ in got], [
            "alert Block", "alert Folded", "alert Plain", "record job:e:rate5m",
            "alert Double", "alert Continued", "alert Continued",
        ])
        metrics = [names(text) for _, text in got]
        self.assertEqual(metrics, [{"a_total", "b_total"}, {"c_total"}, {"d"}, {"e_total"}, {"f"}, {"g"}, {"h"}])

    def test_agrees_with_pyyaml(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("PyYAML not installed")
        for path in [HERE.parent / "prometheus" / "alerts.yaml"]:
            expected = [
                rule["expr"]
                for group in yaml.safe_load(path.read_text())["groups"]
                for rule in group["rules"]
            ]
            got = [text for _, _, text in mn.rule_queries(path)]
            self.assertEqual([names(e) for e in expected], [names(g) for g in got])
            self.assertEqual(len(expected), len(got))
        parsed = yaml.safe_load(self.RULES)["groups"][0]["rules"]
        self.assertEqual(
            [names(r["expr"]) for r in parsed],
            [names(text) for _, text in self.extracted()],
        )


class Dashboards(unittest.TestCase):
    def test_targets_nested_rows_and_variables(self):
        dashboard = {
            "panels": [
                {"title": "a", "targets": [{"refId": "A", "expr": "rate(a_total[5m])"}]},
                {"type": "row", "title": "r", "panels": [
                    {"title": "b", "targets": [{"refId": "A", "expr": "b"}, {"refId": "B"}]},
                ]},
            ],
            "templating": {"list": [
                {"type": "datasource", "name": "datasource", "query": "prometheus"},
                {"type": "query", "name": "job", "query": "label_values(c_total, job)"},
                {"type": "query", "name": "i", "query": {"query": "label_values(d, instance)", "refId": "X"}},
                {"type": "custom", "name": "k", "query": "1,2,3"},
            ]},
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "d.json"
            path.write_text(json.dumps(dashboard))
            queries = mn.dashboard_queries(path)
        self.assertEqual(
            [(w, t) for w, _, t in queries],
            [("panel 'a' A", "rate(a_total[5m])"), ("panel 'b' A", "b"),
             ("variable $job", "label_values(c_total, job)"), ("variable $i", "label_values(d, instance)")],
        )


class ScrapeCheck(unittest.TestCase):
    SCRAPE = textwrap.dedent(
        """\
        # HELP h_seconds A histogram.
        # TYPE h_seconds histogram
        h_seconds_bucket{le="0.1"} 1
        h_seconds_bucket{le="+Inf"} 2
        h_seconds_sum 0.3
        h_seconds_count 2
        # TYPE c_total counter
        c_total{reason="x"} 5
        # TYPE empty_total counter
        g 1.5
        """
    )

    def test_names_must_have_samples(self):
        scrape = mn.Scrape.parse(self.SCRAPE)
        for ok in ["h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "c_total", "g"]:
            self.assertIsNone(scrape.problem(ok), ok)
        self.assertIn("is a histogram", scrape.problem("h_seconds"))
        self.assertIn("no samples", scrape.problem("empty_total"))
        self.assertIn("not in the scrape", scrape.problem("c"))
        self.assertIn("not in the scrape", scrape.problem("missing_bucket"))

    def test_the_command_fails_on_a_missing_name_and_passes_otherwise(self):
        quiet = io.StringIO()
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            scrape = Path(tmp) / "scrape.txt"
            scrape.write_text(self.SCRAPE)
            rules = Path(tmp) / "rules.yaml"
            rules.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(c_total[5m]) > 0 and up == 1\n")
            self.assertEqual(mn.main(["--scrape", str(scrape), "--rules", str(rules)]), 0)
            rules.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(c_totl[5m]) > 0\n")
            self.assertEqual(mn.main(["--scrape", str(scrape), "--rules", str(rules)]), 1)
            rules.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: histogram_quantile(0.9, h_seconds)\n")
            self.assertEqual(mn.main(["--scrape", str(scrape), "--rules", str(rules)]), 1)


if __name__ == "__main__":
    unittest.main()
