import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fieldSupportMarkdown } from "../../src/containerizer/field-support.js";
import { repoRoot } from "../support/dev-dir.js";

describe("README: the field table", () => {
  it("is exactly what src/containerizer/field-support.ts prints (node scripts/field-table.mjs)", async () => {
    const readme = await readFile(path.join(repoRoot(), "README.md"), "utf8");
    const m = /<!-- field-table:start -->\n([\s\S]*?)\n<!-- field-table:end -->/.exec(readme);
    assert.ok(m, "README.md has no <!-- field-table:start --> … <!-- field-table:end --> block");
    assert.equal(m[1]!.trim(), fieldSupportMarkdown().trim(), "README's field table differs from field-support.ts: paste the output of `node scripts/field-table.mjs`");
  });
});
