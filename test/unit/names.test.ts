import assert from "node:assert/strict";
import { containerName } from "../../src/docker/names.js";
import { validateId } from "../../src/containerizer/container-id.js";

/** What the engine accepts as a container name (moby's restrictedNamePattern). */
const ENGINE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

function valid(id: string): boolean {
  try {
    validateId(id, "id");
    return true;
  } catch {
    return false;
  }
}

/** Every string of length 1..max over `alphabet`. */
function strings(alphabet: string[], max: number): string[] {
  let level = [""];
  const all: string[] = [];
  for (let n = 1; n <= max; n++) {
    level = level.flatMap((prefix) => alphabet.map((c) => prefix + c));
    all.push(...level);
  }
  return all;
}

describe("engine container names", () => {
  it("agent 'a' + container 'b-c' and agent 'a-b' + container 'c' get different names", () => {
    assert.notEqual(containerName("a", "b-c"), containerName("a-b", "c"));
  });

  it("are injective over every pair of valid ids up to 4 characters of [a 1 - . _] (and engine-valid)", () => {
    const ids = strings(["a", "1", "-", ".", "_"], 4).filter(valid);
    const seen = new Map<string, string>();
    for (const agent of ids) {
      for (const container of ids) {
        const name = containerName(agent, container);
        assert.match(name, ENGINE_NAME);
        const pair = `${agent} + ${container}`;
        const before = seen.get(name);
        assert.equal(before, undefined, `'${name}' names both ${before} and ${pair}`);
        seen.set(name, pair);
      }
    }
    assert.ok(seen.size > 10_000, `${seen.size} pairs checked`);
  });

  it("stay engine-valid at the longest ids", () => {
    const long = "x".repeat(128);
    assert.match(containerName(long, long), ENGINE_NAME);
  });
});
