import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ResourceStatisticsSchema } from "../gen/mesos/v1/mesos_pb.js";

/** ResourceStatistics fields as a plain init object; a field left undefined stays unset in the message. */
export type StatsFields = MessageInitShape<typeof ResourceStatisticsSchema>;
