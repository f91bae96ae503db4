/** Typed domain errors; the rpc edge maps each to a gRPC status code in one function. */

/** Base of every error Berth reports to a client on purpose. */
export class BerthError extends Error {}

/** The request is malformed; the message names the field and the value. */
export class InvalidRequest extends BerthError {
  override readonly name = "InvalidRequest";
}

/** No container with this id is known (live or retained terminated). */
export class ContainerNotFound extends BerthError {
  override readonly name = "ContainerNotFound";
  constructor(readonly containerId: string) {
    super(`container_id '${containerId}' is not known to this agent`);
  }
}

/** The operation does not fit the container's current state. */
export class FailedPrecondition extends BerthError {
  override readonly name = "FailedPrecondition";
}

/** The Docker engine cannot be reached; calls that need it cannot be served now. */
export class EngineUnavailable extends BerthError {
  override readonly name = "EngineUnavailable";
}

/** The engine refused a request the caller caused, as conflicting with something that exists (a name in use). */
export class AlreadyExists extends BerthError {
  override readonly name = "AlreadyExists";
}

/** The engine failed a request for a reason of its own; the message names the call and the engine's words. */
export class EngineFailed extends BerthError {
  override readonly name = "EngineFailed";
}

/**
 * Berth's own disk (the checkpoint folder) failed a durable write; the message names the path and
 * the cause. Nothing was accepted, so a retry is safe once the disk is fixed (health says when).
 */
export class StorageFailed extends BerthError {
  override readonly name = "StorageFailed";
}

/** The call was cancelled by its caller. */
export class Cancelled extends BerthError {
  override readonly name = "Cancelled";
}

/** A Watch resume asked for events that are no longer retained. */
export class OutOfRange extends BerthError {
  override readonly name = "OutOfRange";
}

/** The operator policy refuses the request; the message names the rule, the field and the value. */
export class PermissionDenied extends BerthError {
  override readonly name = "PermissionDenied";
  constructor(
    readonly rule: string,
    readonly field: string,
    readonly value: string,
    detail?: string,
  ) {
    super(`policy rule '${rule}' refuses ${field} ${JSON.stringify(value)}${detail ? `: ${detail}` : ""}`);
  }
}

/** A configured limit is reached; the message names the limit (its flag) and its value. */
export class ResourceExhausted extends BerthError {
  override readonly name = "ResourceExhausted";
  constructor(
    readonly limit: string,
    message: string,
  ) {
    super(`${message} (limit ${limit})`);
  }
}
