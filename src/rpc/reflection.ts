import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
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
 */
export function reflectionService(files: DescFile[]): ReflectionService {
  const fileDescriptorProtos = withDependencies(files).map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
  // @grpc/reflection reads only `fileDescriptorProtos` of each entry of the package definition.
  const pkg = { reflection: { fileDescriptorProtos } };
  return new ReflectionService(pkg as never);
}
