/**
 * Runs a cleanup step whose failure must not throw away figures already measured: the failure
 * is printed as a warning, and the run's final sweep (by label) removes what was left.
 */
export async function bestEffort(progress: (message: string) => void, what: string, step: () => Promise<unknown> | unknown): Promise<void> {
  try {
    await step();
  } catch (err) {
    progress(`WARNING: ${what} failed: ${(err as Error).message}`);
  }
}
