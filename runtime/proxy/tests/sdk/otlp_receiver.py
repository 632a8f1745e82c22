"""A loopback OTLP trace receiver that decodes with the official `opentelemetry-proto`
package (the collector's own protobuf definitions), for the gateway's trace test.

    python otlp_receiver.py [http|grpc]

`http` (the default) serves OTLP/HTTP; `grpc` serves the collector's gRPC TraceService through
`grpcio` and the package's own generated stubs.

Prints `port N` once listening on 127.0.0.1, then one JSON line per span received:
{"name", "kind", "trace_id", "span_id", "parent_span_id", "service", "attributes": {...}}.
Every POST to /v1/traces is decoded as an ExportTraceServiceRequest; a body that does not
decode is answered 400 and reported as {"error": ...}. Nothing here parses protobuf by hand.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def report(request):
    for resource_spans in request.resource_spans:
        service = {a.key: value(a.value) for a in resource_spans.resource.attributes}.get(
            "service.name"
        )
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                print(
                    json.dumps(
                        {
                            "name": span.name,
                            "kind": span.kind,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "service": service,
                            "status": span.status.code,
                            "attributes": {a.key: value(a.value) for a in span.attributes},
                        }
                    ),
                    flush=True,
                )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except Exception as error:  # noqa: BLE001 - reported to the test
            print(json.dumps({"error": str(error)}), flush=True)
            self.send_response(400)
            self.end_headers()
            return
        report(request)
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def serve_grpc():
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - the service's method name
            report(request)
            return ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    server.wait_for_termination()


if len(sys.argv) > 1 and sys.argv[1] == "grpc":
    serve_grpc()
else:
    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
