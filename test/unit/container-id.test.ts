// Container ids become engine names, label values and directory names: only a safe charset passes,
// and every refusal shows the value with control characters made visible.
import { strict as assert } from "node:assert";
import { InvalidRequest } from "../../src/containerizer/errors.js";
import { MAX_CONTAINER_ID_LENGTH, quote, validateId } from "../../src/containerizer/container-id.js";

function rejects(value: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => validateId(value, "container_id.value"),
    (err: unknown) => {
      assert.ok(err instanceof InvalidRequest, `expected InvalidRequest, got ${String(err)}`);
      assert.match(err.message, /^container_id\.value /);
      for (const p of patterns) assert.match(err.message, p);
      return true;
    },
  );
}

describe("validateId", () => {
  it("accepts UUIDs and letters, digits, '_', '.' and '-'", () => {
    for (const ok of ["5f0b7c3e-9a4d-4b8e-8f00-0123456789ab", "a_b.c-d", "_x", "A", "a".repeat(MAX_CONTAINER_ID_LENGTH)]) {
      assert.equal(validateId(ok, "container_id.value"), ok);
    }
  });

  it("rejects empty and too long ids", () => {
    rejects("", /is empty/);
    rejects("a".repeat(129), /is 129 characters long; at most 128/);
  });

  it("rejects '/', '..' and a leading '.' or '-'", () => {
    rejects("a/b", /'a\/b' contains '\/'/);
    rejects("..", /'\.\.' starts with '\.'/);
    rejects("a..b", /'a\.\.b' contains '\.\.'/);
    rejects(".hidden", /'\.hidden' starts with '\.'/);
    rejects("-rf", /'-rf' starts with '-'/);
  });

  it("rejects control characters, showing them as U+00xx", () => {
    rejects("a\u0001b", /control character U\+0001/, /'a\\u0001b'/);
    rejects("a\nb", /control character U\+000a/i, /'a\\nb'/);
    rejects("a\u007fb", /control character U\+007f/i);
    rejects("a\u0085b", /control character U\+0085/i);
  });

  it("rejects unicode and spaces, naming the character", () => {
    rejects("café", /'café' contains 'é' \(U\+00E9\)/);
    rejects("a b", /contains ' '/);
    rejects("a\u202eb", /U\+202E/, /'a\\u202eb'/);
  });
});

describe("quote", () => {
  it("escapes quotes and control characters and cuts long values", () => {
    assert.equal(quote("it's"), "'it\\'s'");
    assert.equal(quote("a\u0000b"), "'a\\u0000b'");
    assert.equal(quote("x".repeat(100)), `'${"x".repeat(80)}…'`);
  });

  it("makes invisible and direction-changing characters visible", () => {
    assert.equal(quote("a\u202eb"), "'a\\u202eb'");
    assert.equal(quote("a\u200bb\u2028"), "'a\\u200bb\\u2028'");
    assert.equal(quote("a\u0085"), "'a\\u0085'");
    assert.equal(quote("café"), "'café'");
  });
});
