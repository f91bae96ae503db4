// How an exit becomes a Mesos ContainerTermination: wait(2) status, task state, reason, message.
import { strict as assert } from "node:assert";
import { TaskState, TaskStatus_Reason, Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { destroyedBeforeRunning, exitTermination, launchFailed, unknownFate, waitStatus } from "../../src/containerizer/termination.js";

describe("waitStatus", () => {
  it("encodes a normal exit as code << 8", () => {
    assert.deepEqual(waitStatus(0), { status: 0, exitCode: 0 });
    assert.deepEqual(waitStatus(3), { status: 768, exitCode: 3 });
    assert.deepEqual(waitStatus(128), { status: 128 << 8, exitCode: 128 });
    assert.deepEqual(waitStatus(255), { status: 65280, exitCode: 255 });
  });

  it("reads 128+N as death by signal N", () => {
    assert.deepEqual(waitStatus(137), { status: 9, signal: 9 });
    assert.deepEqual(waitStatus(143), { status: 15, signal: 15 });
    assert.deepEqual(waitStatus(129), { status: 1, signal: 1 });
    assert.deepEqual(waitStatus(192), { status: 64, signal: 64 });
    assert.deepEqual(waitStatus(193), { status: 193 << 8, exitCode: 193 });
  });
});

describe("exitTermination", () => {
  it("reports exit 0 as TASK_FINISHED with status 0", () => {
    const t = exitTermination({ exitCode: 0, oomKilled: false }, false);
    assert.equal(t.containerTermination.state, TaskState.TASK_FINISHED);
    assert.equal(t.containerTermination.status, 0);
    assert.equal(t.exitCode, 0);
    assert.equal(t.signal, undefined);
    assert.ok(t.time instanceof Date);
  });

  it("reports a non-zero exit as TASK_FAILED naming the status", () => {
    const t = exitTermination({ exitCode: 3, oomKilled: false }, false);
    assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
    assert.equal(t.containerTermination.status, 768);
    assert.match(t.containerTermination.message, /exited with status 3/);
  });

  it("reports a death by signal as TASK_FAILED naming the signal", () => {
    const t = exitTermination({ exitCode: 137, oomKilled: false }, false);
    assert.equal(t.containerTermination.state, TaskState.TASK_FAILED);
    assert.equal(t.containerTermination.status, 9);
    assert.equal(t.signal, 9);
    assert.match(t.containerTermination.message, /signal 9/);
  });

  it("reports a container Berth killed as TASK_KILLED, even when it exited 0", () => {
    for (const exitCode of [0, 1, 137, 143]) {
      const t = exitTermination({ exitCode, oomKilled: false }, true);
      assert.equal(t.containerTermination.state, TaskState.TASK_KILLED, `exit ${exitCode}`);
      assert.match(t.containerTermination.message, /killed by Berth/);
    }
  });

  it("reports an OOM kill as a memory limitation with the limit", () => {
    const t = exitTermination({ exitCode: 137, oomKilled: true }, false, 64);
    const ct = t.containerTermination;
    assert.equal(ct.state, TaskState.TASK_FAILED);
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY);
    assert.match(ct.message, /memory limit/);
    assert.equal(ct.limitedResources.length, 1);
    assert.equal(ct.limitedResources[0]!.name, "mem");
    assert.equal(ct.limitedResources[0]!.type, Value_Type.SCALAR);
    assert.equal(ct.limitedResources[0]!.scalar?.value, 64);
  });

  it("reports an OOM kill without a known limit with no limited resources", () => {
    const ct = exitTermination({ exitCode: 137, oomKilled: true }, false).containerTermination;
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY);
    assert.equal(ct.limitedResources.length, 0);
  });
});

describe("terminations without an exit", () => {
  it("launchFailed is TASK_FAILED with CONTAINER_LAUNCH_FAILED naming the stage and cause", () => {
    const ct = launchFailed("PULLING", "manifest unknown").containerTermination;
    assert.equal(ct.state, TaskState.TASK_FAILED);
    assert.equal(ct.reason, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED);
    assert.match(ct.message, /PULLING/);
    assert.match(ct.message, /manifest unknown/);
  });

  it("destroyedBeforeRunning is TASK_KILLED naming the stage", () => {
    const t = destroyedBeforeRunning("FETCHING");
    assert.equal(t.containerTermination.state, TaskState.TASK_KILLED);
    assert.match(t.containerTermination.message, /FETCHING/);
    assert.equal(t.exitCode, undefined);
    assert.equal(t.signal, undefined);
  });

  it("unknownFate is TASK_LOST with the given message", () => {
    const ct = unknownFate("engine lost container").containerTermination;
    assert.equal(ct.state, TaskState.TASK_LOST);
    assert.equal(ct.message, "engine lost container");
  });
});
