import type Dockerode from "dockerode";
import type { StartOverrides } from "../../src/berth.js";
import { LABEL_AGENT_ID } from "../../src/docker/names.js";
import { ensureEngine, ensureTestImages, removeTestContainers, type TestImages } from "../support/engine.js";
import { startTestBerth, type TestBerth } from "./test-berth.js";

/** What a suite using the real engine and an in-process Berth gets. */
export interface BerthSuite {
  docker: Dockerode;
  images: TestImages;
  t: TestBerth;
}

/**
 * Registers mocha hooks that bring up the engine and the test images and start one in-process
 * Berth for the suite (closed after it). Read the fields inside tests, not at registration.
 */
export function useBerth(flags: Record<string, string> = {}, overrides: StartOverrides = {}): BerthSuite {
  const suite = {} as BerthSuite;
  before(async () => {
    suite.docker = await ensureEngine();
    suite.images = await ensureTestImages(suite.docker);
    suite.t = await startTestBerth(flags, overrides);
  });
  after(async () => {
    const agentId = suite.t?.berth.agentId;
    await suite.t?.close();
    // What the suite's containers left in the engine (Berth stopped before a test's own clean-up
    // could reach it, or before a removal it had scheduled): the agent's label finds them all.
    if (suite.docker && agentId) await removeTestContainers(suite.docker, { [LABEL_AGENT_ID]: agentId });
  });
  return suite;
}
