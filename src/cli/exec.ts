/**
 * `berth exec [-i] [-t] ID -- CMD…` over the bidi Exec RPC. With -t the local terminal is put in
 * raw mode (keys go to the process as typed, Ctrl-C included) and its size follows SIGWINCH; the
 * terminal is restored on every way out (exit code, error, signal, exception).
 */
import { create, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import type { ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import { ExecRequestSchema, ExecResponseSchema, type ExecRequest, type ExecResponse } from "../gen/berth/v1/containerizer_pb.js";
import { rpcFailure, UsageError, type Connection } from "./connection.js";

export interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  env?: Record<string, string>;
  user?: string;
  workdir?: string;
  /** Each ExecResponse as a proto-JSON line on stdout (output chunks base64, the exit code last). */
  json?: boolean;
}

interface Io {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** Puts `stdin` in raw mode and returns the way back, which is safe to call more than once. */
function rawMode(stdin: NodeJS.ReadStream): () => void {
  if (!stdin.isTTY) return () => {};
  stdin.setRawMode(true);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    try {
      stdin.setRawMode(false);
    } catch {
      // The terminal is gone (hang-up): nothing left to restore.
    }
  };
  // The last resort: whatever ends the process, the terminal is given back cooked.
  process.once("exit", restore);
  return restore;
}

/** Runs the command; resolves with its exit code (128+N for a death by signal N). */
export async function runExec(conn: Connection, id: string, argv: string[], flags: ExecFlags, io: Io = process): Promise<number> {
  if (argv.length === 0) throw new UsageError("exec needs a command: berth exec [-i] [-t] ID -- CMD [ARG...]");
  const tty = flags.tty === true;
  if (tty && !io.stdout.isTTY) throw new UsageError("-t needs a terminal on stdout (run without -t when piping)");
  if (tty && flags.json) throw new UsageError("-t and --output json exclude each other");
  const interactive = flags.interactive === true;
  const call: ClientDuplexStream<ExecRequest, ExecResponse> = conn.exec();
  const send = (kind: MessageInitShape<typeof ExecRequestSchema>["kind"]) => call.write(create(ExecRequestSchema, { kind }));
  const size = () => ({ rows: io.stdout.rows ?? 24, columns: io.stdout.columns ?? 80 });

  send({
    case: "start",
    value: {
      containerId: { value: id },
      command: argv,
      tty,
      size: tty ? size() : undefined,
      environment: flags.env ?? {},
      user: flags.user ?? "",
      workingDir: flags.workdir ?? "",
      stdin: interactive,
    },
  });

  const restore = tty && interactive ? rawMode(io.stdin) : () => {};
  const cleanups: Array<() => void> = [restore];

  try {
    if (tty) {
      const onResize = () => send({ case: "resize", value: size() });
      io.stdout.on("resize", onResize);
      cleanups.push(() => io.stdout.off("resize", onResize));
    }
    if (interactive) {
      // stdin → the process, chunk by chunk, pausing while the call is behind; EOF closes its stdin.
      const onData = (chunk: Buffer) => {
        if (!send({ case: "stdin", value: chunk })) {
          io.stdin.pause();
          call.once("drain", () => io.stdin.resume());
        }
      };
      const onEnd = () => {
        send({ case: "closeStdin", value: true });
        call.end();
      };
      io.stdin.on("data", onData);
      io.stdin.once("end", onEnd);
      cleanups.push(() => {
        io.stdin.off("data", onData);
        io.stdin.off("end", onEnd);
        io.stdin.pause();
      });
    }
    // Without -t, an interrupt kills the remote process by cancelling the call (its exit code then
    // says so); with -t, Ctrl-C is a key for the process.
    const onSignal = () => call.cancel();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    cleanups.push(() => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    });

    return await new Promise<number>((resolve, reject) => {
      let exitCode: number | undefined;
      const write = (out: NodeJS.WriteStream, data: Uint8Array) => {
        if (!out.write(data)) {
          call.pause();
          out.once("drain", () => call.resume());
        }
      };
      call.on("data", (r: ExecResponse) => {
        const k = r.kind;
        if (flags.json) {
          if (k.case === "exitCode") exitCode = k.value;
          write(io.stdout, Buffer.from(`${JSON.stringify(toJson(ExecResponseSchema, r))}\n`));
          return;
        }
        if (k.case === "stdout") write(io.stdout, k.value);
        else if (k.case === "stderr") write(io.stderr, k.value);
        else if (k.case === "exitCode") exitCode = k.value;
      });
      call.on("error", (err: ServiceError) => {
        // start.timeout: the exit code (137) came before DEADLINE_EXCEEDED; it is the answer.
        if (exitCode !== undefined) resolve(exitCode);
        else reject(rpcFailure("Exec", err));
      });
      call.on("end", () => {
        if (exitCode !== undefined) resolve(exitCode);
        else reject(rpcFailure("Exec", new Error("the call ended without an exit code")));
      });
    });
  } finally {
    for (const c of cleanups.reverse()) c();
  }
}
