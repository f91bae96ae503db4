import { formatRatio, formatValue, ratioValue, type Figure, type Unit } from "./report.js";
import type { RunRecord } from "./run-record.js";

/** Two runs agree on a figure when it moved by at most this much (the "within 2 %"). */
export const AGREEMENT_PCT = 2;

/** One figure of this run beside the same figure (same scenario and name) of a previous run. */
export interface FigureChange {
  scenario: string;
  figure: string;
  unit: Unit;
  /**
   * "ratio": berth / floor, change = (this / previous − 1) in %. "difference": berth − floor,
   * change = (this − previous) in the figure's unit, and as % of this run's floor.
   */
  kind: "ratio" | "difference";
  /** Set only when the row was of the other kind in the previous run (then nothing is compared). */
  previousKind?: "ratio" | "difference";
  previous: number;
  current: number;
  /** Difference figures: this run's floor (what the change is a share of). */
  floor?: number;
  /** Difference figures: this − previous, in `unit`. */
  delta?: number;
  /** The change in %: of the ratio, or of the floor for a difference; NaN when not computable. */
  changePct: number;
  /** |changePct| ≤ AGREEMENT_PCT (false when the change is not computable). */
  within: boolean;
  /**
   * Whether the two runs' 95 % intervals overlap (set when both runs carry one): if they do, the
   * two runs cannot be told apart at their own precision; if not, the figure really moved (or the
   * machine's conditions did).
   */
  intervalsOverlap?: boolean;
}

/** This run against a previous one. */
export interface Comparison {
  previousCommit: string;
  currentCommit: string;
  previousQuick: boolean;
  currentQuick: boolean;
  /** Every figure with a ratio or a difference in this run or the previous one. */
  changes: FigureChange[];
  /** Figures with a ratio or a difference in only one of the two runs ("scenario: figure"). */
  onlyPrevious: string[];
  onlyCurrent: string[];
}

type Measure = ({ kind: "ratio"; value: number } | { kind: "difference"; value: number; floor: number }) & { ci95?: { low: number; high: number } };

/** What a figure says that a comparison can use: its difference (when it is one) or its ratio. */
export function measureOf(f: Figure): Measure | undefined {
  if (f.error !== undefined) return undefined;
  const ci = f.ci95 !== undefined ? { ci95: f.ci95 } : {};
  if (f.difference !== undefined) return { kind: "difference", value: f.difference.value, floor: f.difference.floor, ...ci };
  const ratio = ratioValue(f);
  return ratio === undefined ? undefined : { kind: "ratio", value: ratio, ...ci };
}

/** |pct| ≤ AGREEMENT_PCT, allowing for floating point (1.02 / 1 − 1 is a hair above 2 %). */
const agrees = (pct: number) => Math.abs(pct) <= AGREEMENT_PCT + 1e-9;

const keyOf = (f: { scenario: string; figure: string }) => `${f.scenario}: ${f.figure}`;

/** One figure's change between two runs; changePct is NaN (and within false) when either side is not a number. */
export function changeOf(f: Figure, previous: Measure, current: Measure): FigureChange {
  const [p, c] = [previous.ci95, current.ci95];
  const finite = (i: { low: number; high: number } | undefined): i is { low: number; high: number } => i !== undefined && Number.isFinite(i.low) && Number.isFinite(i.high);
  const overlap = previous.kind === current.kind && finite(p) && finite(c) ? { intervalsOverlap: p.low <= c.high && c.low <= p.high } : {};
  const base = { scenario: f.scenario, figure: f.figure, unit: f.unit, ...overlap };
  if (previous.kind === "difference" && current.kind === "difference") {
    const delta = current.value - previous.value;
    const ok = Number.isFinite(delta) && Number.isFinite(current.floor) && current.floor > 0;
    const changePct = ok ? (delta / current.floor) * 100 : Number.NaN;
    return { ...base, kind: "difference", previous: previous.value, current: current.value, floor: current.floor, delta, changePct, within: ok && agrees(changePct) };
  }
  if (previous.kind === "ratio" && current.kind === "ratio") {
    const ok = Number.isFinite(previous.value) && Number.isFinite(current.value) && previous.value > 0;
    const changePct = ok ? (current.value / previous.value - 1) * 100 : Number.NaN;
    return { ...base, kind: "ratio", previous: previous.value, current: current.value, changePct, within: ok && agrees(changePct) };
  }
  // The same row changed kind between the two runs: nothing to compare.
  return { ...base, kind: current.kind, previousKind: previous.kind, previous: previous.value, current: current.value, changePct: Number.NaN, within: false };
}

/** Compares every figure of `current` that has a ratio or a difference with the same figure of `previous`. */
export function compareRuns(previous: RunRecord, current: RunRecord): Comparison {
  const before = new Map<string, Measure>();
  for (const f of previous.figures) {
    const m = measureOf(f);
    if (m !== undefined) before.set(keyOf(f), m);
  }
  const changes: FigureChange[] = [];
  const onlyCurrent: string[] = [];
  const seen = new Set<string>();
  for (const f of current.figures) {
    const m = measureOf(f);
    if (m === undefined) continue;
    const key = keyOf(f);
    seen.add(key);
    const p = before.get(key);
    if (p === undefined) onlyCurrent.push(key);
    else changes.push(changeOf(f, p, m));
  }
  const onlyPrevious = [...before.keys()].filter((k) => !seen.has(k));
  return { previousCommit: previous.commit, currentCommit: current.commit, previousQuick: previous.quick, currentQuick: current.quick, changes, onlyPrevious, onlyCurrent };
}

function signed(v: number, digits: number): string {
  if (!Number.isFinite(v)) return "n/a";
  return `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}`;
}

function cellsOf(c: FigureChange, withCi: boolean): string[] {
  const value = (v: number, kind = c.kind) => (kind === "ratio" ? formatRatio(v) : formatValue(v, c.unit));
  const pct = Number.isNaN(c.changePct) ? "n/a" : `${signed(c.changePct, 1)} %`;
  const change =
    c.kind === "ratio" || c.delta === undefined || Number.isNaN(c.delta)
      ? pct
      : `${signed(c.delta, 2)} ${c.unit} = ${pct} of the floor (${c.floor !== undefined ? formatValue(c.floor, c.unit) : "n/a"})`;
  const noise = c.intervalsOverlap === undefined ? "" : c.intervalsOverlap ? "yes" : "no";
  const cells = [c.scenario, c.figure, c.kind, value(c.previous, c.previousKind), value(c.current), change, Number.isNaN(c.changePct) ? "n/a" : c.within ? "yes" : "NO"];
  return withCi ? [...cells, noise] : cells;
}

/** The columns; the last only when some figure of this run carries its 95 % interval. */
function header(withCi: boolean): string[] {
  const h = ["scenario", "figure", "kind", "previous", "this run", "change", `within ${AGREEMENT_PCT} %?`];
  return withCi ? [...h, "95 % intervals overlap?"] : h;
}

const hasCi = (cmp: Comparison) => cmp.changes.some((c) => c.intervalsOverlap !== undefined);

function summary(cmp: Comparison): string[] {
  const within = cmp.changes.filter((c) => c.within).length;
  const lines = [`${within} of ${cmp.changes.length} figure(s) within ${AGREEMENT_PCT} % of the previous run.`];
  const withCi = cmp.changes.filter((c) => c.intervalsOverlap !== undefined);
  if (withCi.length > 0) lines.push(`${withCi.filter((c) => c.intervalsOverlap).length} of ${withCi.length} figure(s) with intervals in both runs: the two 95 % intervals (paired bootstrap) overlap, so the runs cannot be told apart at their own precision.`);
  if (cmp.onlyPrevious.length > 0) lines.push(`Only in the previous run: ${cmp.onlyPrevious.join("; ")}.`);
  if (cmp.onlyCurrent.length > 0) lines.push(`Only in this run: ${cmp.onlyCurrent.join("; ")}.`);
  if (cmp.previousQuick || cmp.currentQuick) lines.push("A --quick run is a smoke run: its figures are not measurements.");
  return lines;
}

function title(cmp: Comparison): string {
  return `Against the previous run (commit ${cmp.previousCommit}${cmp.previousQuick ? ", --quick" : ""}; this run: ${cmp.currentCommit}${cmp.currentQuick ? ", --quick" : ""}): the ratio's change in %, or a difference's change in its unit and as % of this run's floor`;
}

/** The comparison as a plain-text section. */
export function renderComparisonTable(cmp: Comparison): string {
  const withCi = hasCi(cmp);
  const head = header(withCi);
  const rows = cmp.changes.map((c) => cellsOf(c, withCi));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ").trimEnd();
  return [title(cmp), "", line(head), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line), "", ...summary(cmp)].join("\n");
}

/** The comparison as a markdown section. */
export function renderComparisonMarkdown(cmp: Comparison): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const withCi = hasCi(cmp);
  const head = header(withCi);
  return [
    `${title(cmp)}:`,
    "",
    `| ${head.map(esc).join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...cmp.changes.map((c) => `| ${cellsOf(c, withCi).map(esc).join(" | ")} |`),
    "",
    ...summary(cmp).map(esc),
  ].join("\n");
}
