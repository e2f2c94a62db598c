"""gRPC's own Python client (grpcio, C core) against the collector's agent listener.

    grpc_probe.py TARGET CA_PEM health [SERVICE ...]   -> {"SERVICE": "SERVING" | "NOT_SERVING" | "NOT_FOUND" | "UNAVAILABLE"}
    grpc_probe.py TARGET CA_PEM reflection             -> {"services": [...]} or {"error": "UNIMPLEMENTED"}

One JSON document on stdout; the test reads it. TLS is verified against CA_PEM, with no
client certificate, as a load balancer's probe connects.
"""

import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def channel(target, ca):
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(target, creds)


def health(ch, services):
    stub = health_pb2_grpc.HealthStub(ch)
    out = {}
    for s in services:
        try:
            r = stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=10)
            out[s] = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
        except grpc.RpcError as e:
            out[s] = e.code().name
    return out


def reflection(ch):
    # The v1alpha name is what grpcurl and most tools ask first; tonic serves it from the
    # same descriptors as v1.
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    try:
        for r in stub.ServerReflectionInfo(iter([req]), timeout=10):
            return {"services": sorted(s.name for s in r.list_services_response.service)}
    except grpc.RpcError as e:
        return {"error": e.code().name}
    return {"error": "no answer"}


def main():
    target, ca, what, *rest = sys.argv[1:]
    with channel(target, ca) as ch:
        if what == "health":
            print(json.dumps(health(ch, rest or [""])))
        elif what == "reflection":
            print(json.dumps(reflection(ch)))
        else:
            sys.exit(f"unknown command {what}")


if __name__ == "__main__":
    main()
