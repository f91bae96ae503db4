import { status, type ServiceError } from "@grpc/grpc-js";
import { Metadata } from "@grpc/grpc-js";
import { AlreadyExists, BerthError, Cancelled, OutOfRange, ContainerNotFound, EngineFailed, EngineUnavailable, FailedPrecondition, InvalidRequest, PermissionDenied, ResourceExhausted, StorageFailed } from "../containerizer/errors.js";
import { EngineRequestFailed, EngineUnreachable } from "../docker/engine-port.js";

/** A status a handler answers with. */
export type StatusError = Partial<ServiceError> & { code: status; details: string };

/** The one place where domain errors become gRPC status codes. */
export function toStatus(err: unknown): StatusError {
  const details = err instanceof Error ? err.message : String(err);
  let code: status;
  if (err instanceof InvalidRequest) code = status.INVALID_ARGUMENT;
  else if (err instanceof ContainerNotFound) code = status.NOT_FOUND;
  else if (err instanceof FailedPrecondition) code = status.FAILED_PRECONDITION;
  else if (err instanceof EngineUnavailable || err instanceof EngineUnreachable) code = status.UNAVAILABLE;
  else if (err instanceof Cancelled) code = status.CANCELLED;
  else if (err instanceof OutOfRange) code = status.OUT_OF_RANGE;
  else if (err instanceof PermissionDenied) code = status.PERMISSION_DENIED;
  else if (err instanceof ResourceExhausted) code = status.RESOURCE_EXHAUSTED;
  else if (err instanceof AlreadyExists) code = status.ALREADY_EXISTS;
  // A failing disk on the agent: nothing was accepted and a retry succeeds once it is fixed.
  else if (err instanceof StorageFailed) code = status.UNAVAILABLE;
  else if (err instanceof EngineFailed) code = status.INTERNAL;
  else if (err instanceof EngineRequestFailed) code = status.INTERNAL;
  else if (err instanceof BerthError) code = status.UNKNOWN;
  else code = status.INTERNAL;
  return { code, details, metadata: new Metadata() };
}

/** A status for a method declared now and implemented by a later issue. */
export function unimplemented(method: string): StatusError {
  return { code: status.UNIMPLEMENTED, details: `${method} is not implemented yet`, metadata: new Metadata() };
}
