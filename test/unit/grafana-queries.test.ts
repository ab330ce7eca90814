/**
 * The dashboard checker's PromQL reading (test/helpers/promql.ts), so the netns test that
 * compares the dashboard with live /metrics pages can be trusted to catch a wrong name;
 * and the dashboard itself parses and has a metric in every query.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/processes.js';
import { dashboardQueries, exportedNames, metricNamesInQuery } from '../helpers/promql.js';

describe('metric names in PromQL', () => {
  it('finds the selected metrics, not functions, labels, grouping lists or numbers', () => {
    assert.deepEqual(
      metricNamesInQuery('histogram_quantile(0.99, sum by (le, op) (rate(rhumb_svp_request_duration_seconds_bucket{process="controller", op!="LOG_REQ"}[$__rate_interval])))'),
      ['rhumb_svp_request_duration_seconds_bucket'],
    );
    assert.deepEqual(
      metricNamesInQuery('sum by (instance, peer) (rate(rhumb_probe_lost_total{instance=~"$node"}[5m])) / sum by (instance, peer) (rate(rhumb_probe_sent_total[5m])) * 1e9'),
      ['rhumb_probe_lost_total', 'rhumb_probe_sent_total'],
    );
    assert.deepEqual(metricNamesInQuery('max(rhumb_objects{type="overlay_pending_events"}) or vector(0)'), ['rhumb_objects']);
    assert.deepEqual(metricNamesInQuery('label_values(rhumb_agent_nics{process="agent"}, instance)'), ['rhumb_agent_nics']);
    assert.deepEqual(metricNamesInQuery('rhumb_nodejs_eventloop_lag_p99_seconds'), ['rhumb_nodejs_eventloop_lag_p99_seconds']);
  });

  it('a /metrics page exports histograms by their series names', () => {
    const names = exportedNames('# HELP h x\n# TYPE h histogram\n# TYPE c counter\nc{a="1"} 2\n# TYPE g gauge\ng 1\n');
    for (const n of ['h_bucket', 'h_sum', 'h_count', 'c', 'g']) assert.ok(names.has(n), n);
    assert.ok(!names.has('h_total'));
  });
});

describe('contrib/grafana/rhumb.json', () => {
  it('parses, and every query selects at least one rhumb metric', () => {
    const d = JSON.parse(readFileSync(join(REPO_ROOT, 'contrib/grafana/rhumb.json'), 'utf8'));
    const queries = dashboardQueries(d);
    assert.ok(queries.length >= 20);
    for (const q of queries) {
      const names = metricNamesInQuery(q.expr);
      assert.ok(names.length > 0 && names.every((n) => n.startsWith('rhumb_')), `${q.where}: ${q.expr} -> ${names.join(',')}`);
    }
  });
});
