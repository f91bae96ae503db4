import type Dockerode from "dockerode";
import type { Figure } from "./report.js";

/** What every scenario gets. */
export interface BenchContext {
  docker: Dockerode;
  /** The busybox image, already present in the engine. */
  image: string;
  /** Small counts for a smoke run. */
  quick: boolean;
  /** A tag unique to this run (labels, names). */
  run: string;
  /** Prints a progress line (stderr, so the table on stdout stays clean). */
  progress(message: string): void;
  /** Shared state between scenarios of one run (the fleet shared by scale and recover). */
  shared: Map<string, unknown>;
  /** The scenarios selected for this run. */
  selected: ReadonlySet<string>;
}

/** One benchmark: runs bounded in count and time, removes what it made, returns its rows. */
export interface Scenario {
  name: string;
  /** One line for `--help`. */
  describe: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}
