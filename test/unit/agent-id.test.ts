import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AgentIdRefused, claimAgentId, claimSocketName, resolveAgentId } from "../../src/agent-id.js";

describe("agent id: kept and claimed", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "berth-agent-id-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("an --agent_id is written to <work_dir>/agent_id and found again without the flag", async () => {
    assert.deepEqual(await resolveAgentId(dir, "given-1"), { id: "given-1" });
    assert.equal((await readFile(path.join(dir, "agent_id"), "utf8")).trim(), "given-1");
    assert.deepEqual(await resolveAgentId(dir, undefined), { id: "given-1" });
  });

  it("a differing --agent_id is refused naming both ids and --force_agent_id; forced, it replaces the kept one", async () => {
    await writeFile(path.join(dir, "agent_id"), "kept-1\n");
    await assert.rejects(resolveAgentId(dir, "other-1"), (err: Error) => err instanceof AgentIdRefused && /--agent_id 'other-1' differs from the agent id 'kept-1'.*--force_agent_id/.test(err.message));
    assert.equal((await readFile(path.join(dir, "agent_id"), "utf8")).trim(), "kept-1");
    assert.deepEqual(await resolveAgentId(dir, "other-1", true), { id: "other-1", replaced: "kept-1" });
    assert.equal((await readFile(path.join(dir, "agent_id"), "utf8")).trim(), "other-1");
  });

  it("a claimed agent id cannot be claimed twice until released; the refusal names the holder", async () => {
    const id = `claim-${process.pid}-${Date.now().toString(36)}`;
    const first = await claimAgentId(id, { workDir: "/first/dir" });
    try {
      await assert.rejects(claimAgentId(id, { workDir: "/second" }), (err: Error) => err instanceof AgentIdRefused && err.message.includes(`(pid ${process.pid}, work dir '/first/dir')`));
    } finally {
      await first.release();
    }
    const again = await claimAgentId(id, { workDir: "/second" });
    await again.release();
  });

  it("long ids that share their first 100 characters are claimed separately (socket names are cut at 107 bytes)", async () => {
    const stem = `long-${process.pid}-`.padEnd(120, "x");
    const [a, b] = [`${stem}a`, `${stem}b`];
    assert.notEqual(claimSocketName(a), claimSocketName(b));
    const ca = await claimAgentId(a, { workDir: dir });
    const cb = await claimAgentId(b, { workDir: dir });
    await ca.release();
    await cb.release();
  });
});
