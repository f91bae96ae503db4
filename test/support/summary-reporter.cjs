"use strict";
// Mocha's spec output plus, as the very last line, `N passed, N failed[, N skipped]` — the line CI
// reads (mocha's own "N passing" epilogue is not in a form CI counts). A .cjs file because mocha
// loads reporters by path with require().
const { reporters, Runner } = require("mocha");

const { EVENT_RUN_END, EVENT_TEST_FAIL } = Runner.constants;

/** Spec reporter that ends with a plain `N passed, N failed` summary line. */
class SummaryReporter extends reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    // Failed hooks also arrive as EVENT_TEST_FAIL, so this counts them as failures too; a
    // `before` failure must not let CI read "0 failed".
    let failed = 0;
    runner.on(EVENT_TEST_FAIL, () => {
      failed += 1;
    });
    // Registered after Spec's own EVENT_RUN_END listener, so it prints after the epilogue.
    runner.once(EVENT_RUN_END, () => {
      const stats = runner.stats || {};
      const passed = stats.passes || 0;
      const pending = stats.pending || 0;
      const parts = [`${passed} passed`, `${Math.max(failed, stats.failures || 0)} failed`];
      if (pending > 0) parts.push(`${pending} skipped`);
      process.stdout.write(`${parts.join(", ")}\n`);
    });
  }
}

SummaryReporter.description = "spec output plus a final `N passed, N failed` line";

module.exports = SummaryReporter;
