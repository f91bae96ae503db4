import { strict as assert } from "node:assert";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AGREEMENT_PCT, compareRuns, renderComparisonMarkdown, renderComparisonTable } from "../../bench/compare.js";
import { renderTable, type Figure } from "../../bench/report.js";
import { BadRunRecord, parseRunRecord, readRunRecord, runRecord, serializeRunRecord, writeRunRecord, type RunRecord } from "../../bench/run-record.js";
import { BadSample, median, pairedBootstrap, percentile, seededRandom, signedMedian, signedPercentile } from "../../bench/stats.js";

const RUN = { commit: "abc1234", startedAt: "2026-11-30T01:00:00.000Z", finishedAt: "2026-11-30T01:02:00.000Z", header: "Berth benchmarks — test\nnproc 2", quick: false, scenarios: ["exit", "launch"] };

function record(figures: Figure[], over: Partial<typeof RUN> = {}): RunRecord {
  return runRecord({ ...RUN, ...over }, figures);
}

const ratioFigure = (berth: number, raw: number, figure = "die → Wait returns, median"): Figure => ({ scenario: "exit", figure, unit: "ms", berth, raw });
const diffFigure = (value: number, floor: number, figure = "Wait − engine wait, median"): Figure => ({ scenario: "exit", figure, unit: "ms", difference: { value, floor }, rawText: "", target: "≤ 2 ms", met: value <= 2 });

describe("bench run record (--json)", () => {
  it("round-trips every field of every figure through JSON, a figure not measured (NaN) included", () => {
    const figures: Figure[] = [
      { ...ratioFigure(4.5, 9), note: "spread: p25–p75 1–2 | pipes kept", ci95: { low: 0.45, high: 0.56 } },
      { ...diffFigure(-1.25, 8.5), ci95: { low: -1.5, high: Number.NaN } },
      { scenario: "usage", figure: "engine stats (context)", unit: "ms", berthText: "", rawText: "780 / 850 ms" },
      { scenario: "scale", figure: "agent RSS", unit: "MB", berth: 153, rawText: "n/a", target: "≤ 150 MB", met: false },
      { scenario: "launch", figure: "Launch→RUNNING median", unit: "ms", berth: Number.NaN, raw: 150 },
      { scenario: "recover", figure: "(scenario failed)", unit: "ms", berthText: "FAILED", error: "recover: boom" },
    ];
    const before = record(figures);
    const text = serializeRunRecord(before);
    assert.ok(!text.includes("NaN"), "JSON has no NaN literal");
    const after = parseRunRecord(text);
    assert.deepStrictEqual(after, before);
    assert.equal(after.figures[0]!.ratio, 0.5);
    assert.equal(after.figures[1]!.ratio, undefined, "a difference row has no ratio");
    assert.ok(Number.isNaN(after.figures[4]!.berth!), "null reads back as NaN");
  });

  it("writes a file and reads the same record back", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "bench-record-"));
    try {
      const file = path.join(dir, "run.json");
      const before = record([ratioFigure(3, 4), diffFigure(0.5, 7)]);
      await writeRunRecord(file, before);
      assert.deepStrictEqual(await readRunRecord(file), before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a file that is not a run record, naming what is wrong", async () => {
    const good = JSON.parse(serializeRunRecord(record([ratioFigure(1, 2)]))) as Record<string, unknown>;
    const bad = (mutate: (o: any) => void): string => {
      const o = structuredClone(good);
      mutate(o);
      return JSON.stringify(o);
    };
    assert.throws(() => parseRunRecord("{not json", "x"), (e: unknown) => e instanceof BadRunRecord && /x is not JSON/.test((e as Error).message));
    assert.throws(() => parseRunRecord(bad((o) => (o.format = "other/9"))), /format "other\/9"/);
    assert.throws(() => parseRunRecord(bad((o) => delete o.commit)), /\.commit is missing/);
    assert.throws(() => parseRunRecord(bad((o) => (o.figures[0].unit = "hours"))), /figures\[0\]\.unit is 'hours'/);
    assert.throws(() => parseRunRecord(bad((o) => (o.figures[0].berth = "4 ms"))), /figures\[0\]\.berth is "4 ms", not a number/);
    assert.throws(() => parseRunRecord(bad((o) => (o.figures[0].difference = { value: 1 }))), /difference needs value and floor/);
    assert.throws(() => parseRunRecord(bad((o) => (o.figures[0].ci95 = { low: 1 }))), /ci95 needs low and high/);
    const dir = await mkdtemp(path.join(os.tmpdir(), "bench-record-"));
    try {
      await assert.rejects(readRunRecord(path.join(dir, "absent.json")), (e: unknown) => e instanceof BadRunRecord && /cannot read '.*absent\.json'/.test((e as Error).message));
      await writeFile(path.join(dir, "empty.json"), "[]");
      await assert.rejects(readRunRecord(path.join(dir, "empty.json")), /is not a JSON object/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("bench comparison (--compare)", () => {
  it("compares a ratio figure by the ratio's change in %, within 2 % or not", () => {
    const prev = record([ratioFigure(100, 100, "a"), ratioFigure(100, 100, "b"), ratioFigure(100, 100, "c")], { commit: "old" });
    const cur = record([ratioFigure(102, 100, "a"), ratioFigure(97.9, 100, "b"), ratioFigure(150, 150, "c")], { commit: "new" });
    const cmp = compareRuns(prev, cur);
    assert.equal(cmp.previousCommit, "old");
    assert.equal(cmp.currentCommit, "new");
    const [a, b, c] = cmp.changes;
    assert.equal(a!.kind, "ratio");
    assert.ok(Math.abs(a!.changePct - 2) < 1e-9);
    assert.equal(a!.within, true, "exactly 2 % is within");
    assert.ok(Math.abs(b!.changePct - -2.1) < 1e-9);
    assert.equal(b!.within, false);
    assert.equal(c!.changePct, 0, "the same ratio from different absolute figures has not moved");
    assert.equal(c!.within, true);
  });

  it("compares a difference figure by its change in ms, as % of this run's floor", () => {
    const prev = record([diffFigure(1.0, 10)]);
    const cur = record([diffFigure(1.3, 12)]);
    const [d] = compareRuns(prev, cur).changes;
    assert.equal(d!.kind, "difference");
    assert.ok(Math.abs(d!.delta! - 0.3) < 1e-9);
    assert.equal(d!.floor, 12);
    assert.ok(Math.abs(d!.changePct - 2.5) < 1e-9);
    assert.equal(d!.within, false);
    const [e] = compareRuns(record([diffFigure(-2, 10)]), record([diffFigure(-1.9, 10)])).changes;
    assert.ok(Math.abs(e!.changePct - 1) < 1e-9);
    assert.equal(e!.within, true);
  });

  it("leaves out figures with neither a ratio nor a difference, and errors; names figures only one run has", () => {
    const context: Figure = { scenario: "exit", figure: "die event delivery (context)", unit: "ms", berthText: "", rawText: "0.7 / 2.1 ms" };
    const failed: Figure = { ...ratioFigure(5, 5, "broken"), error: "exit: boom" };
    const prev = record([ratioFigure(1, 2, "kept"), ratioFigure(1, 2, "gone"), context, ratioFigure(1, 2, "broken")]);
    const cur = record([ratioFigure(1, 2, "kept"), ratioFigure(1, 2, "new"), context, failed]);
    const cmp = compareRuns(prev, cur);
    assert.deepEqual(cmp.changes.map((c) => c.figure), ["kept"]);
    assert.deepEqual(cmp.onlyPrevious, ["exit: gone", "exit: broken"]);
    assert.deepEqual(cmp.onlyCurrent, ["exit: new"]);
  });

  it("says n/a, never 'within', when a side was not measured or the row changed kind", () => {
    const cmp = compareRuns(record([ratioFigure(Number.NaN, 2, "nan"), diffFigure(1, 10, "kind"), diffFigure(1, 0, "zero floor")]), record([ratioFigure(1, 2, "nan"), ratioFigure(1, 2, "kind"), diffFigure(1, 0, "zero floor")]));
    // A NaN berth has no ratio: that row is only in this run; the other two cannot be computed.
    assert.deepEqual(cmp.onlyCurrent, ["exit: nan"]);
    for (const c of cmp.changes) {
      assert.ok(Number.isNaN(c.changePct), c.figure);
      assert.equal(c.within, false, c.figure);
    }
    const text = renderComparisonTable(cmp);
    assert.match(text, /\| kind\s*\| ratio\s*\| 1\.00 ms\s*\| 0\.50×\s*\| n\/a\s*\| n\/a$/m);
    assert.match(text, /\| zero floor \| difference \| 1\.00 ms\s*\| 1\.00 ms\s*\| \+0\.00 ms = n\/a of the floor \(0\.00 ms\) \| n\/a$/m);
  });

  it("says whether the two runs' 95 % intervals overlap, when both runs carry one", () => {
    const prev = record([
      { ...ratioFigure(4, 8, "overlap"), ci95: { low: 0.45, high: 0.52 } },
      { ...ratioFigure(4, 8, "apart"), ci95: { low: 0.45, high: 0.51 } },
      { ...diffFigure(-2, 8, "diff overlap"), ci95: { low: -2.5, high: -1.5 } },
      ratioFigure(4, 8, "only this run has one"),
    ]);
    const cur = record([
      { ...ratioFigure(4.4, 8, "overlap"), ci95: { low: 0.52, high: 0.6 } },
      { ...ratioFigure(4.4, 8, "apart"), ci95: { low: 0.52, high: 0.6 } },
      { ...diffFigure(-1.2, 8, "diff overlap"), ci95: { low: -1.6, high: -0.8 } },
      { ...ratioFigure(4.4, 8, "only this run has one"), ci95: { low: 0.4, high: 0.6 } },
    ]);
    const cmp = compareRuns(prev, cur);
    assert.deepEqual(
      cmp.changes.map((c) => [c.figure, c.within, c.intervalsOverlap]),
      [
        ["overlap", false, true],
        ["apart", false, false],
        ["diff overlap", false, true],
        ["only this run has one", false, undefined],
      ],
    );
    const text = renderComparisonTable(cmp);
    assert.match(text, /\| within 2 %\? \| 95 % intervals overlap\?$/m);
    assert.match(text, /^exit\s*\| apart .*\| NO\s*\| no$/m);
    assert.match(text, /2 of 3 figure\(s\) with intervals in both runs: the two 95 % intervals \(paired bootstrap\) overlap/);
  });

  it("prints previous, this run, the change and the verdict, as text and as markdown", () => {
    const cmp = compareRuns(record([ratioFigure(4, 8), diffFigure(-2, 8)], { commit: "old" }), record([ratioFigure(4.4, 8), diffFigure(-1.96, 8)], { commit: "new" }));
    const text = renderComparisonTable(cmp);
    assert.match(text, /previous run \(commit old; this run: new\)/);
    assert.match(text, /die → Wait returns, median\s*\| ratio\s*\| 0\.50×\s*\| 0\.55×\s*\| \+10\.0 %\s*\| NO/);
    assert.match(text, /Wait − engine wait, median\s*\| difference \| -2\.00 ms \| -1\.96 ms \| \+0\.04 ms = \+0\.5 % of the floor \(8\.00 ms\)\s*\| yes/);
    assert.match(text, new RegExp(`1 of 2 figure\\(s\\) within ${AGREEMENT_PCT} %`));
    const md = renderComparisonMarkdown(cmp);
    assert.match(md, /^\| scenario \| figure \| kind \| previous \| this run \| change \| within 2 %\? \|$/m);
    assert.match(md, /^\| exit \| die → Wait returns, median \| ratio \| 0\.50× \| 0\.55× \| \+10\.0 % \| NO \|$/m);
  });
});

describe("bench report and stats", () => {
  it("prints a difference figure's value in the berth column, and each figure's interval beside it", () => {
    const table = renderTable([diffFigure(-1.9, 6.85), { ...diffFigure(-3.09, 6.92, "with ci"), ci95: { low: -3.52, high: -2.61 } }, { ...ratioFigure(3.83, 6.92), ci95: { low: 0.51, high: 0.6 } }]);
    assert.match(table, /Wait − engine wait, median \| -1\.90 ms\s*\|/);
    assert.match(table, /with ci\s*\| -3\.09 ms \[-3\.52, -2\.61\] \|/);
    assert.match(table, /die → Wait returns, median \| 3\.83 ms\s*\| 6\.92 ms\s*\| 0\.55× \[0\.51, 0\.60\] \|/);
  });

  it("bootstraps a paired interval reproducibly (seeded) that holds the statistic of the sample", () => {
    const r = seededRandom(7);
    const a = Array.from({ length: 100 }, () => 4 + r());
    const b = Array.from({ length: 100 }, () => 7 + r());
    const ratio = (x: number[], y: number[]) => median(x) / median(y);
    const ci = pairedBootstrap(a, b, ratio);
    assert.deepStrictEqual(pairedBootstrap(a, b, ratio), ci, "same samples, same interval");
    const point = ratio(a, b);
    assert.ok(ci.low < point && point < ci.high, `${ci.low} < ${point} < ${ci.high}`);
    assert.ok(ci.high - ci.low < 0.05, "100 pairs with little spread give a narrow interval");
    const wide = pairedBootstrap(a.slice(0, 5), b.slice(0, 5), ratio);
    assert.ok(wide.high - wide.low > ci.high - ci.low, "fewer pairs, wider interval");
    assert.throws(() => pairedBootstrap([1, 2], [1], ratio), /not pairs/);
    assert.ok(Number.isNaN(pairedBootstrap([], [], ratio).low));
  });

  it("takes percentiles of paired differences, which may be negative; plain percentiles refuse them", () => {
    assert.equal(signedMedian([-3, -1, 2]), -1);
    assert.equal(signedPercentile([-3, -1, 2, 5], 25), -3);
    assert.ok(Number.isNaN(signedMedian([])));
    assert.throws(() => signedMedian([1, Number.NaN]), BadSample);
    assert.throws(() => percentile([-1, 2], 50), BadSample);
  });
});
