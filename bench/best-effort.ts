/** Clean-up failures of this run: each one fails the run (exit 1), after the figures are printed. */
export const cleanupFailures: string[] = [];

/**
 * Runs a clean-up step whose failure must not throw away figures already measured: the failure is
 * printed at once, recorded in `cleanupFailures` (the run then ends with exit code 1 and an ERROR
 * row), and the run's final sweep (by label) removes what was left.
 */
export async function bestEffort(progress: (message: string) => void, what: string, step: () => Promise<unknown> | unknown): Promise<void> {
  try {
    await step();
  } catch (err) {
    const message = `${what} failed: ${(err as Error).message}`;
    cleanupFailures.push(message);
    progress(`ERROR: ${message}`);
  }
}
