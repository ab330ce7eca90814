/**
 * A Prometheus histogram with one label, cheap enough to observe on every SVP request.
 * prom-client's Histogram validates and hashes labels on each observe (~0.6 µs, a fifth
 * of a lookup's cost); this keeps plain bucket counters per label value and renders them
 * in prom-client's format when the registry is scraped.
 */
import type { Registry } from 'prom-client';

export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    this.observeMany(v, 1);
  }
  /** n observations of the same value (requests answered together, timed together). */
  /** Observations counted elsewhere: sum, count and per-bucket counts (not cumulative). */
  addCounts(sum: number, count: number, buckets: ArrayLike<number>): void {
    this.sum += sum;
    this.count += count;
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += buckets[i];
  }
  observeMany(v: number, n: number): void {
    this.sum += v * n;
    this.count += n;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.counts[i] += n;
        return;
      }
    }
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: string,
    readonly buckets: readonly number[],
    registry: Registry,
    /** Called before each read (observations gathered elsewhere are added then). */
    private readonly collect?: () => void,
  ) {
    // Registry.registerMetric only needs get()/name/type/help/reset; the cast is local.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series for one label value (keep the handle: observing through it is the cheap path). */
  labels(value: string): HistogramSeries {
    let s = this.series.get(value);
    if (!s) {
      s = new HistogramSeries(this.buckets);
      this.series.set(value, s);
    }
    return s;
  }

  reset(): void {
    this.series.clear();
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    this.collect?.();
    const values: MetricValue[] = [];
    for (const [lv, s] of this.series) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += s.counts[i];
        values.push({ labels: { le, [this.labelName]: lv }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', [this.labelName]: lv }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { [this.labelName]: lv }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { [this.labelName]: lv }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
