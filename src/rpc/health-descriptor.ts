import { create } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

const PKG = "grpc.health.v1";

/**
 * grpc/health/v1/health.proto (as grpc-health-check serves it: Check, Watch, List) as a real
 * FileDescriptorProto, so reflection clients (grpcurl) can call Health without a proto file.
 * Built here rather than taken from grpc-health-check, whose proto-loader descriptors name the
 * file `grpc_health_v1.proto`, use relative type names and a map entry called `Statuses`, which
 * strict descriptor builders (grpcurl's, protobuf-es') reject.
 */
export function healthFileDescriptor(): FileDescriptorProto {
  const optional = Label.OPTIONAL;
  return create(FileDescriptorProtoSchema, {
    name: "grpc/health/v1/health.proto",
    package: PKG,
    syntax: "proto3",
    messageType: [
      { name: "HealthCheckRequest", field: [{ name: "service", jsonName: "service", number: 1, label: optional, type: Type.STRING }] },
      {
        name: "HealthCheckResponse",
        field: [{ name: "status", jsonName: "status", number: 1, label: optional, type: Type.ENUM, typeName: `.${PKG}.HealthCheckResponse.ServingStatus` }],
        enumType: [
          {
            name: "ServingStatus",
            value: [
              { name: "UNKNOWN", number: 0 },
              { name: "SERVING", number: 1 },
              { name: "NOT_SERVING", number: 2 },
              { name: "SERVICE_UNKNOWN", number: 3 },
            ],
          },
        ],
      },
      { name: "HealthListRequest" },
      {
        name: "HealthListResponse",
        field: [{ name: "statuses", jsonName: "statuses", number: 1, label: Label.REPEATED, type: Type.MESSAGE, typeName: `.${PKG}.HealthListResponse.StatusesEntry` }],
        nestedType: [
          {
            name: "StatusesEntry",
            field: [
              { name: "key", jsonName: "key", number: 1, label: optional, type: Type.STRING },
              { name: "value", jsonName: "value", number: 2, label: optional, type: Type.MESSAGE, typeName: `.${PKG}.HealthCheckResponse` },
            ],
            options: { mapEntry: true },
          },
        ],
      },
    ],
    service: [
      {
        name: "Health",
        method: [
          { name: "Check", inputType: `.${PKG}.HealthCheckRequest`, outputType: `.${PKG}.HealthCheckResponse` },
          { name: "Watch", inputType: `.${PKG}.HealthCheckRequest`, outputType: `.${PKG}.HealthCheckResponse`, serverStreaming: true },
          { name: "List", inputType: `.${PKG}.HealthListRequest`, outputType: `.${PKG}.HealthListResponse` },
        ],
      },
    ],
    options: { goPackage: "google.golang.org/grpc/health/grpc_health_v1", javaPackage: "io.grpc.health.v1", javaMultipleFiles: true, javaOuterClassname: "HealthProto", csharpNamespace: "Grpc.Health.V1" },
  });
}
