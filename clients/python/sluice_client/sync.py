"""A blocking facade over :class:`~sluice_client.client.Client` for code
without asyncio: the async client runs on an event loop in a background
thread, and each call waits for its result.

    with SyncClient.connect("127.0.0.1:7700", "acme", token) as c:
        results = c.submit([Message(to="+14155550100", text="hi")])
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, Optional, TypeVar, Union

from .client import Client, MessageLike, Scope, Subscription
from .models import Event, Media, SubmitResult

T = TypeVar("T")


class SyncClient:
    """The calls of :class:`Client`, blocking. Not for use from inside a
    running event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: Client) -> None:
        self._loop = loop
        self._thread = thread
        self._client = client
        self._subscription: Optional[Subscription] = None

    @classmethod
    def connect(cls, gateway: str, tenant: str, token: str, **options: Any) -> "SyncClient":
        """As :meth:`Client.connect` (same options)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="sluice-client", daemon=True)
        thread.start()
        try:
            client = asyncio.run_coroutine_threadsafe(Client.connect(gateway, tenant, token, **options), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        return cls(loop, thread, client)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def client(self) -> Client:
        """The async client underneath (use it only on its loop)."""
        return self._client

    def submit(self, messages: Iterable[MessageLike], timeout: Optional[float] = None) -> list[SubmitResult]:
        """As :meth:`Client.submit`."""
        return self._run(self._client.submit(list(messages)), timeout)

    def put_media(self, data: bytes, content_type: str) -> Media:
        """As :meth:`Client.put_media`."""
        return self._run(self._client.put_media(data, content_type))

    def subscribe(self, scope: Scope = "tenant", max_in_flight: int = 0) -> None:
        """As :meth:`Client.subscribe`; read events with :meth:`next_event`."""
        self._subscription = self._run(self._client.subscribe(scope, max_in_flight))

    def next_event(self, timeout: Optional[float] = None) -> Event:
        """The next event (:class:`TimeoutError` after ``timeout`` seconds)."""
        if self._subscription is None:
            raise RuntimeError("subscribe() first")
        return self._run(self._subscription.next(timeout))

    def ack(self, *events: Union[Event, int]) -> None:
        """As :meth:`Client.ack`."""
        self._run(self._client.ack(*events))

    def ping(self, timeout: Optional[float] = 10.0) -> float:
        """As :meth:`Client.ping`."""
        return self._run(self._client.ping(timeout))

    def close(self) -> None:
        """Closes the client and stops its thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
