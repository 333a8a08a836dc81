#!/usr/bin/env python3
"""Container health check: exit 0 when a gRPC server reports SERVING on ``grpc.health.v1``.

Installed in the image as ``/usr/local/bin/grpc-health-check`` and used by docker-compose
healthchecks (Kubernetes uses its native ``grpc`` probes instead). The image ships no
grpc_health_probe binary; grpcio-health-checking is already installed for the servers.

Usage: ``grpc-health-check [ADDRESS] [SERVICE]``; ADDRESS defaults to ``127.0.0.1:50050``,
SERVICE to ``""`` (the whole server). Exit 0: SERVING; 1: any other status or no answer in 3 s.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    """Check ``argv[1]`` (address) for ``argv[2]`` (service name); return the exit status."""
    address = argv[1] if len(argv) > 1 else "127.0.0.1:50050"
    service = argv[2] if len(argv) > 2 else ""
    try:
        with grpc.insecure_channel(address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3.0
            )
    except grpc.RpcError as exc:
        print(f"{address}: {exc.code().name}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{address}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
