import { readFile, writeFile } from "node:fs/promises";
import { ratioValue, type Figure, type Unit } from "./report.js";

/** The format tag of a run's JSON file; a reader refuses any other. */
export const RUN_RECORD_FORMAT = "berth-bench-run/1";

const UNITS: readonly Unit[] = ["ms", "s", "KB", "MB", "count"];

/** One benchmark run, machine readable: what `--json FILE` writes and `--compare FILE` reads. */
export interface RunRecord {
  format: typeof RUN_RECORD_FORMAT;
  /** The commit measured (`git rev-parse --short HEAD`, `+dirty` when the work tree differs). */
  commit: string;
  /** When the run started and ended (ISO 8601). */
  startedAt: string;
  finishedAt: string;
  /** The machine and engine lines printed before the scenarios. */
  header: string;
  /** A --quick run: small counts, a smoke run, not figures. */
  quick: boolean;
  /** The scenarios run, in order. */
  scenarios: string[];
  /** Every row of the printed table, with its ratio (berth / raw) when it has one. */
  figures: Array<Figure & { ratio?: number }>;
}

/** The record of a run, ratios included (so a reader needs no code of ours to read them). */
export function runRecord(run: Omit<RunRecord, "format" | "figures">, figures: readonly Figure[]): RunRecord {
  return {
    format: RUN_RECORD_FORMAT,
    ...run,
    figures: figures.map((f) => {
      const ratio = ratioValue(f);
      return ratio === undefined ? { ...f } : { ...f, ratio };
    }),
  };
}

/**
 * The record as JSON text. JSON has no NaN or Infinity: a number that is not finite (a figure
 * not measured) is written as null, and read back as NaN.
 */
export function serializeRunRecord(record: RunRecord): string {
  return `${JSON.stringify(record, (_key, value: unknown) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2)}\n`;
}

/** Thrown for a file that is not a run record this code can read, naming what is wrong. */
export class BadRunRecord extends Error {}

function optionalNumber(v: unknown, where: string): number | undefined {
  if (v === undefined) return undefined;
  if (v === null) return Number.NaN;
  if (typeof v !== "number") throw new BadRunRecord(`${where} is ${JSON.stringify(v)}, not a number`);
  return v;
}

function optionalString(v: unknown, where: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new BadRunRecord(`${where} is ${JSON.stringify(v)}, not a string`);
  return v;
}

function requiredString(o: Record<string, unknown>, key: string, where: string): string {
  const v = optionalString(o[key], `${where}.${key}`);
  if (v === undefined) throw new BadRunRecord(`${where}.${key} is missing`);
  return v;
}

function parseFigure(v: unknown, where: string): Figure & { ratio?: number } {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new BadRunRecord(`${where} is not an object`);
  const o = v as Record<string, unknown>;
  const unit = requiredString(o, "unit", where);
  if (!UNITS.includes(unit as Unit)) throw new BadRunRecord(`${where}.unit is '${unit}'; units: ${UNITS.join(", ")}`);
  const f: Figure & { ratio?: number } = { scenario: requiredString(o, "scenario", where), figure: requiredString(o, "figure", where), unit: unit as Unit };
  const numbers = ["berth", "raw", "ratio"] as const;
  for (const key of numbers) {
    const n = optionalNumber(o[key], `${where}.${key}`);
    if (n !== undefined) f[key] = n;
  }
  const strings = ["berthText", "rawText", "target", "error", "note"] as const;
  for (const key of strings) {
    const s = optionalString(o[key], `${where}.${key}`);
    if (s !== undefined) f[key] = s;
  }
  if (o.met !== undefined) {
    if (typeof o.met !== "boolean") throw new BadRunRecord(`${where}.met is ${JSON.stringify(o.met)}, not a boolean`);
    f.met = o.met;
  }
  if (o.difference !== undefined) {
    const d = o.difference as Record<string, unknown> | null;
    if (typeof d !== "object" || d === null) throw new BadRunRecord(`${where}.difference is not an object`);
    const value = optionalNumber(d.value, `${where}.difference.value`);
    const floor = optionalNumber(d.floor, `${where}.difference.floor`);
    if (value === undefined || floor === undefined) throw new BadRunRecord(`${where}.difference needs value and floor`);
    f.difference = { value, floor };
  }
  if (o.ci95 !== undefined) {
    const c = o.ci95 as Record<string, unknown> | null;
    if (typeof c !== "object" || c === null) throw new BadRunRecord(`${where}.ci95 is not an object`);
    const low = optionalNumber(c.low, `${where}.ci95.low`);
    const high = optionalNumber(c.high, `${where}.ci95.high`);
    if (low === undefined || high === undefined) throw new BadRunRecord(`${where}.ci95 needs low and high`);
    f.ci95 = { low, high };
  }
  return f;
}

/** Reads a record from JSON text; throws BadRunRecord naming the first thing that is wrong. */
export function parseRunRecord(text: string, source = "run record"): RunRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new BadRunRecord(`${source} is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new BadRunRecord(`${source} is not a JSON object`);
  const o = v as Record<string, unknown>;
  if (o.format !== RUN_RECORD_FORMAT) throw new BadRunRecord(`${source} has format ${JSON.stringify(o.format)}; this bench reads '${RUN_RECORD_FORMAT}' (written by --json)`);
  if (typeof o.quick !== "boolean") throw new BadRunRecord(`${source}.quick is ${JSON.stringify(o.quick)}, not a boolean`);
  if (!Array.isArray(o.scenarios) || o.scenarios.some((s) => typeof s !== "string")) throw new BadRunRecord(`${source}.scenarios is not a list of names`);
  if (!Array.isArray(o.figures)) throw new BadRunRecord(`${source}.figures is not a list`);
  return {
    format: RUN_RECORD_FORMAT,
    commit: requiredString(o, "commit", source),
    startedAt: requiredString(o, "startedAt", source),
    finishedAt: requiredString(o, "finishedAt", source),
    header: requiredString(o, "header", source),
    quick: o.quick,
    scenarios: o.scenarios as string[],
    figures: o.figures.map((f, i) => parseFigure(f, `${source}.figures[${i}]`)),
  };
}

/** Writes the record to `file`. */
export async function writeRunRecord(file: string, record: RunRecord): Promise<void> {
  await writeFile(file, serializeRunRecord(record), "utf8");
}

/** Reads a record from `file`; throws naming the file and what is wrong. */
export async function readRunRecord(file: string): Promise<RunRecord> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new BadRunRecord(`cannot read '${file}': ${(err as Error).message}`);
  }
  return parseRunRecord(text, `'${file}'`);
}
