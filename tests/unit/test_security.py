"""Security settings → Faust credentials and aiokafka options (no broker is contacted)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import certifi
import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from yadtq_app.errors import ConfigurationError
from yadtq_app.security import broker_credentials, client_options, ssl_context
from yadtq_app.settings import Settings

KAFKA = "kafka://kafka-1:9092"
CA = certifi.where()  # a real CA bundle that is always installed (httpx depends on certifi)


def sasl(protocol: str = "SASL_SSL", **kwargs: str) -> Settings:
    return Settings(broker_url=KAFKA, security_protocol=protocol, sasl_username="yadtq", sasl_password="s3cret",
                    **kwargs)


def test_plaintext_has_no_credentials() -> None:
    s = Settings(broker_url=KAFKA)
    assert s.security_protocol == "PLAINTEXT"
    assert broker_credentials(s) is None
    assert client_options(s) == {"security_protocol": "PLAINTEXT"}


def test_ssl_gives_ssl_credentials_with_a_verifying_context() -> None:
    s = Settings(broker_url=KAFKA, security_protocol="SSL", ssl_cafile=CA)
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol is AuthProtocol.SSL
    assert isinstance(creds.context, ssl.SSLContext)
    assert creds.context.verify_mode == ssl.CERT_REQUIRED and creds.context.check_hostname
    opts = client_options(s)
    assert opts["security_protocol"] == "SSL" and isinstance(opts["ssl_context"], ssl.SSLContext)


def test_ssl_without_cafile_uses_the_system_cas() -> None:
    creds = broker_credentials(Settings(broker_url=KAFKA, security_protocol="SSL"))
    assert isinstance(creds, faust.SSLCredentials) and creds.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gives_sasl_credentials_over_tls(mechanism: str) -> None:
    s = sasl(sasl_mechanism=mechanism, ssl_cafile=CA)
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL and creds.mechanism is SASLMechanism(mechanism)
    assert (creds.username, creds.password) == ("yadtq", "s3cret")
    assert isinstance(creds.ssl_context, ssl.SSLContext) and creds.ssl_context.check_hostname
    opts = client_options(s)
    assert {k: v for k, v in opts.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
        "sasl_plain_username": "yadtq", "sasl_plain_password": "s3cret"}
    assert isinstance(opts["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls() -> None:
    creds = broker_credentials(sasl("SASL_PLAINTEXT"))
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_PLAINTEXT and creds.ssl_context is None
    assert creds.mechanism is SASLMechanism.PLAIN
    assert client_options(sasl("SASL_PLAINTEXT"))["security_protocol"] == "SASL_PLAINTEXT"


def test_from_env_reads_the_security_variables() -> None:
    s = Settings.from_env({
        "YADTQ_BROKER_URL": "kafka://b-1.example.com:9096;b-2.example.com:9096",
        "YADTQ_SECURITY_PROTOCOL": "sasl_ssl",  # case does not matter
        "YADTQ_SASL_MECHANISM": "scram-sha-512",
        "YADTQ_SASL_USERNAME": "yadtq",
        "YADTQ_SASL_PASSWORD": "s3cret",
        "YADTQ_SSL_CAFILE": CA,
    })
    assert (s.security_protocol, s.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (s.sasl_username, s.sasl_password, s.ssl_cafile) == ("yadtq", "s3cret", CA)
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.SCRAM_SHA_512


def test_faust_accepts_the_credentials() -> None:
    creds = broker_credentials(sasl(ssl_cafile=CA))
    app = faust.App("yadtq-security-test", broker=KAFKA, broker_credentials=creds)
    assert app.conf.broker_credentials is creds


def test_password_is_not_in_repr() -> None:
    s = sasl()
    assert "s3cret" not in repr(s) and "s3cret" not in repr(broker_credentials(s))


def test_security_implies_kafka_profile_even_on_loopback() -> None:
    # e.g. a port-forward to a managed cluster: the embedded broker speaks neither TLS nor SASL
    assert Settings(security_protocol="SSL").resolved_profile == "kafka"
    assert Settings().resolved_profile == "embedded"
    assert Settings(security_protocol="SSL", broker_profile="embedded").resolved_profile == "embedded"


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "client.pem", d / "client.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=yadtq", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def test_client_certificate_is_loaded(client_cert: tuple[str, str]) -> None:
    cert, key = client_cert
    ctx = ssl_context(Settings(broker_url=KAFKA, security_protocol="SSL", ssl_cafile=CA, ssl_certfile=cert,
                               ssl_keyfile=key))
    assert isinstance(ctx, ssl.SSLContext)


def test_mismatched_client_key_is_a_configuration_error(client_cert: tuple[str, str], tmp_path: Path) -> None:
    cert, _ = client_cert
    other = tmp_path / "other.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(other)], check=True, capture_output=True, timeout=60)
    s = Settings(broker_url=KAFKA, security_protocol="SSL", ssl_certfile=cert, ssl_keyfile=str(other))
    with pytest.raises(ConfigurationError, match="YADTQ_SSL_CERTFILE"):
        broker_credentials(s)


# -- bad values: a ConfigurationError that names the variable ---------------------------------

@pytest.mark.parametrize("env, var", [
    ({"YADTQ_SECURITY_PROTOCOL": "TLS"}, "YADTQ_SECURITY_PROTOCOL"),
    ({"YADTQ_SECURITY_PROTOCOL": "SASL_SSL", "YADTQ_SASL_MECHANISM": "GSSAPI",
      "YADTQ_SASL_USERNAME": "u", "YADTQ_SASL_PASSWORD": "p"}, "YADTQ_SASL_MECHANISM"),
    ({"YADTQ_SECURITY_PROTOCOL": "SASL_SSL", "YADTQ_SASL_MECHANISM": "OAUTHBEARER",
      "YADTQ_SASL_USERNAME": "u", "YADTQ_SASL_PASSWORD": "p"}, "YADTQ_SASL_MECHANISM"),
    ({"YADTQ_SECURITY_PROTOCOL": "SASL_SSL", "YADTQ_SASL_PASSWORD": "p"}, "YADTQ_SASL_USERNAME"),
    ({"YADTQ_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "YADTQ_SASL_USERNAME": "u"}, "YADTQ_SASL_PASSWORD"),
    ({"YADTQ_SASL_USERNAME": "u", "YADTQ_SASL_PASSWORD": "p"}, "YADTQ_SASL_USERNAME"),
    ({"YADTQ_SECURITY_PROTOCOL": "SSL", "YADTQ_SASL_PASSWORD": "p"}, "YADTQ_SASL_PASSWORD"),
    ({"YADTQ_SSL_CAFILE": CA}, "YADTQ_SSL_CAFILE"),
    ({"YADTQ_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "YADTQ_SASL_USERNAME": "u", "YADTQ_SASL_PASSWORD": "p",
      "YADTQ_SSL_CERTFILE": CA}, "YADTQ_SSL_CERTFILE"),
    ({"YADTQ_SECURITY_PROTOCOL": "SSL", "YADTQ_SSL_KEYFILE": "/k.pem"}, "YADTQ_SSL_KEYFILE"),
])
def test_contradictory_settings_name_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigurationError, match=var):
        Settings.from_env({"YADTQ_BROKER_URL": KAFKA, **env})


def test_missing_cafile_is_a_configuration_error(tmp_path: Path) -> None:
    s = Settings(broker_url=KAFKA, security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="YADTQ_SSL_CAFILE"):
        broker_credentials(s)


def test_garbage_cafile_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    s = sasl(ssl_cafile=str(bad))
    with pytest.raises(ConfigurationError, match="YADTQ_SSL_CAFILE"):
        broker_credentials(s)
    with pytest.raises(ConfigurationError, match="YADTQ_SSL_CAFILE"):
        client_options(s)


def test_missing_client_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    s = Settings(broker_url=KAFKA, security_protocol="SSL", ssl_certfile=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigurationError, match="YADTQ_SSL_CERTFILE"):
        broker_credentials(s)
