import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContainerEventSchema, LayerProgressSchema, PullProgressSchema, State, TerminationSchema, type ContainerEvent, type LayerProgress } from "../../src/gen/berth/v1/containerizer_pb.js";
import { ContainerInfo_DockerInfo_Network, ResourceStatisticsSchema, TaskState, Volume_Mode } from "../../src/gen/mesos/v1/mesos_pb.js";
import { parseSince } from "../../src/cli/commands.js";
import { pollUntil } from "../harness/engine-control.js";
import { defaultAddress, grpcTarget, resolveToken, rpcFailure, UsageError } from "../../src/cli/connection.js";
import { describeTermination, relativeTime, table, terminationExitCode } from "../../src/cli/format.js";
import { buildLaunchRequest, megabytes, parseEnv, parseNetwork, parseVolume } from "../../src/cli/launch-request.js";
import { PlainView, TtyView } from "../../src/cli/progress.js";
import { cpuPercent, statsTable } from "../../src/cli/stats.js";

const usage = (re: RegExp) => (err: unknown) => err instanceof UsageError && re.test(err.message);

function event(id: string, kind: ContainerEvent["kind"], sequence = 1n): ContainerEvent {
  return create(ContainerEventSchema, { sequence, containerId: { value: id }, time: timestampFromDate(new Date(0)), kind });
}
const state = (s: State, previous: State = State.UNSPECIFIED) => ({ case: "stateChanged" as const, value: { $typeName: "berth.v1.StateChanged" as const, state: s, previous, message: "" } });

describe("berth CLI: launch flags → LaunchRequest", () => {
  it("image, command (docker run style: first word, then its arguments), resources, env, volumes, network, uris, user, workdir", () => {
    const req = buildLaunchRequest(
      {
        image: "127.0.0.1:5000/app:1",
        command: ["sh", "-c", "echo hi"],
        id: "web-1",
        cpus: "0.5",
        mem: "256m",
        disk: "1g",
        env: ["A=1", "B=x=y", "HOME_COPY"],
        volume: ["/srv/data:/data:ro", "/tmp:/scratch"],
        network: "none",
        uri: ["http://example.invalid/a.tgz"],
        user: "nobody",
        workdir: "/data",
        pull: true,
      },
      { HOME_COPY: "from-here" },
    );
    assert.equal(req.containerId?.value, "web-1");
    const cfg = req.containerConfig!;
    assert.equal(cfg.directory, "");
    assert.equal(cfg.user, "nobody");
    assert.deepEqual({ shell: cfg.commandInfo!.shell, value: cfg.commandInfo!.value, arguments: cfg.commandInfo!.arguments }, { shell: false, value: "sh", arguments: ["-c", "echo hi"] });
    assert.deepEqual(cfg.commandInfo!.uris.map((u) => u.value), ["http://example.invalid/a.tgz"]);
    assert.deepEqual(cfg.resources.map((r) => [r.name, r.scalar?.value]), [["cpus", 0.5], ["mem", 256], ["disk", 1024]]);
    assert.deepEqual(req.environment, { A: "1", B: "x=y", HOME_COPY: "from-here" });
    const docker = cfg.containerInfo!.docker!;
    assert.equal(docker.image, "127.0.0.1:5000/app:1");
    assert.equal(docker.network, ContainerInfo_DockerInfo_Network.NONE);
    assert.equal(docker.forcePullImage, true);
    assert.deepEqual(docker.parameters.map((p) => [p.key, p.value]), [["workdir", "/data"]]);
    assert.deepEqual(cfg.containerInfo!.volumes.map((v) => [v.hostPath, v.containerPath, v.mode]), [["/srv/data", "/data", Volume_Mode.RO], ["/tmp", "/scratch", Volume_Mode.RW]]);
  });

  it("--shell joins the command for /bin/sh -c; no command keeps the image's; an id is generated", () => {
    const sh = buildLaunchRequest({ image: "img", command: ["echo", "$HOME", "&&", "exit 3"], shell: true });
    assert.deepEqual({ shell: sh.containerConfig!.commandInfo!.shell, value: sh.containerConfig!.commandInfo!.value }, { shell: true, value: "echo $HOME && exit 3" });
    const bare = buildLaunchRequest({ image: "img", command: [] });
    assert.equal(bare.containerConfig!.commandInfo!.value, "");
    assert.equal(bare.containerConfig!.user, "", "no --user: the field stays unset");
    assert.match(bare.containerId!.value, /^berth-[0-9a-f]{12}$/);
    assert.notEqual(buildLaunchRequest({ image: "img", command: [] }).containerId!.value, bare.containerId!.value);
  });

  it("refuses bad values as usage errors naming the flag", () => {
    assert.throws(() => buildLaunchRequest({ command: [] }), usage(/needs an IMAGE/));
    assert.throws(() => buildLaunchRequest({ image: "i", command: [], cpus: "-1" }), usage(/--cpus '-1' is not a positive number/));
    assert.throws(() => buildLaunchRequest({ image: "i", command: [], mem: "lots" }), usage(/--mem 'lots' is not a size/));
    assert.throws(() => buildLaunchRequest({ image: "i", command: [], workdir: "rel" }), usage(/--workdir 'rel' is not an absolute path/));
    assert.throws(() => buildLaunchRequest({ image: "i", command: [], shell: true }), usage(/--shell needs a COMMAND/));
    assert.throws(() => parseVolume("/only"), usage(/-v '\/only' is not HOST_PATH:CONTAINER_PATH/));
    assert.throws(() => parseVolume("/a:/b:rx"), usage(/mode 'rx'/));
    assert.throws(() => parseNetwork("overlay"), usage(/--network 'overlay'/));
    assert.throws(() => parseEnv(["=x"]), usage(/no variable name/));
    assert.throws(() => parseEnv(["UNSET_HERE"], {}), usage(/UNSET_HERE is not set here/));
  });

  it("sizes: plain numbers are MB, units are binary; networks", () => {
    assert.equal(megabytes("64", "--mem"), 64);
    assert.equal(megabytes("512k", "--mem"), 0.5);
    assert.equal(megabytes("2G", "--mem"), 2048);
    assert.equal(megabytes("128MiB", "--mem"), 128);
    assert.deepEqual(parseNetwork("HOST"), { network: ContainerInfo_DockerInfo_Network.HOST });
    assert.deepEqual(parseNetwork("user:backend"), { network: ContainerInfo_DockerInfo_Network.USER, userNetwork: "backend" });
  });
});

describe("berth CLI: --task files (proto JSON)", () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(path.join(os.tmpdir(), "berth-cli-unit-"))));
  after(() => rm(dir, { recursive: true, force: true }));
  const file = async (name: string, value: unknown) => {
    const p = path.join(dir, name);
    await writeFile(p, typeof value === "string" ? value : JSON.stringify(value));
    return p;
  };

  it("a TaskInfo (proto or JSON names) becomes the config's task_info and command_info", async () => {
    const task = await file("task.json", { name: "t", task_id: { value: "t1" }, agentId: { value: "a" }, command: { value: "true", shell: true }, container: { type: "DOCKER", docker: { image: "img" } } });
    const req = buildLaunchRequest({ task, command: [], id: "c1", env: ["X=1"], user: "nobody" });
    assert.equal(req.containerId?.value, "c1");
    assert.equal(req.containerConfig!.taskInfo!.taskId!.value, "t1");
    assert.equal(req.containerConfig!.commandInfo!.value, "true");
    assert.equal(req.containerConfig!.directory, "");
    assert.equal(req.containerConfig!.user, "nobody");
    assert.deepEqual(req.environment, { X: "1" });
  });

  it("a ContainerConfig, and a whole LaunchRequest keeping its own id", async () => {
    const config = await file("config.json", { commandInfo: { value: "true" }, containerInfo: { type: "DOCKER", docker: { image: "img" } } });
    assert.equal(buildLaunchRequest({ task: config, command: [] }).containerConfig!.containerInfo!.docker!.image, "img");
    const launch = await file("launch.json", { containerId: { value: "own" }, containerConfig: { directory: "", commandInfo: { value: "x" } } });
    assert.equal(buildLaunchRequest({ task: launch, command: [] }).containerId!.value, "own");
  });

  it("unknown fields, missing required fields, bad JSON and conflicting flags are usage errors", async () => {
    const typo = await file("typo.json", { commandInfo: { value: "true" }, containerInfoo: {} });
    assert.throws(() => buildLaunchRequest({ task: typo, command: [] }), usage(/is not a ContainerConfig in proto JSON: .*containerInfoo/));
    const noCommand = await file("nocmd.json", { taskId: { value: "t" }, name: "t", agentId: { value: "a" } });
    assert.throws(() => buildLaunchRequest({ task: noCommand, command: [] }), usage(/TaskInfo .*command is missing/));
    const noCmdInfo = await file("nocmdinfo.json", { containerInfo: { type: "DOCKER", docker: { image: "img" } } });
    assert.throws(() => buildLaunchRequest({ task: noCmdInfo, command: [] }), usage(/command_info.*required/));
    const notJson = await file("bad.json", "{not json");
    assert.throws(() => buildLaunchRequest({ task: notJson, command: [] }), usage(/is not JSON/));
    const array = await file("arr.json", "[1]");
    assert.throws(() => buildLaunchRequest({ task: array, command: [] }), usage(/an array, not a JSON object/));
    assert.throws(() => buildLaunchRequest({ task: path.join(dir, "missing.json"), command: [] }), usage(/cannot be read: ENOENT/));
    assert.throws(() => buildLaunchRequest({ task: typo, command: [], image: "img", cpus: "1" }), usage(/drop IMAGE, --cpus/));
  });
});

describe("berth CLI: connection flags", () => {
  it("the default socket follows $BERTH_WORK_DIR as serve's --work_dir does", () => {
    assert.equal(defaultAddress({}), "unix:///var/lib/berth/berth.sock");
    assert.equal(defaultAddress({ BERTH_WORK_DIR: "/srv/berth" }), "unix:///srv/berth/berth.sock");
    assert.equal(grpcTarget("/run/b.sock"), "unix:///run/b.sock");
    assert.equal(grpcTarget("127.0.0.1:7000"), "127.0.0.1:7000");
    assert.throws(() => grpcTarget("http://x"), usage(/--addr 'http:\/\/x'/));
  });

  it("the token comes from --token_file's first line, else $BERTH_TOKEN", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "berth-cli-token-"));
    try {
      const f = path.join(dir, "t");
      await writeFile(f, "# comment\n\n  secret-1  \nsecret-2\n");
      assert.equal(resolveToken({ token_file: f }, { BERTH_TOKEN: "env" }), "secret-1");
      assert.equal(resolveToken({}, { BERTH_TOKEN: " env " }), "env");
      assert.equal(resolveToken({}, {}), undefined);
      await writeFile(f, "\n");
      assert.throws(() => resolveToken({ token_file: f }), /holds no token/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a gRPC error is one line naming the RPC and the code", () => {
    const err = Object.assign(new Error("x"), { code: 3, details: "container_id 'a b' is\nbad" });
    assert.equal(rpcFailure("Launch", err).message, "Launch failed: INVALID_ARGUMENT: container_id 'a b' is bad");
  });
});

describe("berth CLI: output", () => {
  it("tables align columns; relative times read like docker's", () => {
    assert.equal(table(["A", "LONGER", "C"], [["xx", "y", "z"], ["x", "yyyyyyyy", ""]]), "A   LONGER    C\nxx  y         z\nx   yyyyyyyy\n");
    const now = new Date("2026-01-01T00:00:00Z");
    const ago = (ms: number) => relativeTime(new Date(now.getTime() - ms), now);
    assert.deepEqual([ago(200), ago(3000), ago(125_000), ago(7_200_000), ago(3 * 86_400_000), ago(-2000)], ["just now", "3s ago", "2m ago", "2h ago", "3d ago", "in 2s"]);
  });

  it("exit codes: the process's, 128+N for signal N, none when no process ran", () => {
    assert.equal(terminationExitCode(create(TerminationSchema, { exitCode: 3 })), 3);
    assert.equal(terminationExitCode(create(TerminationSchema, { signal: 15 })), 143);
    assert.equal(terminationExitCode(create(TerminationSchema, {})), undefined);
    assert.equal(describeTermination(create(TerminationSchema, { signal: 9, containerTermination: { state: TaskState.TASK_KILLED, message: "killed" } })), "signal 9 (exit 137), TASK_KILLED, killed");
  });

  it("--since: a duration back from now or a date", () => {
    const now = new Date("2026-01-01T01:00:00Z");
    assert.equal(parseSince("10m", now).toISOString(), "2026-01-01T00:50:00.000Z");
    assert.equal(parseSince("2026-01-01T00:00:00Z", now).toISOString(), "2026-01-01T00:00:00.000Z");
    assert.throws(() => parseSince("yesterday-ish", now), usage(/--since 'yesterday-ish'/));
  });

  it("stats: CPU % is the growth of cpu seconds over the growth of the sample time", () => {
    const a = create(ResourceStatisticsSchema, { timestamp: 100, cpusUserTimeSecs: 1, cpusSystemTimeSecs: 1 });
    const b = create(ResourceStatisticsSchema, { timestamp: 102, cpusUserTimeSecs: 2.5, cpusSystemTimeSecs: 1.5 });
    assert.equal(cpuPercent(undefined, b), undefined);
    assert.equal(cpuPercent(a, b), 100);
    assert.equal(cpuPercent(b, b), undefined, "no time passed");
    const t = statsTable([{ id: "c1", cpuPercent: 50, memUsage: 1024n * 1024n, memLimit: 4n * 1024n * 1024n, processes: 2, netRx: 0n, netTx: 0n }, { id: "c2", error: "NOT_FOUND: gone" }]);
    assert.match(t, /^c1\s+50\.00%\s+1\.0MiB \/ 4\.0MiB\s+25\.00%\s+0B \/ 0B\s+--\s+2$/m);
    assert.match(t, /^c2\s+--.*NOT_FOUND: gone$/m);
  });

  it("a pipe gets one plain line per state, a line per layer pulled (none for layers already present), the pull's size, and the termination", () => {
    let text = "";
    let clock = 1000;
    const view = new PlainView({ write: (s: string) => (text += s) }, () => clock);
    view.event(event("c", state(State.FETCHING)));
    view.event(event("c", state(State.PULLING, State.FETCHING)));
    const mib = 1024n * 1024n;
    view.event(event("c", pullProgress({ layersTotal: 3, layersDone: 1, bytesCurrent: 10n, bytesTotal: 3n * mib, status: "Downloading" }, [layerA("Downloading", 10n, mib), layerB("Pull complete", 2n * mib, 2n * mib), layerC])));
    // A later summary naming the same finished layer again adds no line.
    view.event(event("c", pullProgress({ layersTotal: 3, layersDone: 3, bytesCurrent: 3n * mib, bytesTotal: 3n * mib, status: "Pull complete" }, [layerA("Pull complete", mib, mib), layerB("Pull complete", 2n * mib, 2n * mib), layerC])));
    clock += 1500;
    view.event(event("c", state(State.MOUNTING, State.PULLING)));
    view.event(event("c", { case: "termination", value: create(TerminationSchema, { exitCode: 0, containerTermination: { state: TaskState.TASK_FINISHED } }) }));
    assert.equal(
      text,
      [
        "c  FETCHING",
        "c  PULLING",
        "c  layer bbbbbbbbbbbb pulled 2.0MiB",
        "c  layer aaaaaaaaaaaa pulled 1.0MiB",
        "c  pulled img:1 3.0MiB (3 layers, 1 already present) in 1.5s",
        "c  MOUNTING",
        "c  terminated: exit 0, TASK_FINISHED",
        "",
      ].join("\n"),
    );
  });

  /** A stream that looks like a terminal of `rows` rows and keeps everything written to it. */
  function fakeTerminal(rows = 20): { stream: NodeJS.WriteStream; screen: () => string } {
    let screen = "";
    const stream = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          screen += String(chunk);
          cb();
        },
      }),
      { isTTY: true, columns: 150, rows, cursorTo: () => true, moveCursor: () => true, clearLine: () => true, clearScreenDown: () => true },
    );
    return { stream: stream as unknown as NodeJS.WriteStream, screen: () => screen };
  }

  it("a terminal gets a bar for the image and one per layer, which all end full once the pull is done", async () => {
    const term = fakeTerminal();
    const view = new TtyView(term.stream, "c");
    view.event(event("c", state(State.PULLING)));
    view.event(event("c", pullProgress({ layersTotal: 3, layersDone: 1, bytesCurrent: 512n * 1024n, bytesTotal: 1024n * 1024n, status: "Downloading" }, [layerA("Downloading", 512n * 1024n, 1024n * 1024n), layerB("Waiting", 0n, 0n), layerC])));
    // cli-progress redraws on its own timer (10 fps): wait for the frame, bounded.
    const frame = /img:1  █{15}░{15}  50%  512\.0KiB\/1\.0MiB  layers 1\/3  Downloading/;
    await pollUntil(() => frame.test(term.screen()), 5000, `the 50% frame; screen: ${JSON.stringify(term.screen())}`);
    const screen = term.screen();
    assert.match(screen, /    aaaaaaaaaaaa  █{15}░{15}  50%  512\.0KiB\/1\.0MiB\s+Downloading/);
    assert.match(screen, /    bbbbbbbbbbbb  ░{30}   0%\s+Waiting/);
    // Already present: full, no byte count (the engine gives none).
    assert.match(screen, /    cccccccccccc  █{30} 100%\s+Already exists/);
    // The image's line comes first, then the layers in the server's order.
    const at = (re: RegExp) => screen.search(re);
    assert.ok(at(/img:1  █/) < at(/aaaaaaaaaaaa  /) && at(/aaaaaaaaaaaa  /) < at(/bbbbbbbbbbbb  /) && at(/bbbbbbbbbbbb  /) < at(/cccccccccccc  /), screen);
    view.event(event("c", state(State.MOUNTING, State.PULLING)));
    view.close();
    const final = term.screen();
    assert.match(final, /img:1  █{30} 100%  1\.0MiB\/1\.0MiB  layers 3\/3  done/);
    assert.match(final, /aaaaaaaaaaaa  █{30} 100%  1\.0MiB\/1\.0MiB\s+done/);
    assert.match(final, /bbbbbbbbbbbb  █{30} 100%\s+done/);
    assert.match(final, /c  MOUNTING/);
  });

  it("a failed pull leaves its bars where they were, marked failed", async () => {
    const term = fakeTerminal();
    const view = new TtyView(term.stream, "c");
    view.event(event("c", state(State.PULLING)));
    view.event(event("c", pullProgress({ layersTotal: 1, layersDone: 0, bytesCurrent: 256n * 1024n, bytesTotal: 1024n * 1024n, status: "Downloading" }, [layerA("Downloading", 256n * 1024n, 1024n * 1024n)])));
    view.event(event("c", state(State.DESTROYING, State.PULLING)));
    view.close();
    assert.match(term.screen(), /img:1  █{8}░{22}  25%  256\.0KiB\/1\.0MiB  layers 0\/1  failed/);
    assert.match(term.screen(), /aaaaaaaaaaaa  █{8}░{22}  25%  256\.0KiB\/1\.0MiB\s+failed/);
  });

  it("layer bars are bounded by the terminal's height; the rest are counted on the image's line", async () => {
    const term = fakeTerminal(6);
    const view = new TtyView(term.stream, "c");
    view.event(event("c", state(State.PULLING)));
    const many = Array.from({ length: 10 }, (_, i) => layer(`${i}`.repeat(12), "Waiting", 0n, 0n));
    view.event(event("c", pullProgress({ layersTotal: 70, layersDone: 0, bytesCurrent: 0n, bytesTotal: 0n, status: "Waiting" }, many)));
    view.close();
    const screen = term.screen();
    // Six rows: the state line, the image line, three layer bars (and the cursor's line).
    assert.match(screen, /layers 0\/70 \(67 not shown\)  Waiting/);
    for (const i of [0, 1, 2]) assert.match(screen, new RegExp(`    ${`${i}`.repeat(12)}  `));
    assert.doesNotMatch(screen, /    333333333333  /);
  });
});

function layer(id: string, status: string, bytesCurrent: bigint, bytesTotal: bigint): LayerProgress {
  return create(LayerProgressSchema, { id, status, bytesCurrent, bytesTotal });
}
const layerA = (status: string, current: bigint, total: bigint) => layer("aaaaaaaaaaaa", status, current, total);
const layerB = (status: string, current: bigint, total: bigint) => layer("bbbbbbbbbbbb", status, current, total);
const layerC = layer("cccccccccccc", "Already exists", 0n, 0n);

function pullProgress(totals: { layersTotal: number; layersDone: number; bytesCurrent: bigint; bytesTotal: bigint; status: string }, layers: LayerProgress[]): ContainerEvent["kind"] {
  return { case: "pullProgress", value: create(PullProgressSchema, { image: "img:1", ...totals, layers }) };
}
