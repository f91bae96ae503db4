import { defaultPolicy, type Policy } from "./policy.js";

/**
 * The policy Berth starts with: the file's, or the safe defaults; `--fetch_allow_loopback` opens
 * loopback fetches either way. The file's parser (zod and yaml, ~3.6 MB of heap for the life of
 * the process) is loaded only when there is a file to parse.
 */
export async function effectivePolicy(file: string | undefined, fetchAllowLoopback: boolean): Promise<Policy> {
  const policy = file === undefined ? defaultPolicy() : await (await import("./load-policy.js")).loadPolicy(file);
  if (fetchAllowLoopback) policy.fetch.allowLoopback = true;
  return policy;
}
