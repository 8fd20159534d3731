"""
TLS for the Scrapy handler: the context factory Scrapy builds from its
settings (C{DOWNLOADER_CLIENTCONTEXTFACTORY}, C{DOWNLOADER_CLIENT_TLS_METHOD},
C{DOWNLOADER_CLIENT_TLS_CIPHERS}, C{DOWNLOAD_TLS_MIN_VERSION} and
C{DOWNLOAD_TLS_MAX_VERSION}, C{DOWNLOAD_VERIFY_CERTIFICATES}), and the
connection details C{DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING} logs.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["contextFactoryFor", "logTLS"]

logger = logging.getLogger("pooled_http.scrapy")


def contextFactoryFor(crawler: Any) -> Any:
    """
    The C{IPolicyForHTTPS} Scrapy's own HTTP/1.1 handler would use for
    C{crawler}: Scrapy builds it, so every TLS setting means what it means
    there.

    @param crawler: The crawler.
    """
    from scrapy.core.downloader import contextfactory

    load = getattr(contextfactory, "_load_context_factory_from_settings", None)
    if load is not None:
        return load(crawler)
    # Before Scrapy made it private it took the settings too.
    return contextfactory.load_context_factory_from_settings(  # pragma: no cover
        crawler.settings, crawler
    )


def logTLS(transport: Any, request: Any) -> None:
    """
    Log, at debug level, the protocol, cipher and peer certificate of a TLS
    connection, with the function and in the words of Scrapy's handlers
    where this Scrapy has it.

    @param transport: The connection's TLS transport.
    @param request: The Scrapy request, for the host name.
    """
    try:
        connection = transport.getHandle()
    except AttributeError:
        return
    from scrapy.utils import ssl as scrapySSL
    from scrapy.utils.httpobj import urlparse_cached

    hostname = urlparse_cached(request).hostname
    scrapyLog = getattr(scrapySSL, "_log_ssl_conn_debug_info", None)
    if scrapyLog is not None:
        # Scrapy's own words (they change between its releases).
        scrapyLog(hostname, connection)
        return
    logger.debug(
        "SSL connection to %s using protocol %s, cipher %s",
        hostname,
        connection.get_protocol_version_name(),
        connection.get_cipher_name(),
    )
    try:
        certificate = connection.get_peer_certificate(as_cryptography=True)
    except TypeError:  # pragma: no cover - pyOpenSSL before 24.3
        certificate = connection.get_peer_certificate()
        if certificate is not None:
            certificate = certificate.to_cryptography()
    if certificate is None:
        return
    logger.debug(
        'SSL connection certificate: issuer "%s", subject "%s"',
        certificate.issuer.rfc4514_string(),
        certificate.subject.rfc4514_string(),
    )
