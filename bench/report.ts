import { execFileSync } from "node:child_process";
import os from "node:os";
import type Dockerode from "dockerode";

/** The unit a figure is printed in. */
export type Unit = "ms" | "s" | "KB" | "MB" | "count";

/** One row of the final table: Berth's figure beside the raw engine's, measured in the same run. */
export interface Figure {
  scenario: string;
  figure: string;
  unit: Unit;
  berth?: number;
  raw?: number;
  /** Printed instead of `berth` when there is no number ("not available", "FAILED"). */
  berthText?: string;
  /** Printed instead of `raw` when there is no number ("n/a"). */
  rawText?: string;
  /** The target, as words ("≤ 1.03× raw median"); absent when the figure has none. */
  target?: string;
  /** Whether the target was met; absent when there is no target or nothing was measured. */
  met?: boolean;
  /** Set when the scenario failed: printed as ERROR with this text as a footnote. */
  error?: string;
  /** Context printed as a footnote below the table. */
  note?: string;
  /**
   * A difference figure (Berth − its floor, in `unit`): the difference and the floor it is over, so
   * a comparison with an earlier run can say how far it moved as a share of the floor. Printed in
   * the berth column when there is no `berth` number or `berthText`.
   */
  difference?: { value: number; floor: number };
  /**
   * The run's own precision: a 95 % interval (paired bootstrap) of the ratio, or of the difference
   * for a difference figure. Printed beside it in brackets.
   */
  ci95?: { low: number; high: number };
}

/** Berth's figure over its floor's (`berth / raw`); undefined when either is missing, not finite, or the floor is ≤ 0. */
export function ratioValue(f: Figure): number | undefined {
  if (f.berth === undefined || f.raw === undefined || !Number.isFinite(f.berth) || !Number.isFinite(f.raw) || f.raw <= 0) return undefined;
  return f.berth / f.raw;
}

/** A ratio as printed: two decimals, or two significant digits below 0.1. */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return "n/a";
  return `${r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}×`;
}

/** A value in its unit, as the table prints it ("n/a" when not finite). */
export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return "n/a";
  switch (unit) {
    case "ms":
      return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ms`;
    case "s":
      return `${value.toFixed(2)} s`;
    case "KB":
      return `${value.toFixed(1)} KB`;
    case "MB":
      return `${value.toFixed(1)} MB`;
    case "count":
      return `${Math.round(value)}`;
  }
}

/** An interval as printed beside its figure: `[low, high]` with the figure's own digits. */
export function formatInterval(ci: { low: number; high: number }, format: (v: number) => string): string {
  return `[${format(ci.low)}, ${format(ci.high)}]`;
}

function ratioOf(f: Figure): string {
  const r = ratioValue(f);
  if (r === undefined) return "";
  const bare = (v: number) => formatRatio(v).replace(/×$/, "");
  return f.ci95 !== undefined && f.difference === undefined ? `${formatRatio(r)} ${formatInterval(f.ci95, bare)}` : formatRatio(r);
}

function differenceOf(f: Figure & { difference: { value: number } }): string {
  const text = formatValue(f.difference.value, f.unit);
  const bare = (v: number) => formatValue(v, f.unit).replace(/ \S+$/, "");
  return f.ci95 !== undefined ? `${text} ${formatInterval(f.ci95, bare)}` : text;
}

function metOf(f: Figure): string {
  if (f.error !== undefined) return "ERROR";
  if (f.target === undefined) return "";
  if (f.met === undefined) return "n/a";
  return f.met ? "met" : "MISSED";
}

/** The commit the run measures: `git rev-parse --short HEAD`, `+dirty` when the work tree differs from it. */
export function runCommit(): string {
  try {
    const opts = { encoding: "utf8" as const, stdio: ["ignore", "pipe", "ignore"] as ["ignore", "pipe", "ignore"] };
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], opts).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], opts).trim() !== "";
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown (not a git checkout)";
  }
}

function cells(f: Figure): string[] {
  return [
    f.scenario,
    f.figure,
    f.berth !== undefined ? formatValue(f.berth, f.unit) : (f.berthText ?? (f.difference !== undefined ? differenceOf(f as Figure & { difference: { value: number } }) : "")),
    f.raw !== undefined ? formatValue(f.raw, f.unit) : (f.rawText ?? ""),
    ratioOf(f),
    f.target ?? "",
    metOf(f),
  ];
}

/**
 * The same table as markdown, headed by the run's commit and machine: the README's Figures section
 * is this output pasted as it is (never edited).
 */
export function renderMarkdown(figures: readonly Figure[], run: { commit: string; header: string; quick: boolean }): string {
  const notes: string[] = [];
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const rows = figures.map((f) => {
    const c = cells(f);
    const text = f.error ?? f.note;
    if (text !== undefined) {
      notes.push(text);
      c[1] += ` [${notes.length}]`;
    }
    return `| ${c.map(esc).join(" | ")} |`;
  });
  const missed = figures.filter((f) => f.met === false && f.error === undefined).length;
  const errors = figures.filter((f) => f.error !== undefined).length;
  return [
    `Run of commit \`${run.commit}\`${run.quick ? " (--quick: a smoke run, not figures)" : ""}:`,
    "",
    "```",
    run.header,
    "```",
    "",
    "| scenario | figure | berth | floor / raw engine | ratio | target | met? |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    ...notes.map((n, i) => `${i + 1}. ${esc(n)}`),
    "",
    `${missed} target(s) MISSED, ${errors} scenario error(s).`,
  ].join("\n");
}

/** Renders the figures as one plain-text table, with footnotes for notes and errors. */
export function renderTable(figures: readonly Figure[]): string {
  const header = ["scenario", "figure", "berth", "floor / raw engine", "ratio", "target", "met?"];
  const notes: string[] = [];
  const rows = figures.map((f) => {
    const c = cells(f);
    const text = f.error ?? f.note;
    if (text !== undefined) {
      notes.push(text);
      c[1] += ` [${notes.length}]`;
    }
    return c;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ").trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)];
  if (notes.length > 0) out.push("", ...notes.map((n, i) => `[${i + 1}] ${n}`));
  const missed = figures.filter((f) => f.met === false && f.error === undefined).length;
  const errors = figures.filter((f) => f.error !== undefined).length;
  out.push("", `${missed} target(s) MISSED, ${errors} scenario error(s)`);
  return out.join("\n");
}

/** The lines printed before any scenario: when, on what machine, against which engine. */
export async function machineHeader(docker: Dockerode): Promise<string> {
  let engine: string;
  try {
    const v = await docker.version();
    engine = `Docker Engine ${v.Version} (API ${v.ApiVersion}), containerd ${v.Components?.find((c) => c.Name === "containerd")?.Version ?? "?"}, runc ${v.Components?.find((c) => c.Name === "runc")?.Version ?? "?"}`;
  } catch (err) {
    engine = `unknown (version call failed: ${(err as Error).message})`;
  }
  const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  return [
    `Berth benchmarks — ${new Date().toISOString()}`,
    `nproc ${os.availableParallelism()}, memory ${gib(os.totalmem())} (free ${gib(os.freemem())}), load average ${load}`,
    `${os.type()} ${os.release()}, node ${process.version}`,
    `engine: ${engine}`,
  ].join("\n");
}
