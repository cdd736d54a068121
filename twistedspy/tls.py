# -*- test-case-name: tests.test_security -*-
"""TLS for `ssl:` listeners: the oldest version accepted, the ciphers, and HSTS.

Twisted's own defaults let TLS 1.0 in and offer CBC and plain-RSA (not forward-secret)
ciphers; the defaults here are Mozilla's "intermediate" configuration: TLS 1.2 or 1.3,
and for TLS 1.2 only ECDHE/DHE key exchange with an AEAD cipher (docs/security.md).
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.endpoints import SSL4ServerEndpoint

from twistedspy.settings import Settings

#: TLSMinVersion's values, as OpenSSL's SSL_CTX_set_min_proto_version(3) takes them
_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}


def harden(endpoint: object, settings: Settings) -> tuple[tuple[str, str], ...]:
    """
    Set TLSMinVersion and TLSCiphers on an `ssl:` endpoint's context, before it listens;
    the header fields every response on it then carries (HSTS, when configured).

    `serverFromString` builds the endpoint's `CertificateOptions` from the string alone,
    which has no argument for either. Its context is made once and shared by every
    connection (`CertificateOptions.getContext`), so setting it here, before the first
    handshake, sets it for all. TLS 1.3's cipher suites are all forward-secret AEAD, so
    only the TLS 1.2 list is set.
    """
    if not isinstance(endpoint, SSL4ServerEndpoint):
        return ()
    # The endpoint keeps its context factory in a private attribute; it is the one
    # serverFromString built from the string's privateKey/certKey.
    context = endpoint._sslContextFactory.getContext()
    context.set_min_proto_version(_VERSIONS[settings.tls_min_version])
    context.set_cipher_list(settings.tls_ciphers.encode("ascii"))
    # Strict-Transport-Security on TLS connections only: RFC 6797 §7.2, a server must
    # not send it over plain HTTP (and browsers ignore it there).
    if settings.hsts_max_age <= 0:
        return ()
    return (("Strict-Transport-Security", f"max-age={settings.hsts_max_age}"),)
