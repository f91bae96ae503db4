/**
 * Berth's benchmarks: every figure beside the same figure for the raw Docker engine, measured in
 * the same run, with their ratio and the target. Nothing asserts a time; the run prints.
 *
 *   node dist/bench/run.js [scenario...] [--quick] [--markdown] [--json FILE] [--compare PREV.json]
 */
import { LABEL_AGENT_ID } from "../src/docker/names.js";
import { ensureEngine, ensureTestImages } from "../test/support/engine.js";
import { BenchBerth } from "./bench-berth.js";
import { ensureImagePresent, removeByLabels, sweepBenchContainers } from "./raw-engine.js";
import { removeAllTempDirs } from "./temp-dirs.js";
import { cleanupFailures } from "./best-effort.js";
import { countBenchContainers } from "./raw-engine.js";
import { machineHeader, renderMarkdown, renderTable, runCommit, type Figure } from "./report.js";
import { compareRuns, renderComparisonMarkdown, renderComparisonTable } from "./compare.js";
import { readRunRecord, runRecord, writeRunRecord, type RunRecord } from "./run-record.js";
import type { BenchContext, Scenario } from "./scenario.js";
import { exitScenario } from "./scenarios/exit.js";
import { launchConcurrentScenario } from "./scenarios/launch-concurrent.js";
import { launchScenario } from "./scenarios/launch.js";
import { recoverScenario } from "./scenarios/recover.js";
import { scaleScenario } from "./scenarios/scale.js";
import { usageScenario } from "./scenarios/usage.js";
import { watchFanoutScenario } from "./scenarios/watch-fanout.js";
import { metricsOverheadScenario } from "./scenarios/metrics-overhead.js";

/** Every scenario, in the order a full run takes them. */
export const SCENARIOS: readonly Scenario[] = [
  launchScenario,
  launchConcurrentScenario,
  exitScenario,
  usageScenario,
  watchFanoutScenario,
  scaleScenario,
  recoverScenario,
  metricsOverheadScenario,
];

/** What the command line asked for. */
export interface BenchArgs {
  scenarios: Scenario[];
  quick: boolean;
  help: boolean;
  /** Also print the table as markdown (for the README, pasted as it is). */
  markdown: boolean;
  /** Write the run's figures, machine readable, to this file. */
  json?: string;
  /** A file an earlier run wrote with --json: the report adds how every ratio and difference moved since. */
  compare?: string;
}

const FLAGS = "--quick, --markdown, --json FILE, --compare PREV.json, --help";

/** Parses `[scenario...] [--quick] [--markdown] [--json FILE] [--compare PREV.json] [--help]`; throws naming an unknown scenario or flag. */
export function parseArgs(argv: readonly string[]): BenchArgs {
  const names: string[] = [];
  let quick = false;
  let help = false;
  let markdown = false;
  let json: string | undefined;
  let compare: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "" || (inline === undefined && v.startsWith("-"))) throw new Error(`${flag} needs a file name`);
      return v;
    };
    if (flag === "--quick") quick = true;
    else if (flag === "--markdown") markdown = true;
    else if (flag === "--help" || flag === "-h") help = true;
    else if (flag === "--json") json = value();
    else if (flag === "--compare") compare = value();
    else if (arg.startsWith("-")) throw new Error(`unknown flag '${arg}'; flags: ${FLAGS}`);
    else names.push(arg);
  }
  for (const name of names) {
    if (!SCENARIOS.some((s) => s.name === name)) throw new Error(`unknown scenario '${name}'; scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}`);
  }
  const scenarios = names.length === 0 ? [...SCENARIOS] : SCENARIOS.filter((s) => names.includes(s.name));
  return { scenarios, quick, help, markdown, json, compare };
}

function usage(): string {
  return [
    "usage: npm run bench -- [scenario...] [--quick] [--markdown] [--json FILE] [--compare PREV.json]",
    "  no scenario runs all; --quick uses small counts (a smoke run, not figures);",
    "  --markdown also prints the table as markdown, headed by the run's commit and machine (the README's table is that output, pasted);",
    "  --json FILE writes the run's figures (commit, machine, every row with its ratio or difference) to FILE;",
    `  --compare PREV.json adds a section comparing every ratio and difference with PREV.json's (a file --json wrote): change in %, and whether within 2 %`,
    "",
    ...SCENARIOS.map((s) => `  ${s.name.padEnd(18)} ${s.describe}`),
  ].join("\n");
}

const progress = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

/** Ends Berth children (by pid) and removes this run's containers after an interrupt. */
async function interrupted(docker: Awaited<ReturnType<typeof ensureEngine>>, signal: string): Promise<never> {
  progress(`${signal}: ending Berth children and removing this run's containers`);
  for (const b of BenchBerth.live) {
    b.process.kill("SIGKILL");
    await removeByLabels(docker, [`${LABEL_AGENT_ID}=${b.home.agentId}`]).catch(() => 0);
  }
  await sweepBenchContainers(docker, LABEL_AGENT_ID).catch(() => 0);
  await removeAllTempDirs().catch(() => undefined);
  process.exit(130);
}

async function main(): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage()}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  // A comparison file that cannot be read fails now, not after the whole run.
  let previous: RunRecord | undefined;
  if (args.compare !== undefined) {
    try {
      previous = await readRunRecord(args.compare);
    } catch (err) {
      process.stderr.write(`--compare: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const docker = await ensureEngine();
  const run = `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void interrupted(docker, signal));

  const commit = runCommit();
  const header = await machineHeader(docker);
  process.stdout.write(`${header}\ncommit: ${commit}\n`);
  process.stdout.write(`scenarios: ${args.scenarios.map((s) => s.name).join(", ")}${args.quick ? " (--quick: small counts, smoke run only)" : ""}\n\n`);

  // Leftovers of an interrupted earlier run would load the engine during this one.
  const leftovers = await sweepBenchContainers(docker, LABEL_AGENT_ID);
  if (leftovers > 0) progress(`removed ${leftovers} container(s) left by an earlier, interrupted run`);
  const images = await ensureTestImages(docker);
  await ensureImagePresent(docker, images.busybox);

  const ctx: BenchContext = {
    docker,
    image: images.busybox,
    quick: args.quick,
    run,
    progress,
    shared: new Map(),
    selected: new Set(args.scenarios.map((s) => s.name)),
  };
  const figures: Figure[] = [];
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  for (const scenario of args.scenarios) {
    const t0 = Date.now();
    progress(`${scenario.name}: start`);
    const failuresBefore = cleanupFailures.length;
    try {
      figures.push(...(await scenario.run(ctx)));
      progress(`${scenario.name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      progress(`${scenario.name}: FAILED after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${message}`);
      figures.push({ scenario: scenario.name, figure: "(scenario failed)", unit: "ms", berthText: "FAILED", error: `${scenario.name}: ${message.split("\n")[0]}` });
    }
    // A clean-up that failed, or a container a scenario left behind, would load the engine during
    // the next scenario's measurements: either fails the run. The scenario shared by scale and
    // recover keeps its fleet until recover is over, so the check waits for it.
    for (const failure of cleanupFailures.slice(failuresBefore)) {
      figures.push({ scenario: scenario.name, figure: "(clean-up failed)", unit: "ms", berthText: "FAILED", error: `${scenario.name}: ${failure}` });
    }
    const keepsFleet = scenario.name === "scale" && ctx.selected.has("recover");
    if (!keepsFleet) {
      try {
        const left = await countBenchContainers(docker, LABEL_AGENT_ID);
        if (left > 0) {
          figures.push({ scenario: scenario.name, figure: "(containers left behind)", unit: "ms", berthText: "FAILED", error: `${scenario.name} left ${left} container(s) in the engine; they were removed before the next scenario` });
          await sweepBenchContainers(docker, LABEL_AGENT_ID);
        }
      } catch (err) {
        // The figures taken so far are still printed; the run fails.
        figures.push({ scenario: scenario.name, figure: "(leftover check failed)", unit: "ms", berthText: "FAILED", error: `${scenario.name}: the check for containers left behind failed: ${(err as Error).message}` });
      }
    }
  }
  try {
    const swept = await sweepBenchContainers(docker, LABEL_AGENT_ID);
    if (swept > 0) progress(`removed ${swept} container(s) the scenarios left behind`);
  } catch (err) {
    progress(`WARNING: the final sweep of bench containers failed (${(err as Error).message}); the next run removes them first`);
  }
  await removeAllTempDirs();

  const record = runRecord({ commit, startedAt, finishedAt: new Date().toISOString(), header, quick: args.quick, scenarios: args.scenarios.map((s) => s.name) }, figures);
  const comparison = previous !== undefined ? compareRuns(previous, record) : undefined;
  process.stdout.write(`${renderTable(figures)}\n`);
  if (comparison) process.stdout.write(`\n${renderComparisonTable(comparison)}\n`);
  if (args.markdown) {
    process.stdout.write(`\n${renderMarkdown(figures, { commit, header, quick: args.quick })}\n`);
    if (comparison) process.stdout.write(`\n${renderComparisonMarkdown(comparison)}\n`);
  }
  let jsonFailed = false;
  if (args.json !== undefined) {
    try {
      await writeRunRecord(args.json, record);
      progress(`figures written to ${args.json}`);
    } catch (err) {
      jsonFailed = true;
      process.stderr.write(`--json: could not write '${args.json}': ${(err as Error).message}\n`);
    }
  }
  process.stdout.write(`total ${((Date.now() - started) / 1000).toFixed(0)} s${args.quick ? "; --quick figures are a smoke run, not measurements" : ""}\n`);
  return figures.some((f) => f.error !== undefined) || jsonFailed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
