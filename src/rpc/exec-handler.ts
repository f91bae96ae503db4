import { status, type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import type { ExecRequest, ExecSyncRequest } from "../gen/berth/v1/containerizer_pb.js";
import type { Containerizer } from "../containerizer/containerizer.js";

/** The ExecSync handler (issue 10: placeholder until the exec work lands). */
export function execSyncHandler(_containerizer: Containerizer) {
  return (_call: ServerUnaryCall<ExecSyncRequest, unknown>, callback: sendUnaryData<unknown>): void => {
    callback({ code: status.UNIMPLEMENTED, details: "ExecSync is not implemented yet" });
  };
}

/** The Exec handler (issue 10: placeholder until the exec work lands). */
export function execHandler(_containerizer: Containerizer) {
  return (call: ServerDuplexStream<ExecRequest, unknown>): void => {
    call.emit("error", { code: status.UNIMPLEMENTED, details: "Exec is not implemented yet" });
  };
}
