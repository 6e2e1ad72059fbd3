"""A proxyless gRPC client for the end-to-end tests: one long-lived grpcio channel, probed over
stdin and stdout.

    GRPC_XDS_BOOTSTRAP=bootstrap.json python client.py xds:///echo-service.default.svc.cluster.local:8080

The target may be any target grpcio accepts (`xds:///NAME:PORT`, or a plain `HOST:PORT`). The
channel is opened once, before the first probe, and kept until stdin closes; with an `xds:///`
target, grpcio's own xDS resolver takes its routes from the control plane the bootstrap names.

Once the channel exists, the client prints one line, `{"ready": true, "grpcio": VERSION}`. Then
each line on stdin is one probe, a JSON object, answered by one JSON line on stdout:

- `{"method": "/echo_basic.grpcecho.GrpcEcho/Echo", "metadata": [["x-variant", "b"]],
  "message": "hi", "count": 100, "concurrency": 8, "timeout_s": 5}` makes `count` unary calls
  (default 1), `concurrency` at once (default 1), each with that metadata, message and deadline,
  and answers `{"results": [RESULT, ...]}` in the order the calls were started.
- `{"op": "steady_start", "method": ..., "metadata": ..., "message": ..., "interval_s": 0.01,
  "timeout_s": 5}` starts making the call over and over, one at a time, a new one every
  `interval_s`, in the background, and answers `{"started": true}` at once; other probes may be
  made meanwhile. `{"op": "steady_stop"}` stops it and answers `{"results": [...]}`: every call
  it made. One steady stream at a time.

A RESULT is `{"code": "OK", "backend": ..., "method": ..., "message": ..., "metadata": {...},
"header_backend": ..., "attempts": ..., "started": UNIX_SECONDS, "elapsed_s": SECONDS}` for an
answer (the fields of the echo backend's `EchoResponse`, and its `x-echo-backend` and
`x-echo-attempts` response metadata), or `{"code": "UNAVAILABLE", "details": ..., "header_backend":
..., "attempts": ..., "started": ..., "elapsed_s": ...}` for a gRPC status, `header_backend` being
null unless a backend gave the status, `attempts` null unless the backend counted the call's tries. A probe that cannot be read
is answered `{"error": "..."}`. Nothing a call or a probe does ends the process; only the end of
stdin does.

The echo service's messages (tests/proto/grpcecho.proto) are encoded and decoded here by hand, so
grpcio is the only package needed.
"""

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

BACKEND_HEADER = "x-echo-backend"
ATTEMPTS_HEADER = "x-echo-attempts"


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_request(message):
    """`EchoRequest { string message = 1; }`."""
    data = message.encode("utf-8")
    if not data:
        return b""
    return b"\x0a" + varint(len(data)) + data


def read_varint(data, at):
    value, shift = 0, 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data):
    """The (number, value) of each field of a protobuf message: ints for varints, bytes for
    length-delimited fields; other wire types are skipped."""
    at = 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = read_varint(data, at)
        elif wire == 2:
            length, at = read_varint(data, at)
            value, at = data[at:at + length], at + length
        elif wire == 1:
            value, at = None, at + 8
        elif wire == 5:
            value, at = None, at + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, value


def decode_response(data):
    """`EchoResponse { backend = 1; method = 2; message = 3; map<string, string> metadata = 4;
    sequence = 5; }`."""
    answer = {"backend": "", "method": "", "message": "", "metadata": {}, "sequence": 0}
    names = {1: "backend", 2: "method", 3: "message"}
    for number, value in fields(data):
        if number in names and isinstance(value, bytes):
            answer[names[number]] = value.decode("utf-8", "replace")
        elif number == 4 and isinstance(value, bytes):
            entry = dict(fields(value))
            key = entry.get(1, b"").decode("utf-8", "replace")
            answer["metadata"][key] = entry.get(2, b"").decode("utf-8", "replace")
        elif number == 5 and isinstance(value, int):
            answer["sequence"] = value
    return answer


def backend_header(call, name=BACKEND_HEADER):
    """The `x-echo-backend` (or header `name`) a backend sent, in the headers or, for a
    trailers-only answer, the trailers; None when no backend answered."""
    for read in (call.initial_metadata, call.trailing_metadata):
        try:
            metadata = read() or ()
        except Exception:  # a call that never reached a server may have none to give
            metadata = ()
        for key, value in metadata:
            if key == name:
                return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


class Client:
    def __init__(self, target):
        self.channel = grpc.insecure_channel(target)
        self.callables = {}
        self.steady = None

    def callable(self, method):
        if method not in self.callables:
            self.callables[method] = self.channel.unary_unary(
                method, request_serializer=lambda request: request, response_deserializer=lambda response: response
            )
        return self.callables[method]

    def call(self, probe):
        """One call as the probe says; never raises."""
        started, clock = time.time(), time.monotonic()
        try:
            unary = self.callable(probe["method"])
            metadata = tuple((str(name), str(value)) for name, value in probe.get("metadata", []))
            response, call = unary.with_call(
                encode_request(probe.get("message", "hello")),
                metadata=metadata,
                timeout=float(probe.get("timeout_s", 10)),
            )
            result = {"code": "OK", **decode_response(response), "header_backend": backend_header(call)}
            result["attempts"] = backend_header(call, ATTEMPTS_HEADER)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            details = error.details() if hasattr(error, "details") else str(error)
            result = {"code": code.name, "details": details or "", "header_backend": backend_header(error)}
            result["attempts"] = backend_header(error, ATTEMPTS_HEADER)
        except Exception as error:  # a malformed answer or probe: reported, never fatal
            result = {"code": "CLIENT_ERROR", "details": f"{type(error).__name__}: {error}", "header_backend": None}
        result["started"] = started
        result["elapsed_s"] = time.monotonic() - clock
        return result

    def calls(self, probe):
        count = int(probe.get("count", 1))
        concurrency = max(1, int(probe.get("concurrency", 1)))
        if concurrency == 1 or count <= 1:
            return [self.call(probe) for _ in range(count)]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda _: self.call(probe), range(count)))

    def steady_start(self, probe):
        if self.steady is not None:
            return {"error": "a steady stream is already running"}
        stop, results = threading.Event(), []
        interval = float(probe.get("interval_s", 0.01))

        def run():
            next_start = time.monotonic()
            while not stop.is_set():
                results.append(self.call(probe))
                next_start += interval
                stop.wait(max(0.0, next_start - time.monotonic()))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.steady = (stop, thread, results)
        return {"started": True}

    def steady_stop(self):
        if self.steady is None:
            return {"error": "no steady stream is running"}
        stop, thread, results = self.steady
        self.steady = None
        stop.set()
        thread.join()
        return {"results": results}

    def answer(self, line):
        try:
            probe = json.loads(line)
            if not isinstance(probe, dict):
                raise ValueError("a probe is a JSON object")
            op = probe.get("op", "call")
            if op == "call":
                return {"results": self.calls(probe)}
            if op == "steady_start":
                return self.steady_start(probe)
            if op == "steady_stop":
                return self.steady_stop()
            return {"error": f"unknown op {op!r}"}
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}


def main():
    if len(sys.argv) != 2:
        print("usage: client.py TARGET (probes as JSON lines on stdin)", file=sys.stderr)
        return 2
    client = Client(sys.argv[1])
    out = sys.stdout
    out.write(json.dumps({"ready": True, "grpcio": grpc.__version__}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        out.write(json.dumps(client.answer(line)) + "\n")
        out.flush()
    if client.steady is not None:
        client.steady_stop()
    client.channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
