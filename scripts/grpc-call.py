#!/usr/bin/env python3
"""One unary call to the demo's gRPC echo service from a proxyless gRPC client: grpcio's own
`xds:///` resolver, configured by `meshroute serve` through the bootstrap file
`meshroute grpc-bootstrap` wrote.

    GRPC_XDS_BOOTSTRAP=.run/grpc-bootstrap.json .venv/bin/python scripts/grpc-call.py \\
        xds:///echo-service.default.svc.cluster.local:8080 Echo hello

Prints the answer as `meshroute-grpc-echo call` does, `{"backend": ..., "method": ...,
"message": ...}`, or the gRPC status the call ended with. The echo messages are encoded by hand,
so grpcio is all it needs.
"""

import json
import sys

import grpc

SERVICE = "echo_basic.grpcecho.GrpcEcho"


def varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def decode(data):
    """`EchoResponse`'s `backend` (1), `method` (2) and `message` (3); other fields skipped."""
    names, answer, at = {1: "backend", 2: "method", 3: "message"}, {}, 0
    while at < len(data):
        key, at = read_varint(data, at)
        wire = key & 7
        if wire == 0:
            _, at = read_varint(data, at)
        elif wire == 2:
            length, at = read_varint(data, at)
            if key >> 3 in names:
                answer[names[key >> 3]] = data[at:at + length].decode("utf-8", "replace")
            at += length
        else:
            at += 8 if wire == 1 else 4
    return {name: answer.get(name, "") for name in names.values()}


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    target, method = sys.argv[1], sys.argv[2]
    message = (sys.argv[3] if len(sys.argv) == 4 else "hello").encode()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}")
        try:
            answer = call(b"\x0a" + varint(len(message)) + message, timeout=20)
        except grpc.RpcError as error:
            code = error.code()
            print(f"/{SERVICE}/{method} to {target}: grpc-status {code.value[0]} ({code.name}): {error.details()}")
            return 1
    print(json.dumps(decode(answer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
