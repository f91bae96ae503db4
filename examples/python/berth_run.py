#!/usr/bin/env python3
"""Runs one command in a container on Berth, like `docker run`: Launch, Watch to the termination,
output through Logs.

    sh examples/python/generate.sh        # stubs from proto/ into examples/python/gen/
    python3 examples/python/berth_run.py --image 127.0.0.1:5000/berth-test/busybox:1 -- echo hello

The container's stdout and stderr go to this program's stdout and stderr as they are written;
its states go to stderr; the last line on stdout is the termination. Exit status: 0 once the
container was followed to its termination (whatever its own exit code), 1 when a call failed
(the line names the RPC, the gRPC status code and Berth's message), 2 for bad arguments.
"""

import argparse
import os
import secrets
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

# gRPC core's own log lines (e.g. a refused TLS handshake) would precede ours; GRPC_VERBOSITY=ERROR shows them.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
import grpc  # noqa: E402 (Debian: python3-grpcio)

try:
    from berth.v1 import containerizer_pb2 as berth  # noqa: E402
    from berth.v1 import containerizer_pb2_grpc as berth_grpc  # noqa: E402
    from mesos.v1 import mesos_pb2 as mesos  # noqa: E402
except ImportError as err:
    sys.exit(f"berth_run: no generated stubs ({err}); run: sh {os.path.dirname(__file__) or '.'}/generate.sh")

DEFAULT_ADDR = "unix:///var/lib/berth/berth.sock"


class CallFailed(Exception):
    """An RPC failed; the message names it, the status code and the server's details."""

    def __init__(self, rpc: str, err: grpc.RpcError):
        code = err.code()
        super().__init__(f"{rpc} failed: {code.name} (code {code.value[0]}): {err.details()}")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="berth_run.py",
        description="Run a command in a container on Berth and print its output and termination.",
    )
    p.add_argument("--addr", default=DEFAULT_ADDR,
                   help="unix:///path/to/berth.sock, or host:port (TLS with --ca) (default: %(default)s)")
    p.add_argument("--image", required=True, help="image reference, e.g. 127.0.0.1:5000/berth-test/busybox:1")
    p.add_argument("--id", help="container id (default: a random py-… id)")
    p.add_argument("--network", choices=["NONE", "HOST"], default="NONE", help="network mode (default: %(default)s)")
    p.add_argument("--token-file", help="file holding a bearer token (sent as 'authorization: Bearer …'); "
                                        "or set BERTH_TOKEN")
    p.add_argument("--ca", help="PEM CA that signed Berth's --tls_cert (turns TLS on)")
    p.add_argument("--cert", help="PEM client certificate, for a Berth with --tls_client_ca")
    p.add_argument("--key", help="PEM private key of --cert")
    p.add_argument("command", nargs="+",
                   help="run by /bin/sh -c: one argument is a shell line, several are quoted as words")
    args = p.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if args.cert and not args.ca:
        p.error("--cert/--key need --ca (they are for TLS)")
    return args


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        sys.exit(f"berth_run: {what} '{path}' cannot be read: {err.strerror}")


def open_channel(args) -> grpc.Channel:
    if not args.ca:
        return grpc.insecure_channel(args.addr)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read_file(args.ca, "--ca"),
        private_key=read_file(args.key, "--key") if args.key else None,
        certificate_chain=read_file(args.cert, "--cert") if args.cert else None,
    )
    return grpc.secure_channel(args.addr, creds)


def bearer_metadata(args):
    token = os.environ.get("BERTH_TOKEN", "")
    if args.token_file:
        lines = read_file(args.token_file, "--token-file").decode().split()
        token = lines[0] if lines else ""
    return (("authorization", f"Bearer {token}"),) if token else ()


def launch_request(args, container_id: str) -> berth.LaunchRequest:
    command = args.command[0] if len(args.command) == 1 else shlex.join(args.command)
    docker = mesos.ContainerInfo.DockerInfo(
        image=args.image, network=mesos.ContainerInfo.DockerInfo.Network.Value(args.network))
    req = berth.LaunchRequest(container_id=mesos.ContainerID(value=container_id))
    config = req.container_config
    config.directory = ""  # required by Mesos' proto2 schema; empty: Berth picks the sandbox
    config.command_info.value = command
    config.container_info.type = mesos.ContainerInfo.DOCKER
    config.container_info.docker.CopyFrom(docker)
    return req


def describe(termination: berth.Termination) -> str:
    t = termination.container_termination
    if termination.HasField("exit_code"):
        how = f"exit code {termination.exit_code}"
    elif termination.HasField("signal"):
        how = f"killed by signal {termination.signal}"
    else:
        how = "no exit code"
    text = f"terminated: {mesos.TaskState.Name(t.state)}, {how}"
    if t.reason:
        text += f", {mesos.TaskStatus.Reason.Name(t.reason)}"
    return text + (f" ({t.message})" if t.message else "")


def run(args) -> None:
    container_id = args.id or f"py-{secrets.token_hex(4)}"
    metadata = bearer_metadata(args)
    with open_channel(args) as channel:
        stub = berth_grpc.ContainerizerStub(channel)
        try:
            launched = stub.Launch(launch_request(args, container_id), metadata=metadata, timeout=60)
        except grpc.RpcError as err:
            raise CallFailed("Launch", err) from None
        if launched.result != berth.LAUNCH_RESULT_LAUNCHED:
            sys.exit(f"berth_run: Launch of '{container_id}' answered {berth.LaunchResult.Name(launched.result)}")
        print(f"berth: {container_id} launched (sandbox {launched.sandbox_directory})", file=sys.stderr)

        # Every event of this container from its first one (no snapshot, no gap), until its termination.
        watch = stub.Watch(berth.WatchRequest(container_ids=[mesos.ContainerID(value=container_id)],
                                              from_sequence=launched.first_sequence - 1), metadata=metadata)
        termination = None
        try:
            for response in watch:
                event = response.event
                kind = event.WhichOneof("kind")
                if kind == "state_changed":
                    state = berth.State.Name(event.state_changed.state).removeprefix("STATE_")
                    note = f": {event.state_changed.message}" if event.state_changed.message else ""
                    print(f"berth: {container_id} {state}{note}", file=sys.stderr)
                    if event.state_changed.state == berth.STATE_RUNNING:
                        follow_output(stub, container_id, metadata)
                elif kind == "termination":
                    termination = event.termination
                    break
        except grpc.RpcError as err:
            raise CallFailed("Watch", err) from None
        finally:
            watch.cancel()
        if termination is None:
            sys.exit(f"berth_run: the Watch of '{container_id}' ended without its termination")
        print(describe(termination), flush=True)


def follow_output(stub, container_id: str, metadata) -> None:
    """Copies the container's output until it has terminated and its output is drained."""
    request = berth.LogsRequest(container_id=mesos.ContainerID(value=container_id), follow=True)
    try:
        for chunk in stub.Logs(request, metadata=metadata):
            out = sys.stderr if chunk.stream == berth.LOG_STREAM_STDERR else sys.stdout
            out.buffer.write(chunk.data)
            out.flush()
    except grpc.RpcError as err:
        raise CallFailed("Logs", err) from None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except CallFailed as err:
        print(f"berth_run: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
