"""Asyncio client for the sluice ingest protocol (``proto/sluice/v1/ingest.proto``).

Every frame is a 4-byte big-endian length and a serialized ``Frame``. One
:class:`Client` owns one connection at a time and a reader task that matches
answers to requests by ``request_id``:

- **Hello** with tenant and token on every (re)connect; a refusal raises
  :class:`~sluice_client.errors.AuthError` (never retried).
- **Credits**: the gateway grants credits counted in messages (``HelloOk``,
  each ``BatchAck``, ``CreditGrant``). A batch is written only once the
  client holds as many credits as it has messages; otherwise it waits for a
  grant, so the gateway never has to refuse one with ``NO_CREDIT``.
- **Batches** are pipelined: :meth:`Client.submit` splits messages into
  batches (``max_batch_messages`` and the frame limit from ``HelloOk``),
  writes them all as credits allow and returns one
  :class:`~sluice_client.models.SubmitResult` per message, in order.
- **Reconnect**: when the link drops (or the gateway says ``GoAway``), the
  client reconnects with back-off, subscribes again and resends every batch
  whose ``BatchAck`` it had not read, unchanged (same ``client_ref``). The
  gateway answers a ``client_ref`` it already holds with the original id
  (``duplicate``), so nothing is lost and nothing sent twice.
- **Media**: :meth:`Client.put_media` uploads in one frame or in chunks
  below the frame limit; it is content-addressed, so a retry is harmless.
- **Events**: :meth:`Client.subscribe` returns an async iterator of
  :class:`~sluice_client.models.Event`; acknowledge each with
  :meth:`Client.ack`. Unacknowledged events are sent again, so events are
  at least once.
- **Ping/Pong**: :meth:`Client.ping` measures a round trip; a keep-alive
  ping every ``keepalive`` seconds drops a dead link so it is reconnected.
  The gateway's own pings are answered.

Everything runs on the caller's event loop; the client is not thread safe
(see :mod:`sluice_client.sync` for a blocking facade).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl as _ssl
import struct
import time
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from . import ingest_pb2 as pb
from .errors import (
    AuthError,
    ClientClosed,
    ConnectionLost,
    ProtocolError,
    ServerError,
    server_error,
)
from .models import Event, Media, Message, SubmitResult, new_client_ref

__all__ = ["Client", "Subscription", "PROTOCOL_VERSION"]

#: The protocol version this client speaks (``Hello.protocol_version``).
PROTOCOL_VERSION = 1
#: The gateway's frame limit before ``HelloOk`` tells the real one.
PRE_HELLO_MAX_FRAME = 64 * 1024
#: Largest frame accepted from the gateway.
MAX_INBOUND_FRAME = 64 << 20
#: Error codes after which a batch is sent again on a new connection.
_RETRYABLE = frozenset({"INTERNAL", "SHUTTING_DOWN"})

log = logging.getLogger("sluice_client")

Scope = Literal["tenant", "connection"]
MessageLike = Union[Message, pb.SubmitMessage]


def encode_frame(request_id: int, body: str, msg: object) -> bytes:
    """``msg`` as the ``body`` field of a ``Frame``, with its length prefix."""
    frame = pb.Frame(request_id=request_id)
    sub = getattr(frame, body)
    sub.SetInParent()  # present even when empty (e.g. a default Subscribe)
    sub.MergeFrom(msg)
    data: bytes = frame.SerializeToString()
    return struct.pack(">I", len(data)) + data


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_INBOUND_FRAME) -> pb.Frame:
    """Reads one length-prefixed ``Frame``.

    Raises :class:`asyncio.IncompleteReadError` at end of stream and
    :class:`ProtocolError` for an oversized or undecodable frame.
    """
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    if n > limit:
        raise ProtocolError(f"frame of {n} bytes exceeds the limit of {limit}")
    frame = pb.Frame()
    try:
        frame.ParseFromString(await reader.readexactly(n))
    except Exception as e:  # DecodeError's module differs between runtimes
        raise ProtocolError(f"undecodable frame: {e}") from e
    return frame


def _error_of(frame: pb.Frame) -> ServerError:
    e = frame.error
    try:
        code = pb.ErrorCode.Name(e.code)
    except ValueError:
        code = str(e.code)
    return server_error(code, e.message)


@dataclass
class _Batch:
    messages: list[pb.SubmitMessage]
    future: "asyncio.Future[list[SubmitResult]]"
    sends: int = 0


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    hello: pb.HelloOk
    generation: int
    going_away: bool = False
    refused: set[int] = field(default_factory=set)
    task: Optional["asyncio.Task[None]"] = None
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass  # the reader notices the loss and reconnects


class Subscription:
    """Async iterator over the events of :meth:`Client.subscribe`.

    Ends when the client is closed (or gives up reconnecting). Acknowledge
    each event with :meth:`Client.ack` (or :meth:`ack` here) once handled.
    """

    def __init__(self, client: "Client") -> None:
        self._client = client

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        item = await self._client._events.get()
        if item is None:
            self._client._events.put_nowait(None)  # wake other readers too
            raise StopAsyncIteration
        return item

    async def next(self, timeout: Optional[float] = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds
        (:class:`asyncio.TimeoutError` past it; :class:`ClientClosed` when
        the stream ended)."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise ClientClosed("the event stream ended") from None

    async def ack(self, *events: Union[Event, int]) -> None:
        """Same as :meth:`Client.ack`."""
        await self._client.ack(*events)


class Client:
    """A connection to a sluice gateway's ingest listener that survives
    reconnects. Create it with :meth:`Client.connect`; use it as an async
    context manager or call :meth:`close`."""

    def __init__(
        self,
        gateway: str,
        tenant: str,
        token: str,
        *,
        ssl: Optional[_ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        client_name: str = "sluice-client-python/0.1",
        max_batch: Optional[int] = None,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        reconnect_timeout: float = 60.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 5.0,
        keepalive: Optional[float] = 30.0,
    ) -> None:
        host, _, port = gateway.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"gateway must be HOST:PORT, not {gateway!r}")
        self._host = host.strip("[]")
        self._port = int(port)
        self._tenant = tenant
        self._token = token
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._client_name = client_name
        self._max_batch = max_batch
        self._connect_timeout = connect_timeout
        self._reconnect = reconnect
        self._reconnect_timeout = reconnect_timeout
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._keepalive = keepalive

        self._ids = itertools.count(1)
        self._conn: Optional[_Conn] = None
        self._generation = 0
        self._ready = asyncio.Event()
        self._credits = 0
        self._credit_changed = asyncio.Condition()
        self._unacked: dict[int, _Batch] = {}
        self._resend: list[_Batch] = []
        self._pending: dict[int, asyncio.Future[pb.Frame]] = {}
        self._events: asyncio.Queue[Optional[Event]] = asyncio.Queue()
        self._subscription: Optional[pb.Subscribe] = None
        self._closed = False
        self._fatal: Optional[BaseException] = None
        self._reconnector: Optional[asyncio.Task[None]] = None
        self._keepalive_task: Optional[asyncio.Task[None]] = None
        self._background: set[asyncio.Task[None]] = set()
        #: Times the connection was re-established.
        self.reconnects = 0
        #: ``HelloOk`` of the current (or last) connection.
        self.hello: pb.HelloOk = pb.HelloOk()

    # === connecting ===

    @classmethod
    async def connect(
        cls,
        gateway: str,
        tenant: str,
        token: str,
        *,
        tls: bool = False,
        ca_file: Optional[str] = None,
        ssl: Optional[_ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        **options: object,
    ) -> "Client":
        """Connects to ``gateway`` (``HOST:PORT``), says Hello and waits for
        ``HelloOk``.

        TLS: ``tls=True`` verifies the gateway against the system roots,
        ``ca_file`` against a PEM CA file (and implies TLS), or pass a ready
        ``ssl`` context. Other keyword options are those of :class:`Client`
        (``max_batch``, ``reconnect``, ``reconnect_timeout``,
        ``keepalive``…).

        Raises :class:`AuthError` when the tenant or token is refused,
        :class:`BusyError` / :class:`OSError` when the gateway cannot take
        the connection.
        """
        if ssl is None and (tls or ca_file):
            ssl = _ssl.create_default_context(cafile=ca_file)
        client = cls(gateway, tenant, token, ssl=ssl, server_hostname=server_hostname, **options)  # type: ignore[arg-type]
        await client._open()
        if client._keepalive:
            client._keepalive_task = asyncio.ensure_future(client._keepalive_loop())
        return client

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> None:
        """One connection attempt: Hello, subscribe again, resend unanswered
        batches, then let new requests through."""
        kwargs: dict[str, Any] = {}
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
            kwargs["server_hostname"] = self._server_hostname or self._host
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port, **kwargs), self._connect_timeout
        )
        try:
            hello = pb.Hello(
                protocol_version=PROTOCOL_VERSION,
                tenant=self._tenant,
                token=self._token,
                client_name=self._client_name,
            )
            rid = next(self._ids)
            writer.write(encode_frame(rid, "hello", hello))
            await writer.drain()
            frame = await asyncio.wait_for(read_frame(reader, PRE_HELLO_MAX_FRAME), self._connect_timeout)
        except asyncio.IncompleteReadError:
            writer.close()
            raise ConnectionLost("the gateway closed the connection before HelloOk") from None
        except BaseException:
            writer.close()
            raise
        which = frame.WhichOneof("body")
        if which != "hello_ok":
            writer.close()
            if which == "error":
                raise _error_of(frame)
            raise ProtocolError(f"expected HelloOk, got {which}")
        self._generation += 1
        conn = _Conn(reader, writer, frame.hello_ok, self._generation)
        self._conn = conn
        self.hello = frame.hello_ok
        self._credits = frame.hello_ok.credits
        conn.task = asyncio.ensure_future(self._read_loop(conn))
        await self._notify_credits()
        if self._subscription is not None:
            answer = await self._request(conn, "subscribe", self._subscription)
            if answer.WhichOneof("body") != "subscribe_ok":
                raise ProtocolError(f"expected SubscribeOk, got {answer.WhichOneof('body')}")
        while self._resend:
            batch = self._resend[0]
            await self._take_credits(conn, len(batch.messages))
            self._resend.pop(0)
            self._write_batch(conn, batch)
            await conn.drain()
        if self._conn is conn and not conn.going_away:
            self._ready.set()

    async def _reconnect_loop(self) -> None:
        delay = self._reconnect_min
        deadline = time.monotonic() + self._reconnect_timeout
        last: BaseException = ConnectionLost("connection lost")
        while not self._closed:
            if self._conn is None:
                try:
                    await self._open()
                    self.reconnects += 1
                    log.info("reconnected to %s:%s", self._host, self._port)
                except AuthError as e:
                    self._fail_everything(e)
                    return
                except (OSError, asyncio.TimeoutError, ConnectionLost, ServerError, ProtocolError) as e:
                    last = e
                    log.info("reconnect failed: %s", e)
                    conn = self._conn
                    if conn is not None and not conn.writer.is_closing():
                        conn.writer.close()  # half set up: start over
            if self._conn is not None and self._ready.is_set():
                return
            if self._conn is not None:
                # Connected but the connection went away during the resend:
                # wait for its reader to notice.
                await self._conn.lost.wait()
                continue
            if time.monotonic() > deadline:
                self._fail_everything(ConnectionLost(f"could not reconnect within {self._reconnect_timeout}s: {last}"))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    def _lost(self, conn: _Conn, why: str) -> None:
        """``conn`` is gone: requeue its unanswered batches, fail its other
        requests, and reconnect (or fail everything when closed)."""
        conn.lost.set()
        if conn.writer is not None and not conn.writer.is_closing():
            conn.writer.close()
        if self._conn is not conn:
            return
        self._conn = None
        self._ready.clear()
        self._resend = list(self._unacked.values()) + self._resend
        self._unacked.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(why))
        self._pending.clear()
        self._spawn(self._notify_credits())
        if self._closed:
            return
        if not self._reconnect:
            self._fail_everything(ConnectionLost(why))
            return
        log.info("connection lost (%s); reconnecting", why)
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.ensure_future(self._reconnect_loop())

    def _fail_everything(self, exc: BaseException) -> None:
        self._fatal = exc
        for batch in self._resend + list(self._unacked.values()):
            if not batch.future.done():
                batch.future.set_exception(exc)
        self._resend.clear()
        self._unacked.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        self._events.put_nowait(None)
        self._ready.set()  # wake waiters so they see the failure
        self._spawn(self._notify_credits())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Closes the connection. Pending requests fail with
        :class:`ClientClosed`; the event iterator ends. A Ping first makes
        sure the gateway has read every :meth:`ack` sent before."""
        if self._closed:
            return
        conn = self._conn
        if conn is not None and self._fatal is None:
            try:
                await self.ping(timeout=2.0)
            except Exception:  # best effort: closing anyway
                pass
        self._closed = True
        for task in (self._reconnector, self._keepalive_task):
            if task is not None:
                task.cancel()
        self._fail_everything(ClientClosed("client closed"))
        if conn is not None:
            conn.writer.close()
            try:
                await conn.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            if conn.task is not None:
                await asyncio.gather(conn.task, return_exceptions=True)

    # === reading ===

    async def _read_loop(self, conn: _Conn) -> None:
        why = "closed by the gateway"
        try:
            while True:
                frame = await read_frame(conn.reader)
                self._dispatch(conn, frame)
        except asyncio.IncompleteReadError:
            pass
        except (ConnectionError, OSError, ProtocolError) as e:
            why = str(e) or type(e).__name__
        except asyncio.CancelledError:
            why = "cancelled"
            raise
        finally:
            self._lost(conn, why)

    def _dispatch(self, conn: _Conn, frame: pb.Frame) -> None:
        which = frame.WhichOneof("body")
        rid = frame.request_id
        if which == "batch_ack":
            ack = frame.batch_ack
            self._credits += ack.credits
            self._spawn(self._notify_credits())
            batch = self._unacked.pop(rid, None)
            if batch is None:
                log.warning("BatchAck for unknown request %d", rid)
                return
            if len(ack.results) != len(batch.messages):
                batch.future.set_exception(
                    ProtocolError(f"{len(ack.results)} results for {len(batch.messages)} messages")
                )
                return
            resent = batch.sends > 1
            if not batch.future.done():
                batch.future.set_result([SubmitResult.from_proto(r, resent) for r in ack.results])
        elif which == "credit_grant":
            self._credits += frame.credit_grant.credits
            self._spawn(self._notify_credits())
        elif which == "event_batch":
            for e in frame.event_batch.events:
                self._events.put_nowait(Event.from_proto(e))
        elif which == "ping":
            conn.write(encode_frame(rid, "pong", pb.Pong(nonce=frame.ping.nonce)))
        elif which == "go_away":
            log.info("gateway going away: %s", frame.go_away.reason)
            conn.going_away = True
            self._ready.clear()
            self._spawn(self._close_when_idle(conn))
        elif which == "error":
            err = _error_of(frame)
            batch = self._unacked.get(rid)
            if batch is not None:
                if err.code in _RETRYABLE:
                    # Left unanswered: resent on the next connection.
                    conn.refused.add(rid)
                    conn.going_away = True
                    self._ready.clear()
                    self._spawn(self._close_when_idle(conn))
                    return
                del self._unacked[rid]
                self._credits += len(batch.messages)  # a refused batch costs none
                self._spawn(self._notify_credits())
                if not batch.future.done():
                    batch.future.set_exception(err)
                return
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)
                return
            log.warning("gateway error: %s", err)
        else:
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
            elif fut is None:
                log.debug("unexpected %s (request %d)", which, rid)

    async def _close_when_idle(self, conn: _Conn, grace: float = 5.0) -> None:
        """After GoAway (or a retryable error): let the answers in flight
        arrive (at most ``grace`` seconds), then close so the reader
        reconnects and resends whatever is still unanswered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        lost = asyncio.ensure_future(conn.lost.wait())
        try:
            while self._conn is conn:
                waiting: list[asyncio.Future[Any]] = [
                    b.future for rid, b in self._unacked.items() if rid not in conn.refused
                ]
                waiting += self._pending.values()
                remaining = deadline - loop.time()
                if not waiting or remaining <= 0:
                    break
                await asyncio.wait([*waiting, lost], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not conn.writer.is_closing():
            conn.writer.close()

    # === credits ===

    async def _notify_credits(self) -> None:
        async with self._credit_changed:
            self._credit_changed.notify_all()

    async def _take_credits(self, conn: _Conn, n: int) -> None:
        """Waits until ``n`` credits are held on ``conn`` and takes them.
        Raises :class:`ConnectionLost` when ``conn`` goes first."""
        async with self._credit_changed:
            await self._credit_changed.wait_for(
                lambda: self._credits >= n or self._conn is not conn or self._fatal is not None
            )
            if self._fatal is not None:
                raise self._fatal
            if self._conn is not conn:
                raise ConnectionLost("connection lost while waiting for credits")
            self._credits -= n

    @property
    def credits(self) -> int:
        """Credits (messages) currently held."""
        return self._credits

    # === requests ===

    async def _usable(self) -> _Conn:
        """The connection, once it is up and every resend is on it."""
        while True:
            if self._closed:
                raise ClientClosed("client closed")
            if self._fatal is not None:
                raise self._fatal
            conn = self._conn
            if conn is not None and self._ready.is_set() and not conn.going_away:
                return conn
            # Cleared while (re)connecting or after GoAway; set once usable
            # again, or on a fatal error.
            await self._ready.wait()

    async def _request(self, conn: _Conn, body: str, msg: object, timeout: Optional[float] = None) -> pb.Frame:
        rid = next(self._ids)
        fut: asyncio.Future[pb.Frame] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        conn.write(encode_frame(rid, body, msg))
        await conn.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)

    def _write_batch(self, conn: _Conn, batch: _Batch) -> None:
        rid = next(self._ids)
        batch.sends += 1
        self._unacked[rid] = batch
        conn.write(encode_frame(rid, "submit_batch", pb.SubmitBatch(messages=batch.messages)))

    def _chunks(self, messages: list[pb.SubmitMessage]) -> list[list[pb.SubmitMessage]]:
        max_n = self.hello.max_batch_messages or 1000
        if self._max_batch:
            max_n = min(max_n, self._max_batch)
        if self.hello.credits:
            # A batch larger than the whole grant could never be sent.
            max_n = min(max_n, self.hello.credits)
        budget = (self.hello.max_frame_bytes or 4 << 20) - 64
        out: list[list[pb.SubmitMessage]] = []
        cur: list[pb.SubmitMessage] = []
        size = 0
        for m in messages:
            n = m.ByteSize() + 6  # tag and length of the repeated field
            if cur and (len(cur) >= max_n or size + n > budget):
                out.append(cur)
                cur, size = [], 0
            cur.append(m)
            size += n
        if cur:
            out.append(cur)
        return out

    async def submit(self, messages: Iterable[MessageLike]) -> list[SubmitResult]:
        """Submits messages and returns one result per message, in order.

        Messages are split into batches that fit the gateway's limits and
        pipelined as credits allow. A batch whose answer is lost with the
        connection is resent after the reconnect (same ``client_ref``s).
        Each message without a ``client_ref`` gets a random one, kept for
        its resends.

        Raises :class:`ServerError` when the gateway refuses a batch as a
        whole, :class:`ConnectionLost` when it cannot reconnect in time,
        :class:`ClientClosed` after :meth:`close`.
        """
        protos = [m.to_proto() if isinstance(m, Message) else m for m in messages]
        for m in protos:
            if not m.client_ref:
                m.client_ref = new_client_ref()
        if not protos:
            return []
        await self._usable()
        loop = asyncio.get_running_loop()
        batches = [_Batch(chunk, loop.create_future()) for chunk in self._chunks(protos)]
        try:
            for batch in batches:
                while True:
                    conn = await self._usable()
                    try:
                        await self._take_credits(conn, len(batch.messages))
                    except ConnectionLost:
                        continue
                    self._write_batch(conn, batch)
                    await conn.drain()
                    break
        except BaseException as e:
            # Batches never written fail with the same error.
            for b in batches:
                if b.sends == 0 and not b.future.done():
                    b.future.set_exception(e if isinstance(e, Exception) else ClientClosed("cancelled"))
            raise
        answers = await asyncio.gather(*(b.future for b in batches), return_exceptions=True)
        results: list[SubmitResult] = []
        for a in answers:
            if isinstance(a, BaseException):
                raise a
            results.extend(a)
        return results

    async def put_media(self, data: bytes, content_type: str, *, timeout: Optional[float] = 60.0) -> Media:
        """Uploads media once (content-addressed: the same bytes give the
        same id) and returns its id for :attr:`Message.media`. Files larger
        than the gateway's frame limit go in chunks; an upload cut by a
        reconnect starts again.

        Raises :class:`MediaRejected` when the gateway refuses the type,
        size or quota.
        """
        for attempt in itertools.count():
            conn = await self._usable()
            try:
                return await self._upload(conn, bytes(data), content_type, timeout)
            except ConnectionLost:
                if attempt >= 3:
                    raise
        raise AssertionError("unreachable")

    async def _upload(self, conn: _Conn, data: bytes, content_type: str, timeout: Optional[float]) -> Media:
        chunk = max(1024, (conn.hello.max_frame_bytes or PRE_HELLO_MAX_FRAME) - 1024)
        if len(data) <= chunk:
            frame = await self._request(
                conn,
                "put_media",
                pb.PutMedia(content_type=content_type, total_size=len(data), data=data, last=True),
                timeout,
            )
            return _media_of(frame)
        upload_id = f"py-{uuid.uuid4().hex}"
        offset = 0
        while True:
            end = min(offset + chunk, len(data))
            last = end == len(data)
            frame = await self._request(
                conn,
                "put_media",
                pb.PutMedia(
                    upload_id=upload_id,
                    content_type=content_type,
                    total_size=len(data),
                    offset=offset,
                    data=data[offset:end],
                    last=last,
                ),
                timeout,
            )
            if last:
                return _media_of(frame)
            if frame.WhichOneof("body") != "media_ok":
                raise ProtocolError(f"expected MediaOk, got {frame.WhichOneof('body')}")
            offset = end

    async def subscribe(self, scope: Scope = "tenant", max_in_flight: int = 0) -> Subscription:
        """Starts the event stream and returns its iterator.

        ``scope="tenant"``: the tenant's stream, shared with its other
        tenant-scoped connections. ``scope="connection"``: only the delivery
        events of messages submitted on this connection from now on (as
        ``sluice send --wait``). After a reconnect the client subscribes
        again with the same scope; a connection-scoped stream then covers
        messages submitted from the reconnect on, and the events of earlier
        ones go to the tenant stream (see the README). ``max_in_flight``
        bounds the events sent but not acknowledged (0: the gateway's
        default). Subscribing again may change ``max_in_flight``, not the scope.
        """
        sub = pb.Subscribe(
            max_in_flight=max_in_flight,
            scope=pb.SCOPE_CONNECTION if scope == "connection" else pb.SCOPE_TENANT,
        )
        conn = await self._usable()
        answer = await self._request(conn, "subscribe", sub)
        if answer.WhichOneof("body") != "subscribe_ok":
            raise ProtocolError(f"expected SubscribeOk, got {answer.WhichOneof('body')}")
        self._subscription = sub
        return Subscription(self)

    async def ack(self, *events: Union[Event, int]) -> None:
        """Acknowledges events (or event ids): the gateway forgets them.
        While disconnected this does nothing; the gateway sends the events
        again after the reconnect."""
        ids = [e.event_id if isinstance(e, Event) else int(e) for e in events]
        conn = self._conn
        if not ids or conn is None:
            return
        conn.write(encode_frame(0, "event_ack", pb.EventAck(event_ids=ids)))
        await conn.drain()

    async def ping(self, timeout: Optional[float] = 10.0) -> float:
        """A Ping/Pong round trip; returns its time in seconds."""
        conn = self._conn or await self._usable()
        start = time.monotonic()
        nonce = next(self._ids)
        answer = await self._request(conn, "ping", pb.Ping(nonce=nonce), timeout)
        if answer.WhichOneof("body") != "pong":
            raise ProtocolError(f"expected Pong, got {answer.WhichOneof('body')}")
        return time.monotonic() - start

    async def _keepalive_loop(self) -> None:
        assert self._keepalive
        while not self._closed:
            await asyncio.sleep(self._keepalive)
            conn = self._conn
            if conn is None or not self._ready.is_set():
                continue
            try:
                await self.ping(timeout=self._keepalive)
            except asyncio.TimeoutError:
                log.warning("no Pong within %ss; dropping the connection", self._keepalive)
                if not conn.writer.is_closing():
                    conn.writer.close()
            except Exception:  # the reader handles losses
                pass

    @property
    def connected(self) -> bool:
        """True while a connection is up and usable."""
        return self._conn is not None and self._ready.is_set()


def _media_of(frame: pb.Frame) -> Media:
    if frame.WhichOneof("body") != "media_ok":
        raise ProtocolError(f"expected MediaOk, got {frame.WhichOneof('body')}")
    ok = frame.media_ok
    return Media(ok.media_id, ok.size, ok.content_type)
