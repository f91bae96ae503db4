/** One exec'd process in a running container: its streams, its exit, and killing it. */
import type { Readable, Writable } from "node:stream";
import type { EnginePort, ExecCreateSpec, ExecState } from "../docker/engine-port.js";
import { killProcessTree } from "./process-tree.js";

/** How long a kill may take to show in the engine's inspect before it is reported as failed. */
const CONFIRM_MS = 10_000;
/** Re-sends the kill this often while the engine still says running (a process that was not yet started, or a tree member that forked). */
const REKILL_MS = 500;

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A started exec. The output streams end when the process's output is over (or the connection is
 * detached); `exited()` then reads the exit code. Killing is done from the host (see
 * process-tree.ts) and confirmed through the engine's inspect.
 */
export class ExecProcess {
  private killing: Promise<ExecState> | undefined;

  private constructor(
    private readonly engine: EnginePort,
    private readonly engineId: string,
    readonly execId: string,
    /** Wall-clock time taken before the exec was created: no older process is ever signalled. */
    private readonly createdAt: number,
    readonly stdout: Readable,
    readonly stderr: Readable,
    readonly stdin: Writable | undefined,
    readonly tty: boolean,
    private readonly onDetach: () => void,
  ) {
    // A stdin write that fails means the process (or the connection) is gone; the output's end and
    // the exit report that, so the error is not the caller's to handle.
    stdin?.on("error", () => undefined);
  }

  /**
   * Creates and starts the exec in container `engineId`. Engine errors are passed on as the port
   * raises them (409 for a container that is not running). A signal aborted while starting kills
   * what was started (the engine may already run it) and rejects with the signal's reason; once
   * started, kill() or close() end it.
   */
  static async start(engine: EnginePort, engineId: string, spec: ExecCreateSpec, signal?: AbortSignal): Promise<ExecProcess> {
    signal?.throwIfAborted();
    const createdAt = Date.now();
    const execId = await engine.createExec(engineId, spec);
    signal?.throwIfAborted();
    const detach = new AbortController();
    const streams = await engine.startExec(execId, { tty: spec.Tty === true, stdin: spec.AttachStdin === true }, detach.signal);
    const proc = new ExecProcess(engine, engineId, execId, createdAt, streams.stdout, streams.stderr, streams.stdin, spec.Tty === true, () => detach.abort(new Error("exec detached")));
    if (signal?.aborted) {
      try {
        await proc.kill();
      } finally {
        proc.close();
      }
      throw signal.reason;
    }
    return proc;
  }

  /** Closes the connection to the process's streams (the process is not killed). */
  close(): void {
    this.onDetach();
  }

  /** Resizes the TTY (rows × columns). */
  resize(size: { rows: number; columns: number }): Promise<void> {
    return this.engine.resizeExec(this.execId, size);
  }

  /**
   * The exit code once the engine reports the process over. Call when the output has ended: the
   * engine records the exit before it closes the streams, so this usually answers at once; a
   * process that closed its output and runs on is polled (backing off to once a second) until it
   * ends or `signal` aborts (then it rejects with the signal's reason).
   */
  async exited(signal?: AbortSignal): Promise<number> {
    for (let wait = 5; ; wait = Math.min(wait * 2, 1000)) {
      signal?.throwIfAborted();
      const state = await this.engine.inspectExec(this.execId);
      if (!state.running && state.exitCode !== undefined) return state.exitCode;
      await delay(wait, signal);
    }
  }

  /**
   * SIGKILLs the process and everything it forked (still in the container), then waits until the
   * engine's inspect says it is over; resolves with that last inspect. Idempotent.
   */
  kill(): Promise<ExecState> {
    this.killing ??= this.killNow();
    return this.killing;
  }

  private async killNow(): Promise<ExecState> {
    const deadline = Date.now() + CONFIRM_MS;
    let lastKill = -Infinity;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      const state = await this.engine.inspectExec(this.execId);
      if (!state.running && state.exitCode !== undefined) return state;
      if (Date.now() > deadline) {
        throw new Error(`exec '${this.execId}' (pid ${state.pid}) in container '${this.engineId}' still runs ${CONFIRM_MS} ms after SIGKILL`);
      }
      // Pid 0: the engine has not started it yet; it is killed once it has a pid.
      if (state.running && state.pid > 0 && Date.now() - lastKill >= REKILL_MS) {
        lastKill = Date.now();
        await killProcessTree(state.pid, this.engineId, this.createdAt);
      }
      await delay(wait);
    }
  }
}
