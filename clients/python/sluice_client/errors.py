"""Exceptions raised by the sluice client.

Every exception derives from :class:`SluiceError`. Errors the gateway sends
in an ``Error`` frame are :class:`ServerError` (with the protocol's
``ErrorCode`` name in ``code``); the ones a caller usually handles apart have
their own subclasses: :class:`AuthError` (``AUTH_FAILED``: wrong tenant or
token, never retried), :class:`BusyError` (``BUSY``: retry later) and
:class:`MediaRejected` (``MEDIA_REJECTED``). :class:`ConnectionLost` means the
link went down and could not be restored in time; :class:`ClientClosed`
means :meth:`Client.close` was called. Messages never contain the token.
"""

from __future__ import annotations


class SluiceError(Exception):
    """Base of every error of this package."""


class ServerError(SluiceError):
    """The gateway answered with an ``Error`` frame.

    ``code`` is the ``ErrorCode`` name (``"NO_CREDIT"``, ``"INTERNAL"``…)
    and ``message`` the gateway's explanation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AuthError(ServerError):
    """``Hello`` was refused: unknown tenant, wrong token (``AUTH_FAILED``),
    or an unsupported protocol version. Not retried by the client."""


class BusyError(ServerError):
    """The gateway has no room for this connection now (``BUSY``)."""


class MediaRejected(ServerError):
    """``PutMedia`` was refused (type, size, quota…; ``message`` says which)."""


class ConnectionLost(SluiceError):
    """The connection dropped and the request cannot be completed on it (or
    the client gave up reconnecting)."""


class ClientClosed(SluiceError):
    """The client was closed while the request was pending."""


class ProtocolError(SluiceError):
    """The gateway sent something this client cannot make sense of."""


def server_error(code: str, message: str) -> ServerError:
    """The most specific :class:`ServerError` subclass for ``code``."""
    if code in ("AUTH_FAILED", "UNSUPPORTED_VERSION"):
        return AuthError(code, message)
    if code == "BUSY":
        return BusyError(code, message)
    if code == "MEDIA_REJECTED":
        return MediaRejected(code, message)
    return ServerError(code, message)
