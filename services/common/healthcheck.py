"""``python -m services.common.healthcheck``: exit 0 when the local service reports SERVING.

The port comes from ``OPTSCALE_<SERVICE>_PORT`` (``$SERVICE`` names the service), else the
conventional port. TLS as the service has it (``OPTSCALE_TLS_*``; set
``OPTSCALE_TLS_SERVER_NAME`` to the name in the certificate). Used by the container
HEALTHCHECK.
"""

from __future__ import annotations

import os
import sys

DEFAULT_PORTS = {"generator": 50051, "verifier": 50052, "predictor": 50053, "controller": 50054}


def main() -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.security import Security, open_sync_channel

    service = os.environ.get("SERVICE", "generator")
    default = str(DEFAULT_PORTS.get(service, 50051))
    port = os.environ.get(f"OPTSCALE_{service.upper()}_PORT", default)
    try:
        with open_sync_channel(f"127.0.0.1:{port}", Security.from_env()) as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
        return 0 if r.status == health_pb2.HealthCheckResponse.SERVING else 1
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
