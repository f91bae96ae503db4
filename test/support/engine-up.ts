import { spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "./dev-dir.js";

let engineUp: Promise<void> | undefined;

function runEngineUp(): Promise<void> {
  const script = join(repoRoot(), "scripts", "engine-up.sh");
  return new Promise((resolve, reject) => {
    // The script's status lines go to stderr so they never mix into a reporter's stdout.
    const child = spawn("bash", [script], { stdio: ["ignore", process.stderr, process.stderr] });
    child.on("error", (err) => reject(new Error(`starting '${script}' failed: ${err.message}`, { cause: err })));
    child.on("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`'${script}' failed with ${code !== null ? `exit code ${code}` : `signal ${signal}`}; see its output above`));
    });
  });
}

/** Runs scripts/engine-up.sh (engine + registry bring-up) at most once per process; a failure is remembered. */
export function engineUpOnce(): Promise<void> {
  engineUp ??= runEngineUp();
  return engineUp;
}
