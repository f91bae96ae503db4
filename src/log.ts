import { pino, type Logger } from "pino";

/** The process logger: JSON lines on stderr, one per event. Environment values are never logged. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "berth" }, redact: ["environment", "*.environment", "env", "*.env"] }, pino.destination(2));
}
