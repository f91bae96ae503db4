import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";

/** Files in dependency order, each once: what a reflection client resolves imports against. */
function withDependencies(files: DescFile[]): DescFile[] {
  const ordered: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (file: DescFile) => {
    if (seen.has(file.name)) return;
    seen.add(file.name);
    for (const dep of file.dependencies) visit(dep);
    ordered.push(file);
  };
  files.forEach(visit);
  return ordered;
}

/**
 * Server reflection (v1 and v1alpha) fed with the real FileDescriptorProtos that protobuf-es
 * keeps, dependency lists included. Fed by proto-loader, @grpc/reflection would serve files with
 * empty `dependency` lists, and grpcurl could not resolve berth.v1 → mesos.v1 references.
 * `standalone` adds files that have no DescFile, such as grpc.health.v1 (healthFileDescriptor).
 */
export function reflectionService(files: DescFile[], standalone: FileDescriptorProto[] = []): ReflectionService {
  // `standalone`: files without imports that have no protobuf-es DescFile (the health service).
  const protos = [...withDependencies(files).map((f) => f.proto), ...standalone];
  const fileDescriptorProtos = protos.map((p) => Buffer.from(toBinary(FileDescriptorProtoSchema, p)));
  // @grpc/reflection reads only `fileDescriptorProtos` of each entry of the package definition.
  const pkg = { reflection: { fileDescriptorProtos } };
  return new ReflectionService(pkg as never);
}
