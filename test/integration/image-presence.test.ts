import assert from "node:assert/strict";
import type Dockerode from "dockerode";
import { TaskState } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LaunchResult } from "../../src/gen/berth/v1/containerizer_pb.js";
import type { EngineEvent, EnginePort } from "../../src/docker/engine-port.js";
import { pollUntil } from "../harness/engine-control.js";
import { launchRequest, newId } from "../harness/launches.js";
import { startTestBerth, type TestBerth } from "../harness/test-berth.js";
import { ensureEngine, ensureTestImages, REGISTRY, removeImage } from "../support/engine.js";
import { readProgress } from "../support/progress.js";

/**
 * Whether a launch's image is present is asked of the engine once, then remembered while the
 * engine reports image removals; a removal makes the next launch ask (and pull) again.
 */
describe("image presence is remembered between launches, and forgotten at a removal (real engine and registry)", function () {
  this.timeout(120_000);
  let docker: Dockerode;
  let t: TestBerth;
  const calls: string[] = [];
  const imageEventsSeen: EngineEvent[] = [];
  const repo = `${REGISTRY}/berth-test/presence-${process.pid}-${Date.now().toString(36)}`;
  const ref = `${repo}:1`;

  before(async () => {
    docker = await ensureEngine();
    const images = await ensureTestImages(docker);
    await docker.getImage(images.busybox).tag({ repo, tag: "1" });
    await readProgress(await docker.getImage(repo).push({ tag: "1", authconfig: {} } as object), `push of ${ref}`);
    t = await startTestBerth(
      {},
      {
        wrapEngine: (engine: EnginePort): EnginePort =>
          new Proxy(engine, {
            get(target, prop, receiver) {
              const value = Reflect.get(target, prop, receiver) as unknown;
              if (typeof value !== "function") return value;
              if (prop === "imageEvents") {
                // Berth's own subscription, seen from inside: an event is recorded as it is handed on.
                return async function* (signal: AbortSignal, onSubscribed?: () => void) {
                  for await (const ev of target.imageEvents!(signal, onSubscribed)) {
                    imageEventsSeen.push(ev);
                    yield ev;
                  }
                };
              }
              return (...args: unknown[]) => {
                calls.push(String(prop));
                return (value as (...a: unknown[]) => unknown).apply(target, args);
              };
            },
          }),
      },
    );
  });

  after(async () => {
    await t?.close();
    await removeImage(docker, ref);
  });

  async function runToEnd(id: string): Promise<void> {
    assert.equal((await t.client.launch(launchRequest(id, { image: ref, shell: "true" }))).result, LaunchResult.LAUNCHED);
    const ct = (await t.client.wait(id)).termination!.containerTermination!;
    assert.equal(ct.state, TaskState.TASK_FINISHED, ct.message);
  }

  const count = (method: string) => calls.filter((c) => c === method).length;

  it("asks the engine for the first launch only, then asks (and pulls) again after the image was removed", async () => {
    await runToEnd(newId("presence-first"));
    assert.equal(count("imagePresent"), 1, "the first launch asks the engine");
    assert.equal(count("pullImage"), 0, "the image is present: nothing is pulled");

    await runToEnd(newId("presence-second"));
    await runToEnd(newId("presence-third"));
    assert.equal(count("imagePresent"), 1, "later launches of the same image do not ask again");

    // `docker rmi` of the tag: the engine announces the untag; Berth forgets what it knew.
    await docker.getImage(ref).remove();
    await pollUntil(() => imageEventsSeen.some((ev) => ev.action === "untag" || ev.action === "delete"), 30_000, "Berth's image events stream carried the removal");

    await runToEnd(newId("presence-after-rmi"));
    assert.equal(count("imagePresent"), 2, "the launch after the removal asks the engine again");
    assert.equal(count("pullImage"), 1, "and pulls the image it no longer has");
    await docker.getImage(ref).inspect();
  });
});
