/** An interactive exec (the Exec RPC's domain side): output out, stdin and resizes in, the exit last. */
import type { Readable } from "node:stream";
import type { EnginePort } from "../docker/engine-port.js";
import { InvalidRequest } from "../containerizer/errors.js";
import { execCreateSpec, type ExecCommand, type ExecFieldNames } from "./exec-spec.js";
import { ExecProcess } from "./exec-process.js";

/** The first message of an Exec. */
export interface ExecStartInput extends ExecCommand {
  tty: boolean;
  /** Attach stdin; without it stdin chunks are refused. */
  stdin: boolean;
  /** Initial terminal size (TTY only). */
  size?: TerminalSize;
  /** The process is SIGKILLed when it runs longer; unset: no limit of its own. */
  timeoutMs?: number;
}

/** A terminal size in character cells. */
export interface TerminalSize {
  rows: number;
  columns: number;
}

/** How an exec ended. */
export interface ExecExit {
  /** The engine's exit code (128+N for signal N; 137 after a kill). */
  exitCode: number;
  /** Killed because its timeout passed. */
  timedOut: boolean;
}

/** Field names of ExecRequest.start, for messages. */
export const EXEC_START_FIELDS: ExecFieldNames = { argv: "start.command", env: "start.environment", user: "start.user", workingDir: "start.working_dir" };

/** The engine may not have started the process when start returns; the docker CLI retries its first resize the same way. */
const RESIZE_TRIES = 5;

/** Checks a terminal size (InvalidRequest naming `field`). */
export function checkSize(size: TerminalSize, field: string): void {
  for (const [k, v] of Object.entries(size)) {
    if (!Number.isInteger(v) || v < 1 || v > 65_535) throw new InvalidRequest(`${field}.${k} ${v} is not between 1 and 65535`);
  }
}

function ended(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.readableEnded || stream.destroyed) return resolve();
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
}

/**
 * A running interactive exec. Read `stdout`/`stderr` (pausing them is how a slow client holds the
 * process back); `exit` resolves once both have ended and the engine reports the exit, or once a
 * timeout or cancel() has killed the process. Every path ends in `close()` of the connection.
 */
export class ExecSession {
  readonly exit: Promise<ExecExit>;
  private stdinClosed = false;
  private killedBy: "timeout" | "cancel" | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private settleKill!: (reason: "timeout" | "cancel") => void;

  private constructor(
    private readonly proc: ExecProcess,
    timeoutMs: number | undefined,
  ) {
    const killRequested = new Promise<"timeout" | "cancel">((resolve) => (this.settleKill = resolve));
    // After a kill the output may end (and the exit show) before the kill's own confirmation: the
    // exit then still says whether the timeout caused it.
    const stopPolling = new AbortController();
    const outputOver = Promise.all([ended(proc.stdout), ended(proc.stderr)]).then(async (): Promise<ExecExit> => {
      const exitCode = await proc.exited(stopPolling.signal);
      return { exitCode, timedOut: this.killedBy === "timeout" };
    });
    const killed = killRequested.then(async (reason): Promise<ExecExit> => {
      const state = await proc.kill();
      return { exitCode: state.exitCode ?? 137, timedOut: reason === "timeout" };
    });
    this.exit = Promise.race([outputOver, killed]).finally(() => {
      clearTimeout(this.timer);
      stopPolling.abort();
      proc.close();
    });
    if (timeoutMs !== undefined) this.timer = setTimeout(() => this.kill("timeout"), timeoutMs);
    // Whichever path lost must not become an unhandled rejection.
    outputOver.catch(() => undefined);
    killed.catch(() => undefined);
  }

  /**
   * Validates the start (InvalidRequest naming start.*), then creates and starts the exec in
   * container `engineId`; engine errors are the port's (409 when the container is not running).
   */
  static async start(engine: EnginePort, engineId: string, input: ExecStartInput, signal?: AbortSignal): Promise<ExecSession> {
    const spec = execCreateSpec(input, { tty: input.tty, stdin: input.stdin }, EXEC_START_FIELDS);
    if (input.size !== undefined) {
      if (!input.tty) throw new InvalidRequest("start.size is set but start.tty is false; a terminal size needs a TTY");
      checkSize(input.size, "start.size");
    }
    if (input.timeoutMs !== undefined && !(input.timeoutMs > 0)) throw new InvalidRequest(`start.timeout ${input.timeoutMs} ms is not positive`);
    const proc = await ExecProcess.start(engine, engineId, spec, signal);
    const session = new ExecSession(proc, input.timeoutMs);
    if (input.size !== undefined) {
      try {
        await session.initialResize(input.size);
      } catch (err) {
        await session.cancel();
        throw err;
      }
    }
    return session;
  }

  get stdout(): Readable {
    return this.proc.stdout;
  }

  get stderr(): Readable {
    return this.proc.stderr;
  }

  get tty(): boolean {
    return this.proc.tty;
  }

  /**
   * Writes a stdin chunk; false means the process is not reading as fast: wait for `stdinDrained()`
   * before the next one. InvalidRequest when started without stdin or after close_stdin.
   */
  writeStdin(chunk: Uint8Array): boolean {
    const stdin = this.proc.stdin;
    if (!stdin) throw new InvalidRequest("a stdin chunk came but start.stdin is false; start with stdin: true to write to the process");
    if (this.stdinClosed) throw new InvalidRequest("a stdin chunk came after close_stdin");
    return stdin.write(chunk);
  }

  /** Resolves when stdin can take more (or is gone). */
  stdinDrained(): Promise<void> {
    const stdin = this.proc.stdin;
    if (!stdin || !stdin.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        stdin.off("drain", done);
        stdin.off("close", done);
        resolve();
      };
      stdin.on("drain", done);
      stdin.on("close", done);
      void this.exit.finally(done);
    });
  }

  /** Closes the process's stdin (EOF). Idempotent; a no-op without stdin. */
  closeStdin(): void {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    this.proc.stdin?.end();
  }

  /** Resizes the TTY; InvalidRequest without one. */
  async resize(size: TerminalSize, field = "resize"): Promise<void> {
    if (!this.tty) throw new InvalidRequest(`${field} needs a TTY (start.tty is false)`);
    checkSize(size, field);
    await this.proc.resize(size);
  }

  /** Kills the process (a cancelled call) and resolves once the engine says it is over. */
  async cancel(): Promise<void> {
    this.kill("cancel");
    await this.exit.catch(() => undefined);
  }

  private kill(reason: "timeout" | "cancel"): void {
    if (this.killedBy) return;
    this.killedBy = reason;
    this.settleKill(reason);
  }

  private async initialResize(size: TerminalSize): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.proc.resize(size);
        return;
      } catch (err) {
        if (attempt >= RESIZE_TRIES) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
      }
    }
  }
}
