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
import pathlib
import sys

import grpc

# The echo messages' encoding is the end-to-end tests' proxyless client's.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "proxyless"))
from client import decode_response, encode_request  # noqa: E402

SERVICE = "echo_basic.grpcecho.GrpcEcho"


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    target, method = sys.argv[1], sys.argv[2]
    message = sys.argv[3] if len(sys.argv) == 4 else "hello"
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}")
        try:
            answer = call(encode_request(message), timeout=20)
        except grpc.RpcError as error:
            code = error.code()
            print(f"/{SERVICE}/{method} to {target}: grpc-status {code.value[0]} ({code.name}): {error.details()}")
            return 1
    decoded = decode_response(answer)
    print(json.dumps({name: decoded[name] for name in ("backend", "method", "message")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
