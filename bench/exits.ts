import type { Termination } from "../src/gen/berth/v1/containerizer_pb.js";

/** Throws unless Berth's termination says the command exited with `code` on its own. */
export function checkBerthExit(id: string, termination: Termination | undefined, code: number): void {
  if (termination?.exitCode !== code) {
    const t = termination?.containerTermination;
    throw new Error(`'${id}' ended with exit_code ${termination?.exitCode ?? "unset"} signal ${termination?.signal ?? "unset"} (${t?.message ?? "no message"}); the benchmark expects exit ${code}: a sample that failed is not a figure`);
  }
}

/** Throws unless the engine's wait answered the expected exit status. */
export function checkRawExit(id: string, waited: { StatusCode?: number; Error?: { Message?: string } | null }, code: number): void {
  if (waited.StatusCode !== code) {
    throw new Error(`raw container '${id}' exited with status ${waited.StatusCode}${waited.Error?.Message ? ` (${waited.Error.Message})` : ""}; the benchmark expects ${code}`);
  }
}
