import { status, type ServerWritableStream } from "@grpc/grpc-js";
import type { LogsRequest } from "../gen/berth/v1/containerizer_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";

/** The Logs handler (issue 10: placeholder until the logs work lands). */
export function logsHandler(_containerizer: Containerizer) {
  return (call: ServerWritableStream<LogsRequest, unknown>): void => {
    call.emit("error", { code: status.UNIMPLEMENTED, details: "Logs is not implemented yet" });
  };
}
