"""Python client for the sluice SMS/MMS gateway's framed ingest protocol.

Quick start (asyncio)::

    import asyncio
    from sluice_client import Client, Message

    async def main() -> None:
        async with await Client.connect("127.0.0.1:7700", "acme", token) as c:
            events = await c.subscribe("connection")
            [r] = await c.submit([Message(to="+14155550100", text="hi", sender="12345")])
            async for e in events:
                await c.ack(e)
                if e.delivery and e.delivery.message_id == r.message_id and e.delivery.terminal:
                    print(e.delivery.state)
                    break

    asyncio.run(main())

:class:`SyncClient` offers the same calls without asyncio. The protocol
stubs (``ingest_pb2``) are generated from ``proto/sluice/v1/ingest.proto``
and committed.
"""

from .client import PROTOCOL_VERSION, Client, Subscription
from .errors import (
    AuthError,
    BusyError,
    ClientClosed,
    ConnectionLost,
    MediaRejected,
    ProtocolError,
    ServerError,
    SluiceError,
)
from .models import Delivery, Event, Inbound, Media, Message, OptChange, SubmitResult
from .sync import SyncClient

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "AuthError",
    "BusyError",
    "Client",
    "ClientClosed",
    "ConnectionLost",
    "Delivery",
    "Event",
    "Inbound",
    "Media",
    "MediaRejected",
    "Message",
    "OptChange",
    "ProtocolError",
    "ServerError",
    "SluiceError",
    "SubmitResult",
    "Subscription",
    "SyncClient",
]
