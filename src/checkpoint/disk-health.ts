import { BehaviorSubject, distinctUntilChanged, map, type Observable } from "rxjs";

/** A durable write to the checkpoint disk failed (ENOSPC, EIO, …); the message names the file and the cause. */
export class DiskFailed extends Error {
  override readonly name = "DiskFailed";
}

/**
 * Whether the checkpoint layer can write durably: the last write (a record, a sequence
 * reservation) decides. A failed write turns it unhealthy until a later write succeeds; the
 * composition root reports it as health NOT_SERVING.
 */
export class DiskHealth {
  private readonly state = new BehaviorSubject<DiskFailed | undefined>(undefined);

  /** true while writes succeed; emits on every change. */
  readonly ok$: Observable<boolean> = this.state.pipe(
    map((failure) => failure === undefined),
    distinctUntilChanged(),
  );

  /** The failure in force, if any. */
  get failure(): DiskFailed | undefined {
    return this.state.value;
  }

  /** Records a failed write. */
  failed(failure: DiskFailed): void {
    this.state.next(failure);
  }

  /** Records a successful write. */
  succeeded(): void {
    if (this.state.value !== undefined) this.state.next(undefined);
  }
}

/** Wraps a write error as DiskFailed naming what was written. */
export function diskFailure(what: string, err: unknown): DiskFailed {
  return new DiskFailed(`${what} failed: ${(err as Error).message}`, { cause: err });
}
