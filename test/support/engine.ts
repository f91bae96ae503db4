import Dockerode from "dockerode";
import { engineUpOnce } from "./engine-up.js";

export { REGISTRY } from "./registry.js";
export { removeImage, removeTestContainers } from "./cleanup.js";
export { ensureTestImages, registryAnswers, type TestImages } from "./test-images.js";
export { startThrottledRegistry, type ThrottledRegistry } from "./throttled-registry.js";

/** Label key every test-created engine object carries, so cleanup can find it by label. */
export const TEST_LABEL = "berth.test";

const PING_TIMEOUT_MS = 3000;

// @types/dockerode declares no options on ping; dockerode 5 honours abortSignal there.
type PingWithSignal = (options: { abortSignal: AbortSignal }) => Promise<unknown>;
const pingWithSignal = (docker: Dockerode): PingWithSignal => docker.ping.bind(docker) as unknown as PingWithSignal;

async function answersPing(docker: Dockerode): Promise<boolean> {
  try {
    await pingWithSignal(docker)({ abortSignal: AbortSignal.timeout(PING_TIMEOUT_MS) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns a dockerode client for DOCKER_HOST (default /var/run/docker.sock), running
 * scripts/engine-up.sh first (at most once per process) when the engine does not answer /_ping.
 */
export async function ensureEngine(): Promise<Dockerode> {
  const docker = new Dockerode();
  if (await answersPing(docker)) return docker;
  await engineUpOnce();
  if (!(await answersPing(docker))) {
    const where = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
    throw new Error(`engine at '${where}' does not answer /_ping even after scripts/engine-up.sh succeeded`);
  }
  return docker;
}
