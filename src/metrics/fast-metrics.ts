/**
 * Counters and histograms whose recording is a Map lookup and a few additions, registered in a
 * prom-client Registry as custom metrics (the Registry formats them like its own). prom-client's
 * own Counter/Histogram hash the label object and validate it on every observation, which costs a
 * few microseconds per gRPC call in place; these bind a label set once (`child`) and record through
 * the bound child.
 */
import type { Registry } from "prom-client";

type Labels = Record<string, string>;

interface Value {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

/** What a prom-client Registry needs of a metric (registerMetric / metrics()). */
abstract class CustomMetric {
  readonly aggregator = "sum";
  abstract readonly type: "counter" | "histogram";

  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  protected key(labels: Labels): string {
    let key = "";
    for (const n of this.labelNames) {
      const v = labels[n];
      if (v === undefined) throw new Error(`metric ${this.name}: label '${n}' is missing`);
      key += `${v}\u0000`;
    }
    return key;
  }

  protected picked(labels: Labels): Labels {
    const out: Labels = {};
    for (const n of this.labelNames) out[n] = labels[n]!;
    return out;
  }

  abstract get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Value[] }>;
}

/** One label set of a FastCounter. */
export class CounterChild {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(by = 1): void {
    this.value += by;
  }
}

/** A counter; `child(labels)` binds a label set once. */
export class FastCounter extends CustomMetric {
  readonly type = "counter";
  private readonly children = new Map<string, CounterChild>();

  child(labels: Labels = {}): CounterChild {
    const key = this.key(labels);
    let c = this.children.get(key);
    if (!c) {
      c = new CounterChild(this.picked(labels));
      this.children.set(key, c);
    }
    return c;
  }

  async get() {
    const values = [...this.children.values()].map((c) => ({ labels: { ...c.labels }, value: c.value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** One label set of a FastHistogram: counts per bucket (not cumulative; the last is +Inf), sum, count. */
export class HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

/** A histogram with fixed upper bounds (Prometheus `le`: a value equal to a bound counts in it). */
export class FastHistogram extends CustomMetric {
  readonly type = "histogram";
  private readonly children = new Map<string, HistogramChild>();

  constructor(name: string, help: string, labelNames: readonly string[], private readonly bounds: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
  }

  child(labels: Labels = {}): HistogramChild {
    const key = this.key(labels);
    let c = this.children.get(key);
    if (!c) {
      c = new HistogramChild(this.picked(labels), this.bounds);
      this.children.set(key, c);
    }
    return c;
  }

  async get() {
    const values: Value[] = [];
    for (const c of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += c.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...c.labels, le: i < this.bounds.length ? this.bounds[i]! : "+Inf" }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { ...c.labels }, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...c.labels }, value: c.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
