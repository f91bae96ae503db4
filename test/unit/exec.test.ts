import assert from "node:assert/strict";
import { ContainerExec } from "../../src/exec/container-exec.js";
import { checkExecUser } from "../../src/exec/exec-policy.js";
import { EXEC_START_FIELDS, checkSize } from "../../src/exec/exec-session.js";
import { execCreateSpec } from "../../src/exec/exec-spec.js";
import { parseProcStat } from "../../src/exec/process-tree.js";
import { FailedPrecondition, InvalidRequest, PermissionDenied } from "../../src/containerizer/errors.js";
import { defaultPolicy } from "../../src/policy/policy.js";
import { FakeEngine } from "../harness/fake-engine.js";

const invalid = (pattern: RegExp) => (err: unknown) => err instanceof InvalidRequest && pattern.test(err.message);

describe("exec request checks", () => {
  it("builds the engine's exec body from a valid command", () => {
    assert.deepEqual(execCreateSpec({ argv: ["sh", "-c", "echo hi"], env: { A: "1", "B.c": "x=y" }, user: "nobody:nogroup", workingDir: "/tmp" }, { tty: true, stdin: true }), {
      Cmd: ["sh", "-c", "echo hi"],
      Env: ["A=1", "B.c=x=y"],
      User: "nobody:nogroup",
      WorkingDir: "/tmp",
      Tty: true,
      AttachStdin: true,
    });
    // Empty optional fields stay the container's.
    assert.deepEqual(execCreateSpec({ argv: ["true"], user: "", workingDir: "" }, { tty: false, stdin: false }), { Cmd: ["true"], Tty: false, AttachStdin: false });
  });

  it("refuses an empty argv, an empty program and NUL, naming the field", () => {
    assert.throws(() => execCreateSpec({ argv: [] }, { tty: false, stdin: false }), invalid(/^command is empty/));
    assert.throws(() => execCreateSpec({ argv: [""] }, { tty: false, stdin: false }), invalid(/^command\[0\] is empty/));
    assert.throws(() => execCreateSpec({ argv: ["a", "b\0"] }, { tty: false, stdin: false }, EXEC_START_FIELDS), invalid(/^start\.command\[1\] 'b\\u0000' contains a NUL/));
  });

  it("refuses bad environment names and values, users and working dirs", () => {
    const opts = { tty: false, stdin: false };
    assert.throws(() => execCreateSpec({ argv: ["true"], env: { "": "x" } }, opts), invalid(/^environment name '' is empty/));
    assert.throws(() => execCreateSpec({ argv: ["true"], env: { "A=B": "x" } }, opts), invalid(/environment name 'A=B'/));
    assert.throws(() => execCreateSpec({ argv: ["true"], env: { A: "x\0" } }, opts), invalid(/environment value of 'A' contains a NUL/));
    assert.throws(() => execCreateSpec({ argv: ["true"], user: "a b" }, opts), invalid(/^user 'a b' is not a user name or uid/));
    assert.throws(() => execCreateSpec({ argv: ["true"], user: "a:b:c" }, opts), invalid(/^user 'a:b:c'/));
    assert.throws(() => execCreateSpec({ argv: ["true"], workingDir: "rel/dir" }, opts, EXEC_START_FIELDS), invalid(/^start\.working_dir 'rel\/dir' is not an absolute path/));
    assert.throws(() => execCreateSpec({ argv: ["true"], workingDir: "/a\nb" }, opts), invalid(/working_dir .* control character/));
  });

  it("checks terminal sizes", () => {
    checkSize({ rows: 24, columns: 80 }, "resize");
    assert.throws(() => checkSize({ rows: 0, columns: 80 }, "resize"), invalid(/^resize\.rows 0 is not between 1 and 65535/));
    assert.throws(() => checkSize({ rows: 24, columns: 70_000 }, "start.size"), invalid(/^start\.size\.columns 70000/));
  });
});

describe("exec and the operator policy", () => {
  const strict = { ...defaultPolicy(), requireNonRootUser: true };

  it("require_non_root_user refuses root by name or uid, as admission does for a launch", () => {
    for (const user of ["root", "0", "000", "root:root", "0:1000"]) {
      assert.throws(
        () => checkExecUser(user, strict, "user"),
        (err: unknown) => err instanceof PermissionDenied && err.rule === "require_non_root_user" && err.field === "user" && err.value === user,
        user,
      );
    }
  });

  it("lets other users, and the container's own user (empty), through; the default policy lets root through", () => {
    for (const user of [undefined, "", "nobody", "1000", "10:0"]) checkExecUser(user, strict, "user");
    checkExecUser("root", defaultPolicy(), "user");
  });
});

describe("ContainerExec checks before the engine", () => {
  const engine = new FakeEngine();
  const execs = new ContainerExec(engine, { ...defaultPolicy(), requireNonRootUser: true }, { defaultTimeoutMs: 1000, maxOutputBytes: 10 });
  const signal = new AbortController().signal;
  const runningTarget = { id: "c1", state: "RUNNING" as const, engineId: "e1" };

  it("refuses a container that is not RUNNING with FAILED_PRECONDITION naming its state", async () => {
    for (const state of ["PULLING", "DESTROYING", "TERMINATED"] as const) {
      await assert.rejects(
        execs.sync({ id: "c1", state }, { argv: ["true"] }, signal),
        (err: unknown) => err instanceof FailedPrecondition && err.message === `container 'c1' is ${state}; exec needs a RUNNING container`,
      );
    }
  });

  it("judges the request's shape, then the policy, then the state", async () => {
    await assert.rejects(execs.sync({ id: "c1", state: "TERMINATED" }, { argv: [] }, signal), InvalidRequest);
    await assert.rejects(execs.sync({ id: "c1", state: "TERMINATED" }, { argv: ["true"], user: "root" }, signal), PermissionDenied);
    await assert.rejects(execs.interactive({ id: "c1", state: "TERMINATED" }, { argv: ["sh"], tty: false, stdin: false, user: "0" }, signal), (err: unknown) => err instanceof PermissionDenied && err.field === "start.user");
    await assert.rejects(execs.sync(runningTarget, { argv: ["true"], timeoutMs: 0 }, signal), invalid(/^timeout 0 ms is not positive/));
  });

  it("refuses a size without a TTY before any engine call", async () => {
    await assert.rejects(execs.interactive(runningTarget, { argv: ["sh"], tty: false, stdin: false, size: { rows: 1, columns: 1 } }, signal), invalid(/start\.size is set but start\.tty is false/));
  });
});

describe("/proc/<pid>/stat parsing for the exec kill", () => {
  it("reads pid, parent and start time past a command with spaces and parentheses", () => {
    const fields = ["S", "42", ...Array.from({ length: 17 }, () => "0"), "12345", "0"];
    const st = parseProcStat(`4711 (a (b) c) ${fields.join(" ")}`, 1_000_000);
    assert.deepEqual(st, { pid: 4711, ppid: 42, startMs: 1_000_000 + 123_450 });
  });
});
