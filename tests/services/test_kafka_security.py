"""Kafka SASL/SSL settings pass through config into every aiokafka client."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from optscale.errors import InvalidArgumentError
from services.common.kafka import client_security
from tests.services.certs import make_pki


def test_default_is_plaintext() -> None:
    assert client_security({}) == {"security_protocol": "PLAINTEXT"}


async def test_sasl_ssl_builds_a_context_and_credentials(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    pw = tmp_path / "pw"
    pw.write_text("kafka-pass\n")
    kw = client_security(
        {
            "OPTSCALE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "OPTSCALE_KAFKA_SSL_CAFILE": str(pki / "ca.crt"),
            "OPTSCALE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "OPTSCALE_KAFKA_SASL_USERNAME": "optscale",
            "OPTSCALE_KAFKA_SASL_PASSWORD_FILE": str(pw),
        }
    )
    assert kw["security_protocol"] == "SASL_SSL" and isinstance(kw["ssl_context"], ssl.SSLContext)
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
        "SCRAM-SHA-256",
        "optscale",
        "kafka-pass",
    )
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    # aiokafka accepts exactly these arguments (constructed, not started: no broker needed)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **kw)
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **kw)
    assert producer.client._sasl_mechanism == "SCRAM-SHA-256"
    assert consumer._client._security_protocol == "SASL_SSL"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"OPTSCALE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL"),
        ({"OPTSCALE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "USERNAME/PASSWORD"),
        (
            {
                "OPTSCALE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "OPTSCALE_KAFKA_SASL_MECHANISM": "GSSAPI",
            },
            "MECHANISM",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        client_security(env)
