"""Shared fixtures of the Python client's tests.

The tests that need a gateway read where it is from the environment, set by
the Rust test ``tests/python_client.rs`` that starts a gateway and an SMSC
simulator: ``SLUICE_GATEWAY`` (ingest HOST:PORT), ``SLUICE_TENANT``,
``SLUICE_TOKEN``, ``SLUICE_PROXY`` (a fault proxy in front of the gateway),
``SLUICE_CONTROL`` (the harness's control port: ``stats``, ``drained``,
``drop-on-ack N``, ``cut-on-batch N``, ``restart``), ``SLUICE_MEDIA_FILE``
(a GIF), ``SLUICE_TLS_GATEWAY`` (a second gateway that speaks only TLS) and
``SLUICE_TLS_CA`` (its CA). Without them those tests skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from sluice_client import Client

T = TypeVar("T")


@dataclass(frozen=True)
class Gateway:
    """Where the harness's gateway, proxy and control port are."""

    addr: str
    proxy: str
    control_addr: str
    tenant: str
    token: str = field(repr=False)  # never in a failure report
    media_file: str = ""
    tls_addr: str = ""
    tls_ca: str = ""

    def control(self, command: str, timeout: float = 120.0) -> str:
        """Sends one command to the harness and returns its answer line."""
        host, _, port = self.control_addr.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                answer += chunk
        return answer.decode().strip()

    def stats(self) -> dict[str, Any]:
        """The SMSC simulator's counters and texts (``texts``: [to, text, times])."""
        return json.loads(self.control("stats"))

    def times_received(self, marker: str) -> dict[str, int]:
        """How often each text containing ``marker`` reached the SMSC."""
        return {text: n for _, text, n in self.stats()["texts"] if marker in text}

    async def connect(self, via_proxy: bool = False, **options: Any) -> Client:
        """A client of the harness's tenant."""
        return await Client.connect(self.proxy if via_proxy else self.addr, self.tenant, self.token, **options)


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    """The harness's gateway; skips when the tests run without it."""
    names = [
        "SLUICE_GATEWAY",
        "SLUICE_PROXY",
        "SLUICE_CONTROL",
        "SLUICE_TENANT",
        "SLUICE_TOKEN",
        "SLUICE_MEDIA_FILE",
        "SLUICE_TLS_GATEWAY",
        "SLUICE_TLS_CA",
    ]
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"needs a gateway from tests/python_client.rs (unset: {', '.join(missing)})")
    e = os.environ
    return Gateway(*(e[n] for n in names))


def run(coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
    """Runs a test coroutine on a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def marker() -> str:
    """A tag unique to one test, to find its texts at the SMSC."""
    return uuid.uuid4().hex[:12]


async def terminal_states(gateway: Gateway, ids: set[int], timeout: float = 60.0) -> dict[int, str]:
    """Subscribes to the tenant's stream and waits until every message of
    ``ids`` has a terminal event; acknowledges every event it reads."""
    states: dict[int, str] = {}
    seen: dict[int, list[str]] = {}
    events_read = 0
    async with await gateway.connect() as sub:
        events = await sub.subscribe("tenant")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ids <= states.keys():
            try:
                e = await events.next(timeout=max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                missing = sorted(ids - states.keys())
                raise AssertionError(
                    f"{len(missing)} of {len(ids)} messages without a terminal event after {timeout}s "
                    f"({events_read} events read); first missing: "
                    + ", ".join(f"{m:016x} {seen.get(m, [])}" for m in missing[:5])
                ) from None
            events_read += 1
            await sub.ack(e)
            d = e.delivery
            if d is not None and d.message_id in ids:
                seen.setdefault(d.message_id, []).append(d.state)
                if d.terminal:
                    states[d.message_id] = d.state
    return states
