import { performance } from "node:perf_hooks";
import { ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { BerthMetrics } from "./berth-metrics.js";

/** The name of a status code (`OK`, `NOT_FOUND`, …); an unknown number as itself. */
function codeName(code: number | undefined): string {
  return status[code ?? status.OK] ?? String(code);
}

/**
 * A grpc-js server interceptor timing every call from its arrival to the status it is answered
 * with (a cancelled call: CANCELLED at the cancel), into berth_rpc_duration_seconds{method,code}.
 * Put it first in the server's interceptor list, so the statuses later interceptors answer with
 * themselves (UNAUTHENTICATED from the token check) pass through it too.
 */
export function rpcMetricsInterceptor(metrics: BerthMetrics): ServerInterceptor {
  return (method, call) => {
    const started = performance.now();
    let done = false;
    const record = (code: number | undefined): void => {
      if (done) return;
      done = true;
      metrics.rpc(method.path, codeName(code), (performance.now() - started) / 1000);
    };
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => record(status.CANCELLED) }),
      sendStatus: (s, next) => {
        record(s.code);
        next(s);
      },
    });
  };
}
