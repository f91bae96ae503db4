// Metric derivation from a synthetic container event stream (no engine): stage durations from the
// state changes' times, launches and terminations by result/reason, pull bytes as deltas, fetcher
// cache outcomes, snapshot events ignored, the per-container bookkeeping dropped at termination;
// the RPC method label bounded; containers by state computed at scrape time. Also the status
// page's model built from the same events.
import { strict as assert } from "node:assert";
import { create } from "@bufbuild/protobuf";
import { ContainerTerminationSchema } from "../../src/gen/mesos/slave/containerizer_pb.js";
import { TaskState, TaskStatus_Reason } from "../../src/gen/mesos/v1/mesos_pb.js";
import type { ContainerEvent, EventKind } from "../../src/containerizer/container-event.js";
import type { ContainerState } from "../../src/containerizer/state.js";
import { BerthMetrics } from "../../src/metrics/berth-metrics.js";
import { StatusModel, type StatusChange } from "../../src/http/status-model.js";
import { parseMetrics, sampleValue } from "../harness/metrics-text.js";

let seq = 0n;
function ev(containerId: string, at: number, kind: EventKind, snapshot = false): ContainerEvent {
  seq += 1n;
  return { sequence: seq, time: new Date(at), containerId, snapshot, kind };
}
const state = (id: string, at: number, s: ContainerState, snapshot = false) => ev(id, at, { type: "state", state: s }, snapshot);
function termination(id: string, at: number, st: TaskState, reason?: TaskStatus_Reason): ContainerEvent {
  const ct = create(ContainerTerminationSchema, { state: st, message: "m" });
  if (reason !== undefined) ct.reason = reason;
  return ev(id, at, { type: "termination", termination: { containerTermination: ct, time: new Date(at) } });
}
const pull = (id: string, at: number, bytesCurrent: number) =>
  ev(id, at, { type: "pull", progress: { ref: "img", layersTotal: 2, layersDone: 0, bytesCurrent, bytesTotal: 1000, status: "Downloading", layers: [] } });

async function scrape(m: BerthMetrics) {
  return parseMetrics(await m.text());
}

describe("BerthMetrics from the container event stream", () => {
  it("records each stage's time and the whole launch when a launch reaches RUNNING", async () => {
    const m = new BerthMetrics({ defaultMetrics: false });
    const t0 = 1_700_000_000_000;
    for (const e of [state("a", t0, "FETCHING"), state("a", t0 + 20, "PULLING"), state("a", t0 + 1520, "MOUNTING"), state("a", t0 + 1600, "RUNNING")]) m.observe(e);
    const s = await scrape(m);
    const sum = (stage: string) => sampleValue(s, "berth_launch_stage_duration_seconds_sum", { stage });
    const count = (stage: string) => sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage });
    assert.ok(Math.abs(sum("fetch") - 0.02) < 1e-9, `fetch ${sum("fetch")}`);
    assert.ok(Math.abs(sum("pull") - 1.5) < 1e-9);
    assert.ok(Math.abs(sum("mount") - 0.08) < 1e-9);
    assert.ok(Math.abs(sum("start") - 1.6) < 1e-9);
    for (const stage of ["fetch", "pull", "mount", "start"]) assert.equal(count(stage), 1, stage);
    // 1.5 s falls in the 2.5 s bucket, not the 1 s one.
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_bucket", { stage: "pull", le: "1" }), 0);
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_bucket", { stage: "pull", le: "2.5" }), 1);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "running" }), 1);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "failed" }), 0);
  });

  it("counts failed and destroyed launches and terminations by state and reason; a stage left early is not a stage time", async () => {
    const m = new BerthMetrics({ defaultMetrics: false });
    const t = 1_700_000_000_000;
    m.observe(state("f", t, "FETCHING"));
    m.observe(state("f", t + 5, "PULLING"));
    m.observe(termination("f", t + 9, TaskState.TASK_FAILED, TaskStatus_Reason.CONTAINER_LAUNCH_FAILED));
    m.observe(state("d", t, "FETCHING"));
    m.observe(state("d", t + 3, "DESTROYING"));
    m.observe(termination("d", t + 4, TaskState.TASK_KILLED));
    m.observe(state("r", t, "FETCHING"));
    m.observe(state("r", t + 1, "PULLING"));
    m.observe(state("r", t + 2, "MOUNTING"));
    m.observe(state("r", t + 3, "RUNNING"));
    m.observe(termination("r", t + 10, TaskState.TASK_FINISHED));
    const s = await scrape(m);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "failed" }), 1);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "destroyed" }), 1);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "running" }), 1);
    assert.equal(sampleValue(s, "berth_terminations_total", { state: "TASK_FAILED", reason: "CONTAINER_LAUNCH_FAILED" }), 1);
    assert.equal(sampleValue(s, "berth_terminations_total", { state: "TASK_KILLED", reason: "none" }), 1);
    assert.equal(sampleValue(s, "berth_terminations_total", { state: "TASK_FINISHED", reason: "none" }), 1);
    // fetch: f, d (no: DESTROYING is not the next stage), r → 2; pull: only r (f's pull was cut short).
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "fetch" }), 2);
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "pull" }), 1);
    assert.equal(m.tracked, 0, "the bookkeeping of terminated containers is dropped");
  });

  it("adds pull progress as deltas, counts fetcher cache outcomes, and ignores snapshot events", async () => {
    const m = new BerthMetrics({ defaultMetrics: false });
    const t = 1_700_000_000_000;
    m.observe(state("p", t, "FETCHING"));
    m.observe(ev("p", t + 1, { type: "fetch", result: { uriIndex: 0, uri: "http://x/a", cache: "MISS", bytes: 10 } }));
    m.observe(ev("p", t + 2, { type: "fetch", result: { uriIndex: 1, uri: "http://x/b", cache: "HIT", bytes: 10 } }));
    m.observe(ev("p", t + 2, { type: "fetch", result: { uriIndex: 2, uri: "http://x/c", cache: "NOT_CACHED", bytes: 10 } }));
    m.observe(state("p", t + 3, "PULLING"));
    m.observe(pull("p", t + 4, 100));
    m.observe(pull("p", t + 5, 350));
    m.observe(pull("p", t + 6, 350));
    // A new Watch's snapshot replays states: they must not count again.
    m.observe(state("p", t + 7, "FETCHING", true));
    m.observe(state("old", t + 7, "RUNNING", true));
    const s = await scrape(m);
    assert.equal(sampleValue(s, "berth_pull_bytes_total"), 350);
    assert.equal(sampleValue(s, "berth_fetcher_cache_total", { outcome: "hit" }), 1);
    assert.equal(sampleValue(s, "berth_fetcher_cache_total", { outcome: "miss" }), 1);
    assert.equal(sampleValue(s, "berth_fetcher_cache_total", { outcome: "not_cached" }), 1);
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "fetch" }), 1);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "running" }), 0);
  });

  it("a container first seen past FETCHING (recovered) gets no stage times and no launch count", async () => {
    const m = new BerthMetrics({ defaultMetrics: false });
    m.observe(state("rec", 1000, "MOUNTING"));
    m.observe(state("rec", 2000, "RUNNING"));
    const s = await scrape(m);
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "mount" }), 0, "when MOUNTING began is unknown");
    assert.equal(sampleValue(s, "berth_launch_stage_duration_seconds_count", { stage: "start" }), 0);
    assert.equal(sampleValue(s, "berth_launches_total", { result: "running" }), 0);
  });

  it("computes containers by state when scraped, from the containerizer's list", async () => {
    const m = new BerthMetrics({ defaultMetrics: false });
    const list: Array<{ state: ContainerState }> = [{ state: "RUNNING" }, { state: "RUNNING" }, { state: "PULLING" }];
    m.watchContainers({ list: () => list });
    let s = await scrape(m);
    assert.equal(sampleValue(s, "berth_containers", { state: "RUNNING" }), 2);
    assert.equal(sampleValue(s, "berth_containers", { state: "PULLING" }), 1);
    assert.equal(sampleValue(s, "berth_containers", { state: "TERMINATED" }), 0);
    list.pop();
    s = await scrape(m);
    assert.equal(sampleValue(s, "berth_containers", { state: "PULLING" }), 0);
  });

  it("bounds the RPC method label set and records codes", async () => {
    const m = new BerthMetrics({ defaultMetrics: false });
    m.rpc("/berth.v1.Containerizer/Launch", "OK", 0.002);
    m.rpc("/berth.v1.Containerizer/Launch", "INVALID_ARGUMENT", 0.001);
    m.rpc("not a path", "UNIMPLEMENTED", 0.001);
    for (let i = 0; i < 100; i++) m.rpc(`/x.Y/M${i}`, "OK", 0.001);
    const s = await scrape(m);
    assert.equal(sampleValue(s, "berth_rpc_duration_seconds_count", { method: "/berth.v1.Containerizer/Launch", code: "OK" }), 1);
    assert.equal(sampleValue(s, "berth_rpc_duration_seconds_count", { method: "/berth.v1.Containerizer/Launch", code: "INVALID_ARGUMENT" }), 1);
    const methods = new Set(s.filter((x) => x.name === "berth_rpc_duration_seconds_count").map((x) => x.labels.method));
    assert.ok(methods.size <= 65, `${methods.size} method labels`);
    assert.ok(sampleValue(s, "berth_rpc_duration_seconds_count", { method: "other", code: "OK" }) >= 37);
    assert.equal(sampleValue(s, "berth_rpc_duration_seconds_count", { method: "other", code: "UNIMPLEMENTED" }), 1);
  });

  it("serves the event-loop lag among the default process metrics", async () => {
    const m = new BerthMetrics();
    const names = new Set((await scrape(m)).map((x) => x.name));
    assert.ok(names.has("nodejs_eventloop_lag_seconds"), [...names].join(" "));
    assert.ok(names.has("nodejs_eventloop_lag_p99_seconds"));
  });
});

describe("StatusModel from the container event stream", () => {
  it("keeps a row per container with its stages, pull progress and termination, and emits each change", () => {
    const list = [{ containerId: "a", state: "TERMINATED" as ContainerState, image: "img:1" }];
    const model = new StatusModel({ list: () => list }, "agent", "unix:///var/run/docker.sock");
    const changes: StatusChange[] = [];
    model.subscribe((c) => changes.push(c));
    model.observe(state("a", 1000, "FETCHING"));
    model.observe(state("a", 1010, "PULLING"));
    model.observe(pull("a", 1020, 500));
    model.observe(state("a", 1100, "MOUNTING"));
    model.observe(state("a", 1150, "RUNNING"));
    model.observe(termination("a", 2000, TaskState.TASK_FAILED, TaskStatus_Reason.CONTAINER_LIMITATION_MEMORY));
    assert.equal(changes.length, 6);
    const snap = model.snapshot();
    assert.equal(snap.containers.length, 1);
    const row = snap.containers[0]!;
    assert.deepEqual(row.stages.map((s) => [s.state, s.at]), [["FETCHING", 1000], ["PULLING", 1010], ["MOUNTING", 1100], ["RUNNING", 1150]]);
    assert.equal(row.pull?.bytesCurrent, 500);
    assert.equal(row.termination?.state, "TASK_FAILED");
    assert.equal(row.termination?.reason, "CONTAINER_LIMITATION_MEMORY");
    assert.equal(row.image, "img:1");
    model.setHealth({ connected: true });
    model.setHealth({ connected: true });
    assert.equal(changes.filter((c) => c.type === "engine").length, 1, "an unchanged health is not sent again");
  });
});
