// Observability.attach wires every source into the metrics and the page's model: engine events and
// reconnects (EventMonitor's observables), the engine connection and the checkpoint disk's health,
// the open Watch streams, and the checkpoint writes (latency, image and resources); stop() ends
// every subscription. Fakes stand in for the containerizer and monitor (their own tests cover them).
import { strict as assert } from "node:assert";
import { create } from "@bufbuild/protobuf";
import { BehaviorSubject, Subject } from "rxjs";
import { pino } from "pino";
import { ContainerCheckpointSchema } from "../../src/gen/berth/checkpoint/v1/checkpoint_pb.js";
import { Value_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { ContainerEvent } from "../../src/containerizer/container-event.js";
import type { EngineEvent } from "../../src/docker/engine-port.js";
import { Observability } from "../../src/metrics/observability.js";
import type { StatusChange } from "../../src/http/status-model.js";
import { parseMetrics, sampleValue } from "../harness/metrics-text.js";

describe("Observability wiring (fake sources)", () => {
  it("feeds the metrics and the page model from every source, and lets go of them at stop()", async () => {
    const events$ = new Subject<ContainerEvent>();
    const engine$ = new Subject<EngineEvent>();
    const reconnected$ = new Subject<void>();
    const connected$ = new BehaviorSubject(false);
    const watchStreamsOpen$ = new BehaviorSubject(0);
    const diskOk$ = new BehaviorSubject(true);
    const o = new Observability();
    o.attach({
      containerizer: { watch: () => events$, list: () => [{ containerId: "c1", state: "RUNNING", image: "img:1", sandbox: "/s" }] },
      monitor: { events$: engine$, reconnected$, connected$ },
      watchStreamsOpen$,
      diskOk$,
      agentId: "agent",
      engineAddress: "unix:///var/run/docker.sock",
      log: pino({ level: "silent" }),
    });
    const changes: StatusChange[] = [];
    o.model!.subscribe((c) => changes.push(c));

    connected$.next(true);
    for (let i = 0; i < 3; i++) engine$.next({ id: "x", action: "start", timeNano: BigInt(i) } as unknown as EngineEvent);
    reconnected$.next();
    watchStreamsOpen$.next(5);
    diskOk$.next(false);
    events$.next({ sequence: 1n, time: new Date(), containerId: "c1", snapshot: false, kind: { type: "state", state: "FETCHING" } });
    const cp = create(ContainerCheckpointSchema, {
      containerId: "c1",
      containerConfig: { containerInfo: { type: 1, docker: { image: "img:1" } } },
      resources: [
        { name: "cpus", type: Value_Type.SCALAR, scalar: { value: 0.5 } },
        { name: "mem", type: Value_Type.SCALAR, scalar: { value: 128 } },
      ],
    });
    o.checkpointObserver(cp, 0.002, true);
    o.checkpointObserver(undefined, 0.5, false);

    const s = parseMetrics(await o.metrics.text());
    assert.equal(sampleValue(s, "berth_engine_events_total"), 3);
    assert.equal(sampleValue(s, "berth_engine_event_stream_reconnects_total"), 1);
    assert.equal(sampleValue(s, "berth_engine_connected"), 1);
    assert.equal(sampleValue(s, "berth_watch_streams_open"), 5);
    assert.equal(sampleValue(s, "berth_checkpoint_write_duration_seconds_count", { result: "ok" }), 1);
    assert.equal(sampleValue(s, "berth_checkpoint_write_duration_seconds_count", { result: "error" }), 1);
    assert.equal(sampleValue(s, "berth_containers", { state: "RUNNING" }), 1);

    const snap = o.model!.snapshot();
    assert.deepEqual(snap.engine, { engine: "unix:///var/run/docker.sock", connected: true, diskOk: false, reconnects: 1 });
    assert.deepEqual(snap.containers[0]!.resources, { cpus: 0.5, memMb: 128 });
    assert.ok(changes.some((c) => c.type === "engine" && !c.engine.diskOk));

    await o.stop();
    engine$.next({ id: "x", action: "die", timeNano: 9n } as unknown as EngineEvent);
    assert.equal(sampleValue(parseMetrics(await o.metrics.text()), "berth_engine_events_total"), 3, "nothing is recorded after stop()");
  });
});
