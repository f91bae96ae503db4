/**
 * Property-based fuzzing of every berth.v1.Containerizer RPC (and grpc.health.v1.Health/Check)
 * with fast-check, against a real `berth serve` process and the real engine (issue 8, "Hostile
 * bytes and fuzzing").
 *
 * Each property run sends a generated sequence of calls (typed requests built from the protobuf-es
 * schemas with hostile values, and raw bytes: random, garbage, or another method's message, cut or
 * bit-flipped) with a few in flight, then checks:
 * - every answer is OK or a gRPC status with a message, never INTERNAL or UNKNOWN;
 * - a refused launch (an error status, or NOT_SUPPORTED) left no engine container with its id, no
 *   sandbox `<work_dir>/sandboxes/<id>`, no checkpoint `<work_dir>/meta/containers/<id>.pb`, no
 *   directory at a requested path that did not exist before, no docker volume it named;
 * - every accepted container terminates (Wait answers) and Destroy leaves nothing in the engine;
 *   the work dir's checkpoints and sandboxes name only accepted containers;
 * - PruneImages never removes the test image or an excluded image;
 * - Berth never tried to connect to a link-local, unspecified, multicast or public address, nor to
 *   a host name other than '.invalid' ones (a network guard loaded into the process stops and
 *   records every such connect: nothing leaves the machine);
 * - the process is alive and Health answers SERVING.
 *
 * Replay: the seed (and fast-check's path) are printed on failure:
 *   BERTH_FUZZ_SEED=<seed> [BERTH_FUZZ_PATH=<path>] npm test -- --grep fuzz
 * BERTH_FUZZ_CALLS overrides the number of generated calls (default 10,000, in runs of 0–240 calls);
 * BERTH_FUZZ_NO_SHRINK=1 reports the first failing run as it is, without shrinking it;
 * BERTH_FUZZ_SHRINK_BUDGET caps the candidates shrinking runs (default 150).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  credentials,
  makeGenericClientConstructor,
  status,
  type CallOptions,
  type Client,
  type ClientReadableStream,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type Dockerode from "dockerode";
import fc from "fast-check";
import {
  Containerizer,
  DestroyRequestSchema,
  LaunchResult,
  PruneImagesRequestSchema,
  State,
  type LaunchRequest,
  type LaunchResponse,
  type PruneImagesResponse,
  type WatchResponse,
} from "../../src/gen/berth/v1/containerizer_pb.js";
import { Image_Type } from "../../src/gen/mesos/v1/mesos_pb.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { BerthClient } from "../harness/berth-client.js";
import { launchRequest } from "../harness/launches.js";
import { BerthProcess } from "../harness/process-berth.js";
import {
  decodeLaunch,
  fuzzOpArb,
  launchIsSafe,
  materializeBytes,
  materializeLaunch,
  materializeRequest,
  type FuzzContext,
  type FuzzOp,
  type LaunchNotes,
  type RawMethod,
} from "../harness/fuzz-arbitraries.js";
import {
  answerProblem,
  connectFault,
  engineContainers,
  entries,
  readNetLog,
  refusalLeftovers,
  show,
  volumesNamed,
  type Refusal,
} from "../harness/fuzz-invariants.js";

const HealthClient = makeGenericClientConstructor(healthService, "Health");

/** Calls in flight at once during a run. */
const CONCURRENCY = 8;
/** Generated calls per CI run (the issue asks for at least 10,000), and the most calls in one run. */
const MIN_CALLS = 10_000;
const OPS_MAX = 240;
/** Shrinking runs at most this many candidates (each is a whole run against the server). */
const SHRINK_BUDGET = 150;
/** Short deadlines the generator picks for Wait and Watch are at most this; Destroy and the end-of-run Wait get this bound against a hang. */
const HANG_GUARD_MS = 120_000;

const NET_GUARD = fileURLToPath(new URL("../harness/fuzz-net-guard.js", import.meta.url));

/** A client whose requests and responses are raw bytes, for every method of the service. */
function rawServiceDefinition(): ServiceDefinition {
  const def: Record<string, unknown> = {};
  for (const m of Containerizer.methods) {
    def[m.localName] = {
      path: `/${Containerizer.typeName}/${m.name}`,
      requestStream: false,
      responseStream: m.methodKind === "server_streaming",
      requestSerialize: (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
      originalName: m.name,
    };
  }
  return def as unknown as ServiceDefinition;
}
const RawClient = makeGenericClientConstructor(rawServiceDefinition(), "RawContainerizer");

type UnaryFn = (req: unknown, options: CallOptions, cb: (err: ServiceError | null, res: unknown) => void) => void;
type StreamFn = (req: unknown, options: CallOptions) => ClientReadableStream<unknown>;

function unaryCall<T>(client: Client, method: string, request: unknown, options: CallOptions = {}): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryFn>)[method]!.bind(client);
  return new Promise((resolve, reject) => fn(request, options, (err, res) => (err ? reject(err) : resolve(res as T))));
}

/** Opens a server stream until its first message (then cancels), its end, or its error. */
function briefStream(client: Client, method: string, request: unknown, deadlineMs: number): Promise<{ err?: ServiceError; messages: number }> {
  const fn = (client as unknown as Record<string, StreamFn>)[method]!.bind(client);
  const stream = fn(request, { deadline: Date.now() + deadlineMs });
  return new Promise((resolve) => {
    let messages = 0;
    let cancelled = false;
    stream.on("data", () => {
      messages += 1;
      if (!cancelled) {
        cancelled = true;
        stream.cancel();
      }
    });
    stream.on("end", () => resolve({ messages }));
    stream.on("error", (err: ServiceError) => resolve({ err: cancelled && err.code === status.CANCELLED ? undefined : err, messages }));
  });
}

describe("fuzz: every RPC with generated hostile requests against a real berth serve (fast-check)", function () {
  // A hang guard only: the suite takes about a minute (see the README of the issue's PR).
  this.timeout(20 * 60_000);

  let docker: Dockerode;
  let images: TestImages;
  let base: string;
  let workDir: string;
  let canaryRoot: string;
  let netLog: string;
  let berth: BerthProcess;
  let agentId: string;
  let client: BerthClient;
  let raw: Client;
  let health: Client;
  const residentId = `fz-resident-${process.pid}`;
  let tokenCounter = 0;
  const allAccepted = new Set<string>();
  /** Sandboxes of accepted launches, as Berth answered them. */
  const acceptedSandboxes = new Set<string>();
  let netOffset = 0;
  let requests = 0;
  let skipped = 0;
  /** Answers by method and code (or launch result), for the summary line. */
  const tally = new Map<string, number>();
  const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);

  before(async function () {
    this.timeout(5 * 60_000);
    docker = await ensureEngine();
    images = await ensureTestImages(docker);
    base = await mkdtemp(path.join(os.tmpdir(), "berth-fuzz-"));
    workDir = path.join(base, "work");
    canaryRoot = path.join(base, "canary");
    netLog = path.join(base, "net-guard.log");
    const socket = `unix://${path.join(workDir, "berth.sock")}`;
    berth = new BerthProcess(["serve", "--work_dir", workDir, "--listen", socket, "--docker_stop_timeout", "1secs"], {
      ...process.env,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${NET_GUARD}`.trim(),
      BERTH_FUZZ_NET_LOG: netLog,
    });
    agentId = (await berth.serving()).agent_id;
    client = new BerthClient(socket);
    raw = new RawClient(socket, credentials.createInsecure()) as Client;
    health = new HealthClient(socket, credentials.createInsecure()) as Client;
    // One container kept RUNNING, for Update, Usage and Status on a live container.
    const launched = await client.launch(launchRequest(residentId, { image: images.busybox, shell: "exec sleep 600" }));
    assert.equal(launched.result, LaunchResult.LAUNCHED);
    allAccepted.add(residentId);
    acceptedSandboxes.add(launched.sandboxDirectory);
    await client.collect([residentId], (e) => e.kind.case === "stateChanged" && e.kind.value.state === State.RUNNING);
  });

  after(async function () {
    this.timeout(5 * 60_000);
    if (client) await client.destroy(residentId, { deadline: Date.now() + HANG_GUARD_MS }).catch(() => undefined);
    client?.close();
    raw?.close();
    health?.close();
    if (berth) {
      berth.kill("SIGKILL");
      await berth.exited;
    }
    if (docker && agentId) await removeTestContainers(docker, { [LABEL_AGENT_ID]: agentId });
    if (docker) {
      for (const name of await volumesNamed(docker, "fzv-")) await docker.getVolume(name).remove().catch(() => undefined);
    }
    if (base) await rm(base, { recursive: true, force: true });
  });

  function newContext(run: number): FuzzContext {
    return {
      workDir,
      canaryRoot,
      testImage: images.busybox,
      runToken: `${process.pid.toString(36)}r${run}`,
      next: () => (tokenCounter += 1).toString(36),
      accepted: [],
      residentId,
    };
  }

  /** One run: the calls, then the end-of-run checks and cleanup. Returns the problems found. */
  async function runOps(ops: FuzzOp[], ctx: FuzzContext): Promise<string[]> {
    const problems: string[] = [];
    const refusals: Refusal[] = [];
    const acceptedNotes: LaunchNotes[] = [];
    const excludedAlways = images.busybox;

    const note = (p: string | undefined) => p !== undefined && problems.push(p);
    const deadlineCodes = new Set<number>([status.DEADLINE_EXCEEDED]);

    function recordLaunch(id: string | undefined, notes: LaunchNotes, outcome: { res?: LaunchResponse; err?: unknown }, how: string): void {
      if (outcome.err !== undefined) {
        count(`launch:${status[(outcome.err as ServiceError).code] ?? "?"}`);
        note(answerProblem(how, outcome.err));
        refusals.push({ id, ...notes, answer: show((outcome.err as ServiceError).details ?? String(outcome.err)) });
        return;
      }
      const res = outcome.res!;
      count(`launch:${LaunchResult[res.result]}`);
      if (res.result === LaunchResult.LAUNCHED && id !== undefined) {
        ctx.accepted.push(id);
        allAccepted.add(id);
        acceptedSandboxes.add(res.sandboxDirectory);
        acceptedNotes.push(notes);
      } else if (res.result === LaunchResult.NOT_SUPPORTED) {
        refusals.push({ id, ...notes, answer: "NOT_SUPPORTED" });
      } else if (res.result !== LaunchResult.ALREADY_LAUNCHED && res.result !== LaunchResult.LAUNCHED) {
        problems.push(`${how}: answered result ${res.result} for ${show(id)}`);
      }
    }

    async function launch(request: LaunchRequest, id: string | undefined, notes: LaunchNotes): Promise<void> {
      requests += 1;
      try {
        recordLaunch(id, notes, { res: await unaryCall<LaunchResponse>(client.raw, "launch", request) }, "Launch");
      } catch (err) {
        recordLaunch(id, notes, { err }, `Launch ${show(id)}`);
      }
    }

    async function unary(method: string, request: unknown, label: string, options: CallOptions = {}, allowed: ReadonlySet<number> = new Set()): Promise<unknown> {
      requests += 1;
      try {
        const res = await unaryCall(client.raw, method, request, options);
        count(`${method}:OK`);
        return res;
      } catch (err) {
        count(`${method}:${status[(err as ServiceError).code] ?? "?"}`);
        note(answerProblem(label, err, allowed));
        return undefined;
      }
    }

    function checkPrune(res: PruneImagesResponse | undefined, excluded: string[]): void {
      for (const removed of res?.removedImages ?? []) {
        if (removed === images.busybox || excluded.includes(removed)) problems.push(`PruneImages removed '${removed}', which was excluded (${show(excluded)})`);
      }
    }

    async function execute(op: FuzzOp): Promise<void> {
      switch (op.op) {
        case "launch": {
          const { request, id, notes } = materializeLaunch(op.plan, ctx);
          if (!launchIsSafe(request, ctx)) {
            skipped += 1;
            return;
          }
          await launch(request, id, notes);
          return;
        }
        case "wait": {
          const req = materializeRequest(op, ctx)!;
          await unary("wait", req.message, "Wait", { deadline: Date.now() + op.deadlineMs }, deadlineCodes);
          return;
        }
        case "destroy": {
          const req = materializeRequest(op, ctx)!;
          await unary("destroy", req.message, "Destroy", { deadline: Date.now() + HANG_GUARD_MS });
          return;
        }
        case "watch": {
          const req = materializeRequest(op, ctx)!;
          requests += 1;
          const { err } = await briefStream(client.raw, "watch", req.message, op.deadlineMs);
          if (err) note(answerProblem("Watch", err, deadlineCodes));
          return;
        }
        case "containers":
        case "status":
        case "update":
        case "usage": {
          const req = materializeRequest(op, ctx)!;
          await unary(op.op, req.message, op.op);
          return;
        }
        case "prune": {
          // PruneImages removes only images Berth pulled; the test image (which other suites pull
          // again when missing) is always excluded, besides the generated names.
          const excluded = [...op.excluded.map((e) => e.name), excludedAlways];
          const request = create(PruneImagesRequestSchema, { excludedImages: excluded.map((name, i) => ({ type: op.excluded[i]?.type ?? Image_Type.DOCKER, docker: { name } })) });
          checkPrune((await unary("pruneImages", request, "PruneImages")) as PruneImagesResponse | undefined, excluded);
          return;
        }
        case "health": {
          requests += 1;
          try {
            await unaryCall(health, "check", { service: op.service });
          } catch (err) {
            note(answerProblem(`Health/Check ${show(op.service)}`, err));
          }
          return;
        }
        case "raw":
          await executeRaw(op.method, materializeBytes(op.bytes, ctx));
          return;
      }
    }

    async function executeRaw(method: RawMethod, bytes: Uint8Array): Promise<void> {
      // Decode as the server will (same protobuf-es): launches must be as harmless as typed ones,
      // the resident container is not destroyed, and the test image stays excluded from a prune.
      let notes: LaunchNotes = { freshPaths: [], volumeNames: [] };
      let launchId: string | undefined;
      if (method === "launch") {
        const decoded = decodeLaunch(bytes);
        if (decoded && !launchIsSafe(decoded, ctx)) {
          skipped += 1;
          return;
        }
        launchId = decoded?.containerId?.parent === undefined ? decoded?.containerId?.value : undefined;
      } else if (method === "destroy") {
        try {
          if (fromBinary(DestroyRequestSchema, bytes).containerId?.value === residentId) return void (skipped += 1);
        } catch {
          /* undecodable: refused by the server too */
        }
      } else if (method === "pruneImages") {
        try {
          const req = fromBinary(PruneImagesRequestSchema, bytes);
          req.excludedImages.push(create(PruneImagesRequestSchema, { excludedImages: [{ type: Image_Type.DOCKER, docker: { name: images.busybox } }] }).excludedImages[0]!);
          bytes = toBinary(PruneImagesRequestSchema, req);
        } catch {
          /* undecodable: refused by the server too */
        }
      }
      if (method === "watch") {
        requests += 1;
        const { err } = await briefStream(raw, "watch", bytes, 250);
        if (err) note(answerProblem("Watch (raw bytes)", err, deadlineCodes));
        return;
      }
      requests += 1;
      const options: CallOptions = method === "wait" ? { deadline: Date.now() + 250 } : method === "destroy" ? { deadline: Date.now() + HANG_GUARD_MS } : {};
      try {
        const res = (await unaryCall<Buffer>(raw, method, bytes, options)) as Buffer;
        if (method === "launch") recordLaunch(launchId, notes, { res: fromBinary(Containerizer.method.launch.output, res) }, "Launch (raw bytes)");
      } catch (err) {
        if (method === "launch") recordLaunch(launchId, notes, { err }, `Launch (raw ${bytes.length} bytes)`);
        else note(answerProblem(`${method} (raw ${bytes.length} bytes)`, err, method === "wait" ? deadlineCodes : new Set()));
      }
      notes = { freshPaths: [], volumeNames: [] };
    }

    // The calls, CONCURRENCY at a time, in generated order.
    let nextIndex = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (nextIndex < ops.length) {
          const op = ops[nextIndex++]!;
          try {
            await execute(op);
          } catch (err) {
            problems.push(`${op.op}: the test harness failed: ${(err as Error).stack ?? String(err)}`);
          }
        }
      }),
    );

    // Refusals left nothing in the work dir or at requested paths (ids accepted by another call excepted).
    for (const r of refusals) {
      if (r.id !== undefined && allAccepted.has(r.id)) continue;
      const left = refusalLeftovers(workDir, r);
      if (left.length > 0) problems.push(`refused launch ${show(r.id)} (${r.answer}) left ${show(left, 400)}`);
    }

    // Every accepted container terminates, and Destroy leaves nothing in the engine.
    for (const id of ctx.accepted) {
      requests += 2;
      try {
        await unaryCall(client.raw, "wait", create(Containerizer.method.wait.input, { containerId: { value: id } }), { deadline: Date.now() + HANG_GUARD_MS });
      } catch (err) {
        problems.push(`Wait for accepted container '${id}' did not answer its termination: ${show((err as ServiceError).details ?? String(err))}`);
      }
      try {
        await unaryCall(client.raw, "destroy", create(Containerizer.method.destroy.input, { containerId: { value: id } }), { deadline: Date.now() + HANG_GUARD_MS });
      } catch (err) {
        problems.push(`Destroy of accepted container '${id}' failed: ${show((err as ServiceError).details ?? String(err))}`);
      }
    }
    const engineLeft = (await engineContainers(docker, agentId)).filter((c) => c.containerId !== residentId);
    for (const c of engineLeft) {
      const why = allAccepted.has(c.containerId) ? "accepted, destroyed, but still in the engine" : "never accepted";
      problems.push(`engine container ${c.id.slice(0, 12)} for '${c.containerId}' (${c.state}) is left: ${why}`);
    }

    // Checkpoints and sandboxes name only accepted containers.
    for (const name of await entries(path.join(workDir, "meta", "containers"))) {
      const id = name.replace(/\.pb$/, "");
      if (name.endsWith(".pb") && !allAccepted.has(id)) problems.push(`checkpoint ${name} names a container that was never accepted`);
    }
    const sandboxesDir = path.join(workDir, "sandboxes");
    const sandboxRoots = new Set([...acceptedSandboxes].filter((s) => s.startsWith(`${sandboxesDir}/`)).map((s) => s.slice(sandboxesDir.length + 1).split("/")[0]!));
    for (const name of await entries(sandboxesDir)) {
      if (!allAccepted.has(name) && !sandboxRoots.has(name)) problems.push(`sandbox directory sandboxes/${show(name)} belongs to no accepted container`);
    }

    // Docker volumes: only accepted launches may have made them; then the suite removes them.
    const acceptedVolumes = new Set(acceptedNotes.flatMap((n) => n.volumeNames));
    for (const name of await volumesNamed(docker, `fzv-${ctx.runToken}-`)) {
      if (!acceptedVolumes.has(name)) problems.push(`docker volume '${name}' was made for a launch that was refused`);
      await docker.getVolume(name).remove().catch(() => undefined);
    }

    // Containers() lists only accepted containers.
    requests += 1;
    const listed = await client.containers();
    for (const c of listed.containers) {
      const id = c.containerId?.value ?? "";
      if (!allAccepted.has(id)) problems.push(`Containers() lists '${id}', which was never accepted`);
    }

    // No connect Berth must not make.
    const { attempts, next } = readNetLog(netLog, netOffset);
    netOffset = next;
    for (const a of attempts) note(connectFault(a));

    // Still alive and serving.
    if (!berth.running) problems.push(`berth serve exited: ${show(await berth.exited)}; stderr tail:\n${berth.stderr.slice(-2000)}`);
    else {
      requests += 1;
      try {
        const res = await unaryCall<{ status: string }>(health, "check", { service: "" });
        if (res.status !== "SERVING") problems.push(`Health/Check answered ${res.status}`);
      } catch (err) {
        problems.push(`Health/Check failed: ${show((err as ServiceError).details ?? String(err))}`);
      }
    }
    return problems;
  }

  it("answers every call with OK or a proper status, leaves nothing behind a refusal, and cleans up what it accepted", async () => {
    const seed = process.env.BERTH_FUZZ_SEED ? Number(process.env.BERTH_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
    const replayPath = process.env.BERTH_FUZZ_PATH || undefined;
    const minCalls = process.env.BERTH_FUZZ_CALLS ? Number(process.env.BERTH_FUZZ_CALLS) : MIN_CALLS;
    // Runs have 0–240 calls (so that shrinking can remove calls down to the few that matter); runs
    // are executed until `minCalls` calls were generated, which takes about 100 runs.
    const numRuns = Math.max(100, Math.ceil(minCalls / 20));
    let generated = 0;
    const shrinkBudget = process.env.BERTH_FUZZ_SHRINK_BUDGET ? Number(process.env.BERTH_FUZZ_SHRINK_BUDGET) : SHRINK_BUDGET;
    let run = 0;
    let failed = false;
    let shrinkRuns = 0;
    // Shrinking removes calls from the failing sequence (each call is kept as generated: shrinking
    // inside the deep request values would enumerate far more candidates than the budget runs).
    const property = fc.asyncProperty(fc.array(fc.noShrink(fuzzOpArb), { maxLength: OPS_MAX, size: "max" }), async (ops) => {
      // Past the shrink budget, candidates are not run: fast-check then reports the smallest
      // failing sequence found so far (its path replays it).
      if (failed && ++shrinkRuns > shrinkBudget) return;
      // Once enough calls were generated and sent, the remaining runs are not executed.
      if (!failed && generated >= minCalls) return;
      generated += ops.length;
      run += 1;
      const problems = await runOps(ops, newContext(run));
      failed ||= problems.length > 0;
      if (problems.length > 0) throw new Error(`${problems.length} invariant(s) broken (run of ${ops.length} calls):\n- ${[...new Set(problems)].join("\n- ")}`);
    });
    try {
      await fc.assert(property, { seed, numRuns, path: replayPath, endOnFailure: process.env.BERTH_FUZZ_NO_SHRINK === "1" });
    } catch (err) {
      const message = (err as Error).message;
      const failingPath = /path: "([^"]*)"/.exec(message)?.[1];
      (err as Error).message =
        `fuzz failed with seed ${seed}; replay: BERTH_FUZZ_SEED=${seed}${failingPath ? ` BERTH_FUZZ_PATH=${failingPath}` : ""} npm test -- --grep fuzz\n` + message;
      throw err;
    }
    const summary = [...tally.entries()].sort().map(([k, v]) => `${k}=${v}`).join(" ");
    console.log(`      fuzz: seed ${seed}, ${run} runs, ${generated} generated calls, ${requests} requests, ${allAccepted.size - 1} launches accepted, ${skipped} skipped; ${summary}`);
    assert.ok(berth.running, "berth serve is still running");
    if (replayPath === undefined) {
      assert.ok(generated >= minCalls, `only ${generated} calls were generated (${minCalls} expected)`);
      assert.ok(requests >= minCalls, `only ${requests} requests were sent (${minCalls} expected)`);
    }
    // The generator keeps launches harmless by construction; a skipped one would be a generator bug.
    assert.ok(skipped <= requests / 100, `${skipped} generated launches were judged unsafe and skipped`);
  });
});
