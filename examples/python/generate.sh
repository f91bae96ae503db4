#!/bin/sh
# Generates the Python messages and gRPC stubs of berth.v1 (and the mesos protos it imports) from
# the repo's proto/ into examples/python/gen/ (git-ignored: nothing generated is committed).
# Needs Debian's protobuf-compiler (protoc) and protobuf-compiler-grpc (grpc_python_plugin);
# google/protobuf's well-known types come with protoc.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
out="$here/gen"
plugin=$(command -v grpc_python_plugin) || {
  echo "generate.sh: grpc_python_plugin not found; apt-get install protobuf-compiler-grpc" >&2
  exit 1
}
command -v protoc >/dev/null || {
  echo "generate.sh: protoc not found; apt-get install protobuf-compiler" >&2
  exit 1
}
# Into a fresh directory, then swapped in, so a failed run leaves the previous stubs whole.
tmp=$(mktemp -d "$here/.gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
protoc -I"$proto" --python_out="$tmp" \
  --plugin=protoc-gen-grpc_python="$plugin" --grpc_python_out="$tmp" \
  berth/v1/containerizer.proto mesos/v1/mesos.proto mesos/slave/containerizer.proto
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
