#!/usr/bin/env python3
"""Container health check: exit 0 when a gRPC server reports SERVING on ``grpc.health.v1``.

Installed in the image as ``/usr/local/bin/grpc-health-check`` and used by docker-compose healthchecks and by
the Kubernetes probes of the TLS overlay (``deploy/k8s-tls``: the kubelet's native ``grpc`` probe speaks
plaintext only). The image ships no grpc_health_probe binary; grpcio-health-checking is already installed for
the servers.

Usage: ``grpc-health-check [--tls-ca FILE [--server-name NAME]] [ADDRESS] [SERVICE]``; ADDRESS defaults to
``127.0.0.1:50050``, SERVICE to ``""`` (the whole server). With ``--tls-ca`` the server's certificate is
verified against that CA bundle, for the name ``--server-name`` (default: the host of ADDRESS), so a pod can
probe itself on 127.0.0.1 with a certificate issued for its Service name. Exit 0: SERVING; 1: any other
status, no answer in 3 s, or a certificate that does not verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    """Check the server named by ``argv`` (see the module docstring); return the exit status."""
    p = argparse.ArgumentParser(prog="grpc-health-check")
    p.add_argument("--tls-ca", default="", help="PEM CA bundle: connect over TLS and verify the server with it")
    p.add_argument("--server-name", default="", help="name the certificate must carry (default: the address host)")
    p.add_argument("address", nargs="?", default="127.0.0.1:50050")
    p.add_argument("service", nargs="?", default="")
    a = p.parse_args(argv[1:])
    try:
        if a.tls_ca:
            options = [("grpc.ssl_target_name_override", a.server_name)] if a.server_name else []
            creds = grpc.ssl_channel_credentials(root_certificates=Path(a.tls_ca).read_bytes())
            channel = grpc.secure_channel(a.address, creds, options=options)
        else:
            channel = grpc.insecure_channel(a.address)
        with channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=a.service), timeout=3.0
            )
    except grpc.RpcError as exc:
        print(f"{a.address}: {exc.code().name}", file=sys.stderr)
        return 1
    except OSError as exc:  # the CA file cannot be read
        print(f"{a.address}: {exc}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{a.address}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
