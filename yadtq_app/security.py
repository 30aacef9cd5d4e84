"""Broker security: TLS and SASL settings turned into what Kafka clients take.

yadtq talks to Kafka through three kinds of client, and all three must authenticate the
same way: Faust's producer and consumers (``broker_credentials``), yadtq's own admin
client that creates topics (:mod:`yadtq_app.admin`), and the embedded profile's
end-offset reader (:mod:`yadtq_app.kafka.end_offsets`). So the settings are read in one place,
here, into a Faust credentials object, and the aiokafka keyword arguments of the
other clients are derived from that object with Faust's own mapping
(``credentials_to_aiokafka_auth``): what the admin client sends cannot drift from what
Faust sends.

* ``PLAINTEXT``: no credentials (the default; the embedded broker);
* ``SSL``: :class:`faust.SSLCredentials` around an SSL context;
* ``SASL_PLAINTEXT``: :class:`faust.SASLCredentials` (username, password, mechanism);
* ``SASL_SSL``: :class:`faust.SASLCredentials` with an SSL context as well.

The SSL context verifies the brokers' certificates and host names against
``YADTQ_SSL_CAFILE`` (the system's CAs when empty) and, for brokers that require TLS
client authentication, presents ``YADTQ_SSL_CERTFILE``/``YADTQ_SSL_KEYFILE``. The
context is built here rather than by ``faust.SSLCredentials(cafile=...)``, which cannot
build one without an explicit ``purpose``. Contradictory settings are rejected by
:class:`~yadtq_app.settings.Settings` itself; unreadable files are rejected here, with a
:class:`~yadtq_app.errors.ConfigurationError` naming the variable.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Optional

import faust
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from .errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["ssl_context", "broker_credentials", "client_options"]


def ssl_context(settings: "Settings") -> ssl.SSLContext:
    """A client TLS context for the brokers: verified certificates and host names."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"YADTQ_SSL_CAFILE={settings.ssl_cafile!r}: cannot load CA certificates "
                                 f"({exc})") from None
    if settings.ssl_certfile:
        try:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"YADTQ_SSL_CERTFILE={settings.ssl_certfile!r} / YADTQ_SSL_KEYFILE={settings.ssl_keyfile!r}: "
                f"cannot load the client certificate and key ({exc})") from None
    return context


def broker_credentials(settings: "Settings") -> Optional[CredentialsT]:
    """Faust's ``broker_credentials`` for these settings (``None`` for ``PLAINTEXT``)."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        # SASLCredentials means SASL_SSL exactly when it is given an SSL context.
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism,
                                     ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None)
    # Settings validates the protocol; this guards a Settings built around that check.
    raise ConfigurationError(f"YADTQ_SECURITY_PROTOCOL={protocol!r} is not supported")


def client_options(settings: "Settings") -> dict[str, Any]:
    """Keyword arguments that make an aiokafka client authenticate like Faust's clients."""
    return dict(credentials_to_aiokafka_auth(broker_credentials(settings)))
