import { closeSync, constants, mkdirSync, openSync } from "node:fs";
import { lchown, lstat, mkdir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { isFieldSet } from "@bufbuild/protobuf";
import { ContainerTerminationSchema } from "../gen/mesos/slave/containerizer_pb.js";
import { TaskState } from "../gen/mesos/v1/mesos_pb.js";
import { EngineRequestFailed, EngineUnreachable, type CreateSpec, type EnginePort, type LogStreams } from "../docker/engine-port.js";
import type { ImagePuller } from "../docker/image-puller.js";
import type { FetchUri, FetchOptions } from "../fetcher/fetcher.js";
import { followOutput, outputWatermark, STDERR_FILE, STDOUT_FILE } from "../logger/sandbox-output.js";
import type { OutputRegistry } from "../logger/live-output.js";
import type { RotationOptions } from "../logger/rotating-file.js";
import { DestroyRequested, type Container } from "./container.js";
import type { Gate } from "./bounded.js";
import { effectiveUser } from "./docker-parameters.js";
import { LaunchDeadline, LaunchTimedOut } from "./launch-deadline.js";
import type { ContainerState } from "./state.js";
import { chownTree, resolveSandboxOwner, type SandboxOwner } from "./sandbox-owner.js";
import { taskStatus } from "./task-status.js";
import { limitOf, limitTermination } from "./limitation.js";
import { runningTaskStatus } from "./running-status.js";
import { destroyedBeforeRunning, exitTermination, launchFailed, unknownFate, type ExitFacts, type Termination } from "./termination.js";

/**
 * Why Berth killed a RUNNING task whose health checks failed (the launch signal's abort reason):
 * a destroy, so the task ends TASK_KILLED, with `healthy` false as Mesos' docker executor sends it.
 */
export class KilledUnhealthy extends DestroyRequested {
  constructor(readonly why: string) {
    super(`killed: ${why}`);
  }
}

/**
 * Why a launch stopped where it was: Berth itself is stopping (in-process). As after a process
 * exit, nothing more is recorded, published or removed; the next start's recovery abandons the
 * launch (or adopts a container whose start was already recorded).
 */
export class BerthStopping extends Error {
  override readonly name = "BerthStopping";
}

/** Fetches URIs into a sandbox (the fetcher's signature, injectable for tests). */
export type FetchFn = (uris: FetchUri[], sandbox: string, options: FetchOptions) => Promise<void>;

/** What the pipeline needs from the rest of Berth. */
export interface PipelineDeps {
  engine: EnginePort;
  /** Whether an image is present, remembered between launches (default: asked of the engine each time). */
  images?: Pick<EnginePort, "imagePresent">;
  puller: ImagePuller;
  fetch: FetchFn;
  agentId: string;
  /** Mount point of the sandbox inside the container (--sandbox_directory). */
  containerSandbox: string;
  stopTimeoutMs: number;
  removeDelayMs: number;
  launchTimeoutMs: number;
  /** How long to wait, after an exit, for the output streams to drain into the sandbox. */
  outputGraceMs: number;
  /** --container_log_max_size / --container_log_max_files (default: no rotation). */
  logRotation?: RotationOptions;
  /** Where Logs finds the writers of the sandboxes' output files. */
  outputs?: OutputRegistry;
  log: Logger;
  /** Registers the engine id so that engine events reach this container. */
  bindEngineId(container: Container, engineId: string): void;
  /**
   * Durably records the container's facts (with `state`/`termination` overriding its current
   * ones) before the step they describe takes effect.
   */
  checkpoint(container: Container, overrides?: { state?: ContainerState; termination?: Termination }): Promise<void>;
  /**
   * Bounds the creates and starts in flight: the engine does them one core at a time anyway, and
   * a launch storm of hundreds would otherwise queue them inside the engine, where every call's
   * own timeout keeps running (50 at once here pushed single starts past 30 s). The launch timeout
   * does not run while a launch waits for a slot.
   */
  engineSlots: Gate;
  /**
   * Berth stopping (in-process, as a process exit would): ends every output capture and closes its
   * files (the containers keep running); `track` is handed each capture's end, for stop() to await.
   */
  shutdown?: { signal: AbortSignal; track(done: Promise<void>): void };
}

/**
 * Runs one container from FETCHING to TERMINATED. It is the only writer of the container's
 * transitions after the launch was accepted, and it always ends in `terminate`: every failure,
 * destroy or timeout becomes a termination, and whatever it created in the engine is removed.
 * `createSpec` is the engine's create options the launch was admitted with (built once, at admission).
 */
export async function runContainer(c: Container, deps: PipelineDeps, createSpec: CreateSpec, recorded: Promise<void>): Promise<void> {
  const log = deps.log.child({ container_id: c.id });
  const signal = c.launchAbort.signal;
  const deadline = new LaunchDeadline(deps.launchTimeoutMs, (reason) => {
    log.warn({ stage: reason.stage }, "launch timed out; destroying");
    if (c.state !== "DESTROYING" && c.state !== "TERMINATED") c.transition("DESTROYING", reason.message);
    c.launchAbort.abort(reason);
  });
  let stage: ContainerState = "FETCHING";
  let started = false;
  const output = new OutputCapture();

  if (c.spec.taskId !== undefined) c.publishTaskStatus({ type: "task_status", status: taskStatus(c.spec, deps.agentId, TaskState.TASK_STARTING) });

  // Whether the image is present is known from memory once asked (ImagePresence); otherwise, with
  // no URIs, the engine's answer comes while the sandbox is made. With URIs it waits, so a long
  // fetch never acts on a stale answer.
  const images = deps.images ?? deps.engine;
  const earlyPresence = !c.spec.forcePull && c.spec.uris.length === 0 ? images.imagePresent(c.spec.image) : undefined;
  earlyPresence?.catch(() => undefined);

  try {
    deadline.run("FETCHING");
    // The sandbox and its empty output files are a handful of local metadata calls: made in place
    // they cost microseconds, where each trip through the thread pool costs a few hundred (five of
    // them were 1.5 ms of every launch's critical path).
    prepareSandbox(c.sandbox);
    // The task's user owns its sandbox (as Mesos chowns it), so a non-root task can write there;
    // the fetcher runs as root, so what it fetched is handed over too.
    // The launch's user, or a `user` Docker parameter's (admission judged the same one).
    const taskUser = effectiveUser(c.spec)?.user;
    const owner = await resolveSandboxOwner(taskUser);
    if (taskUser !== undefined && !owner) log.info({ user: taskUser }, "the task's user is not known on the host; its sandbox stays root's");
    // Nothing is fetched for a launch without URIs (not even the sandbox's real path is looked up).
    if (c.spec.uris.length > 0) {
      // Local files are read with the task user's rights (an unknown user reads as nobody); each
      // URI placed is an event (with its cache outcome); the fetcher's lines go to the sandbox's stderr.
      await deps.fetch(c.spec.uris, c.sandbox, {
        signal,
        user: taskUser === undefined ? undefined : { name: taskUser, uid: owner?.uid, gid: owner?.gid },
        onFetched: (result) => c.publishFetch({ type: "fetch", result }),
        logFile: STDERR_FILE,
      });
    }
    signal.throwIfAborted();
    if (owner) await chownTree(c.sandbox, owner);

    stage = "PULLING";
    c.transition("PULLING");
    deadline.pause();
    const present = !c.spec.forcePull && (await (earlyPresence ?? images.imagePresent(c.spec.image)));
    signal.throwIfAborted();
    if (!present) {
      log.info({ image: c.spec.image }, "pulling image");
      await deps.puller.pull(c.spec.image, { signal, onProgress: (progress) => c.publishPull({ type: "pull", progress }) });
    }
    signal.throwIfAborted();

    stage = "MOUNTING";
    c.transition("MOUNTING");
    deadline.run("MOUNTING");
    await makeSandboxMountSources(c.sandbox, createSpec.HostConfig.Mounts.map((m) => m.Source), owner);
    // Destroyed while the mount sources were made: create nothing that would only be removed.
    signal.throwIfAborted();
    // Time spent queued behind Berth's own bound on engine calls is not the launch's: the clock
    // stops while waiting for a slot (a Destroy still ends the wait) and runs during the call.
    const inSlot = <T>(call: () => Promise<T>) => (): Promise<T> => {
      deadline.run("MOUNTING");
      return call();
    };
    deadline.pause();
    let engineId: string;
    try {
      // No record of the stage is written here: it would be a second fsync beside the engine's own
      // during the create, and recovery tells MOUNTING from the engine's container of the launch.
      engineId = await deps.engineSlots(inSlot(() => deps.engine.createContainer(createSpec)), { signal });
    } catch (err) {
      await removeAfterFailedCreate(deps, log, createSpec.name, err);
      throw err;
    }
    c.engineId = engineId;
    deps.bindEngineId(c, engineId);
    signal.throwIfAborted();
    // The output is captured through the engine's attach, opened before the start so that no byte
    // is missed (the engine's own copy, capped and rotating, is never read back for a launch). It
    // overlaps the launch record's fsync and the RUNNING checkpoint; the start waits for it.
    const attached = output.attach(deps, c, log, signal);
    attached.catch(() => undefined);
    // Nothing runs before the launch itself is durable. The create overlaps the record's fsync
    // (one disk flush off every launch): a crash before it is durable leaves at most a created,
    // never started container of a launch that was never answered LAUNCHED, which recovery
    // removes as an orphan (it has the agent's labels and no record).
    await recorded;
    signal.throwIfAborted();
    // An attach the engine refused fails the launch before anything runs.
    await attached;
    deadline.pause();
    // Starts go before queued creates: a launch storm then brings containers up one by one
    // instead of creating all of them before starting any.
    const starting = deps.engineSlots(inSlot(() => deps.engine.startContainer(engineId)), { signal, urgent: true });
    // RUNNING (with the engine id) is made durable while the engine starts the container, so
    // neither the fsync nor the record's encoding costs launch time: it begins on the next turn of
    // the event loop, once the start request is written (the request goes out on a process tick,
    // after this turn's microtasks). A crash in between leaves a record short of RUNNING, or a
    // RUNNING record of a container the engine shows as "created": recovery treats either as a
    // launch caught mid-way.
    const running = new Promise<void>((resolve, reject) => setImmediate(() => deps.checkpoint(c, { state: "RUNNING" }).then(resolve, reject)));
    running.catch(() => undefined);
    await starting;
    started = true;
    // TASK_RUNNING carries the engine's inspect, as Mesos' docker executor sends it: the inspect
    // runs while the RUNNING record is made durable, and never fails (it is left out instead).
    const runningStatus = c.spec.taskId !== undefined ? runningTaskStatus(c, deps.engine, deps.agentId, log) : undefined;
    await running;
    const taskRunning = await runningStatus;
    signal.throwIfAborted();
    deadline.clear();
    c.transition("RUNNING");
    log.info({ engine_id: engineId }, "container running");
    if (taskRunning) c.publishTaskStatus({ type: "task_status", status: taskRunning });
  } catch (err) {
    deadline.clear();
    const reason: unknown = signal.aborted ? signal.reason : err;
    if (reason instanceof BerthStopping) {
      await output.close();
      log.info({ stage }, "Berth is stopping; the launch is left to the next start's recovery");
      return;
    }
    if (!started) {
      await output.close();
      await finishBeforeRunning(c, deps, log, stage, reason);
      return;
    }
    // Destroyed (or timed out) while starting: the process may be up; kill it and report its exit.
    log.info({ stage }, "aborted while starting; killing the container");
    if (c.state !== "DESTROYING") c.transition("DESTROYING", messageOf(reason));
    await deps.engine.killContainer(c.engineId!).catch((e: unknown) => log.warn({ err: e }, "kill failed"));
  }
  // Returned, not awaited: the launch's frame (its closures and locals) is not kept alive for the
  // container's whole life.
  return superviseExit(c, deps, log, output);
}

/**
 * Re-attaches to a container found running (or exited) after a restart: follows its output from
 * where the sandbox files stopped, then reports its exit as for any other container.
 */
export async function adoptContainer(c: Container, deps: PipelineDeps, attach: Gate): Promise<void> {
  const log = deps.log.child({ container_id: c.id });
  const output = new OutputCapture();
  // Re-attaching to hundreds of containers at once would queue hundreds of log requests in front
  // of everything else the engine and Berth do right after a restart: the gate bounds them. The
  // exit is still seen meanwhile (it comes from the events stream), and the output is not lost:
  // the follow starts from where the sandbox files stopped.
  await attach(async () => {
    const since = await outputWatermark(c.sandbox);
    await output.follow(deps, c, log, since);
  });
  return superviseExit(c, deps, log, output);
}

/** Waits for the exit, drains the output, records the termination, removes, publishes. */
async function superviseExit(c: Container, deps: PipelineDeps, log: Logger, output: OutputCapture): Promise<void> {
  const signal = c.launchAbort.signal;
  const facts = await c.exit;
  await output.drain(deps.outputGraceMs, log);
  let termination: Termination;
  if (facts === undefined) {
    termination = c.killedByDestroy ? destroyedBeforeRunning("RUNNING") : unknownFate("The engine no longer knows the container; its exit status is unknown");
  } else {
    const oomKilled = facts.oomKilled || c.oomSeen || (await wasOomKilled(deps.engine, c.engineId!, facts));
    const timedOut = signal.aborted && signal.reason instanceof LaunchTimedOut;
    const limit = limitOf(signal);
    termination = timedOut
      ? launchFailed(signal.reason.stage, signal.reason.message)
      : limit
        ? limitTermination(limit, facts)
        : exitTermination({ exitCode: facts.exitCode, oomKilled }, c.killedByDestroy, c.resources.memMb, signal.reason instanceof KilledUnhealthy ? signal.reason.why : undefined);
  }
  await finish(c, deps, log, termination);
}

/**
 * Publishes the termination, records it durably and removes the engine container — in an order
 * that never loses it. A container that ran is published first: until its record is durable the
 * engine still holds the exited container (exit code, OOM flag), from which recovery derives the
 * same termination, so the fsync stays off the exit's path; only then is the engine container
 * removed. A launch that never ran has no such evidence: it is recorded first, and removed before
 * the termination is published (its creator may be waiting to see nothing left). Destroy answers
 * only once the removal is done.
 */
async function finish(c: Container, deps: PipelineDeps, log: Logger, termination: Termination, neverRan = false): Promise<void> {
  const record = () =>
    deps.checkpoint(c, { state: "TERMINATED", termination }).then(
      () => true,
      (err: unknown) => {
        log.error({ err }, "could not checkpoint the termination");
        return false;
      },
    );
  if (neverRan) {
    await record();
    await removeFromEngine(c, deps, log, true);
  }
  // A container that ran is published at once; its record is made durable after, and only then is
  // the exited container removed from the engine: until the record is durable, that exited
  // container is the evidence a restarted Berth reads its real exit from.
  c.terminate(termination, finalTaskStatus(c, deps, termination));
  log.info({ state: TaskState[termination.containerTermination.state], status: termination.containerTermination.status }, "container terminated");
  if (!neverRan) {
    if (await record()) await removeFromEngine(c, deps, log);
    else log.warn({ engine_id: c.engineId }, "the exited container is kept in the engine: its termination is not recorded, and a restarted Berth reads the exit from it");
  }
  c.markRemoved();
}

/** The container's output on its way into the sandbox files. */
class OutputCapture {
  private done: Promise<void> | undefined;
  private readonly abort = new AbortController();

  /**
   * Attaches to a created container's output and starts copying it; resolves once the engine has
   * subscribed the attach (the container may then start), rejects when the engine refused it or
   * `launch` aborted first. A stream that breaks while the container runs (an engine restart) is
   * followed again through the engine's logs from the sandbox files' watermark.
   */
  attach(deps: PipelineDeps, c: Container, log: Logger, launch: AbortSignal): Promise<void> {
    const tty = c.spec.containerInfo.ttyInfo !== undefined;
    // The exit, once the engine's `die` reached the container, tells the attach's end from a broken
    // connection without another engine round trip on the exit's path.
    const first = deps.engine.attachOutput(c.engineId!, this.abort.signal, tty, c.exit);
    first.catch(() => undefined);
    this.follow(deps, c, log, undefined, first);
    if (launch.aborted) return Promise.reject(launch.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(launch.reason);
      launch.addEventListener("abort", onAbort, { once: true });
      first.then(
        () => {
          launch.removeEventListener("abort", onAbort);
          resolve();
        },
        (err: unknown) => {
          launch.removeEventListener("abort", onAbort);
          reject(new Error(`could not attach to the container's output: ${messageOf(err)}`, { cause: err }));
        },
      );
    });
  }

  /** Ends the capture (a launch that never started) and waits for its files to be closed. */
  async close(): Promise<void> {
    this.abort.abort(new Error("the container never started"));
    await this.done;
  }

  /**
   * Starts copying the output; resolves once the engine answered the first request (`first`, an
   * attach, or the engine's logs from `sinceSeconds`). A stream that breaks while the container
   * runs (an engine restart) is followed again from the sandbox files' watermark.
   */
  follow(deps: PipelineDeps, c: Container, log: Logger, sinceSeconds?: number, first?: Promise<LogStreams>): Promise<void> {
    const tty = c.spec.containerInfo.ttyInfo !== undefined;
    const stopping = deps.shutdown;
    const stop = () => this.abort.abort(stopping!.signal.reason);
    if (stopping?.signal.aborted) stop();
    else stopping?.signal.addEventListener("abort", stop, { once: true });
    const capture = followOutput((since) => deps.engine.followLogs(c.engineId!, this.abort.signal, since, tty), c.sandbox, {
      signal: this.abort.signal,
      since: sinceSeconds,
      first,
      onReattach: (err, since) => log.warn({ err, since }, "output stream broke; re-attaching from where the sandbox files stopped"),
      rotation: deps.logRotation,
      registry: deps.outputs,
      warn: (message, err) => log.warn({ err }, message),
    });
    this.done = capture.done
      .catch((err: unknown) => log.warn({ err }, "could not capture container output"))
      .finally(() => stopping?.signal.removeEventListener("abort", stop));
    stopping?.track(this.done);
    return capture.attached;
  }

  /** Waits for the output to end after the exit, at most `graceMs`. */
  async drain(graceMs: number, log: Logger): Promise<void> {
    if (!this.done) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), graceMs)));
    const result = await Promise.race([this.done.then(() => "done" as const), late]);
    clearTimeout(timer);
    if (result === "late") {
      log.warn({ grace_ms: graceMs }, "container output did not end in time after exit; closing it");
      this.abort.abort(new Error("output grace period over"));
      await this.done;
    }
  }
}

async function finishBeforeRunning(c: Container, deps: PipelineDeps, log: Logger, stage: ContainerState, reason: unknown): Promise<void> {
  if (c.state !== "DESTROYING") c.transition("DESTROYING", messageOf(reason));
  let termination: Termination;
  if (reason instanceof DestroyRequested) termination = destroyedBeforeRunning(stage);
  else if (reason instanceof LaunchTimedOut) termination = launchFailed(reason.stage, reason.message);
  else termination = launchFailed(stage, messageOf(reason));
  if (!(reason instanceof DestroyRequested)) log.warn({ stage, err: reason }, "launch failed");
  await finish(c, deps, log, termination, true);
}

function messageOf(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/**
 * A create that failed without an answer (a timeout, a dropped connection, an engine error) may
 * still have been carried out by the engine: remove the container by its name, as a best effort.
 * The engine may also finish the create only after this; the containerizer removes such a late
 * container when its `create` event arrives, and the reconnect sweep and recovery find it by label.
 * A refusal that created nothing (a name conflict, a missing image, a bad parameter) is left alone.
 */
async function removeAfterFailedCreate(deps: PipelineDeps, log: Logger, name: string, err: unknown): Promise<void> {
  if (err instanceof EngineRequestFailed && err.statusCode < 500) return;
  if (!(err instanceof EngineRequestFailed || err instanceof EngineUnreachable)) return; // never reached the engine
  await deps.engine.removeContainer(name).catch((e: unknown) => log.warn({ err: e, name }, "could not remove the container of a failed create"));
}

/** Removes the engine container now, or after --docker_remove_delay. */
async function removeFromEngine(c: Container, deps: PipelineDeps, log: Logger, now = false): Promise<void> {
  const id = c.engineId;
  if (id === undefined) return;
  const remove = () => deps.engine.removeContainer(id).catch((err: unknown) => log.warn({ err, engine_id: id }, "could not remove container"));
  if (now || deps.removeDelayMs <= 0) {
    await remove();
    return;
  }
  // A Berth that stops (in-process) forgets the delayed removal, as a process exit would: the
  // next start's recovery removes the terminated container's engine leftover.
  const stopping = deps.shutdown?.signal;
  if (stopping?.aborted) return;
  const cancel = () => clearTimeout(timer);
  const timer = setTimeout(() => {
    stopping?.removeEventListener("abort", cancel);
    void remove();
  }, deps.removeDelayMs);
  timer.unref();
  stopping?.addEventListener("abort", cancel, { once: true });
}

function finalTaskStatus(c: Container, deps: PipelineDeps, t: Termination) {
  if (c.spec.taskId === undefined) return undefined;
  const ct = t.containerTermination;
  // proto2: an unset reason reads as the enum's first value (REASON_COMMAND_EXECUTOR_FAILED);
  // only a reason that was set is passed on.
  const reason = isFieldSet(ct, ContainerTerminationSchema.field.reason) ? ct.reason : undefined;
  const status = taskStatus(c.spec, deps.agentId, ct.state, { message: ct.message, reason });
  if (ct.state === TaskState.TASK_KILLED && c.launchAbort.signal.reason instanceof KilledUnhealthy) status.healthy = false;
  return status;
}

/** An exit with 137 may be an OOM kill whose `oom` event was missed; the engine's state says. */
async function wasOomKilled(engine: EnginePort, engineId: string, facts: ExitFacts): Promise<boolean> {
  if (facts.exitCode !== 137) return false;
  const inspect = await engine.inspectContainer(engineId).catch(() => undefined);
  return inspect?.oomKilled ?? false;
}

function prepareSandbox(sandbox: string): void {
  mkdirSync(sandbox, { recursive: true, mode: 0o755 });
  // Empty stdout/stderr exist from the start, as in Mesos, so a tail never races their creation.
  for (const name of [STDOUT_FILE, STDERR_FILE]) {
    closeSync(openSync(path.join(sandbox, name), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644));
  }
}

/**
 * Sandbox-relative volume sources are created as directories, as Mesos does. A symlink planted in
 * the sandbox (by a fetched archive, or by the container itself in an earlier run) must not turn a
 * sandbox volume into a mount of a host directory, so every component is created or checked
 * without following links.
 */
async function makeSandboxMountSources(sandbox: string, sources: string[], owner: SandboxOwner | undefined): Promise<void> {
  for (const source of sources) {
    if (source === sandbox || !source.startsWith(`${sandbox}/`)) continue;
    let current = sandbox;
    for (const part of path.relative(sandbox, source).split("/")) {
      current = path.join(current, part);
      const stat = await lstat(current).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined;
        throw err;
      });
      if (!stat) {
        await mkdir(current);
        if (owner) await lchown(current, owner.uid, owner.gid);
      }
      else if (stat.isSymbolicLink()) throw new Error(`sandbox volume path '${path.relative(sandbox, current)}' is a symbolic link; refusing to mount through it`);
      else if (!stat.isDirectory()) throw new Error(`sandbox volume path '${path.relative(sandbox, current)}' exists and is not a directory`);
    }
  }
}
