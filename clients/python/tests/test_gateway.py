"""The client against a real gateway and SMSC simulator (started by
``tests/python_client.rs``; see ``conftest.py``): submit and events, the
idempotency of ``client_ref``, authentication errors, media upload, credits,
reconnects (a dropped link, a restart with GoAway) that lose nothing and
double nothing, the blocking facade and TLS."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from conftest import Gateway, marker, run, terminal_states
from sluice_client import AuthError, Client, MediaRejected, Message, SyncClient


def test_a_submitted_message_ends_with_a_delivered_event(gateway: Gateway) -> None:
    tag = marker()

    async def go() -> None:
        async with await gateway.connect() as client:
            events = await client.subscribe("connection")
            [r] = await client.submit([Message(to="+14155550200", text=f"delivered {tag}", sender="12345")])
            assert r.status == "accepted", r
            assert r.message_id and len(r.message_id_hex) == 16
            while True:
                e = await events.next(timeout=60)
                await client.ack(e)
                d = e.delivery
                assert d is not None and d.message_id == r.message_id, e  # connection scope: ours only
                if d.terminal:
                    break
            assert d.state == "delivered", d
            assert d.client_ref == r.client_ref
            assert d.to_json()["message_id"] == r.message_id_hex

    run(go())
    assert gateway.times_received(tag) == {f"delivered {tag}": 1}


def test_the_same_client_ref_gets_the_same_id_and_is_sent_once(gateway: Gateway) -> None:
    tag = marker()
    message = Message(to="+14155550201", text=f"once {tag}", sender="12345", client_ref=f"py-idem-{tag}")

    async def go() -> None:
        async with await gateway.connect() as first:
            [a] = await first.submit([message])
            [again] = await first.submit([message])
        async with await gateway.connect() as second:  # as after a dropped link
            [b] = await second.submit([message])
        assert a.status == "accepted" and not a.duplicate, a
        assert again.status == "duplicate" and again.message_id == a.message_id, again
        assert b.status == "duplicate" and b.message_id == a.message_id, b
        assert not b.resent
        states = await terminal_states(gateway, {a.message_id})
        assert states == {a.message_id: "delivered"}

    run(go())
    assert gateway.control("drained") == "ok"
    assert gateway.times_received(tag) == {f"once {tag}": 1}


def test_a_wrong_token_raises_the_auth_error(gateway: Gateway) -> None:
    wrong = "not-the-token-" + marker()

    async def go() -> None:
        with pytest.raises(AuthError) as caught:
            await Client.connect(gateway.addr, gateway.tenant, wrong, reconnect=False)
        assert caught.value.code == "AUTH_FAILED"
        assert wrong not in str(caught.value)

    run(go())


def test_media_upload_returns_a_content_id(gateway: Gateway) -> None:
    gif = Path(gateway.media_file).read_bytes()
    png = (Path(gateway.media_file).parent / "sample.png").read_bytes()

    async def go() -> None:
        async with await gateway.connect() as client:
            frame = client.hello.max_frame_bytes
            assert len(gif) > frame, "the GIF goes in chunks"
            stored = await client.put_media(gif, "image/gif")
            assert len(stored.media_id) == 64 and int(stored.media_id, 16) >= 0
            assert stored.size == len(gif)
            assert stored.content_type == "image/gif"
            assert (await client.put_media(gif, "image/gif")).media_id == stored.media_id
            small = await client.put_media(png, "image/png")  # one frame
            assert small.size == len(png) and small.media_id != stored.media_id
            with pytest.raises(MediaRejected):
                await client.put_media(b"not an image at all", "image/png")

    run(go())


def test_credits_are_never_exceeded_and_pings_answer(gateway: Gateway) -> None:
    tag = marker()
    messages = [Message(to=f"+1415557{i:04}", text=f"credit {tag} {i}", sender="12345") for i in range(700)]

    async def go() -> None:
        async with await gateway.connect() as client:
            assert client.hello.credits < len(messages), "the gateway's grant is smaller than the submission"
            assert client.hello.max_batch_messages < len(messages)
            assert await client.ping() >= 0
            results = await client.submit(messages)  # NO_CREDIT would raise
            assert [r.status for r in results] == ["accepted"] * len(messages)
            assert len({r.message_id for r in results}) == len(messages)
            assert all(r.client_ref.startswith("py-") for r in results), "chosen by the client"
            assert client.reconnects == 0

    run(go())
    assert gateway.control("drained") == "ok"
    assert sorted(gateway.times_received(tag).values()) == [1] * len(messages)


def test_a_connection_dropped_mid_batch_loses_nothing_and_doubles_nothing(gateway: Gateway) -> None:
    tag = marker()
    messages = [
        Message(to=f"+1415558{i:04}", text=f"drop {tag} {i}", sender="12345", client_ref=f"drop-{tag}-{i}")
        for i in range(600)
    ]
    before = gateway.stats()

    async def go() -> None:
        async with await gateway.connect(via_proxy=True) as client:
            # The proxy swallows the second BatchAck and closes the client's
            # side: that batch is durable at the gateway, the client never
            # heard so, and more batches are in flight behind it.
            assert gateway.control("drop-on-ack 2") == "ok"
            results = await client.submit(messages)
            assert client.reconnects >= 1
        assert [r.client_ref for r in results] == [m.client_ref for m in messages]
        assert all(r.accepted for r in results), [r for r in results if not r.accepted]
        ids = {r.message_id for r in results}
        assert len(ids) == len(messages), "one id per message"
        resent = [r for r in results if r.resent]
        assert resent, "the batch whose ack was lost was sent again"
        assert any(r.duplicate for r in resent), "the gateway had it already: the original ids came back"
        states = await terminal_states(gateway, ids)
        assert set(states.values()) == {"delivered"}

    run(go())
    assert gateway.control("drained") == "ok"
    after = gateway.stats()
    assert after["proxy_drops"] == before["proxy_drops"] + 1
    assert after["duplicates"] == before["duplicates"]
    received = gateway.times_received(tag)
    assert len(received) == len(messages), "nothing lost"
    assert set(received.values()) == {1}, "nothing doubled"


def test_a_gateway_restart_says_goaway_and_the_client_carries_on(gateway: Gateway) -> None:
    tag = marker()
    messages = [
        Message(to=f"+1415559{i:04}", text=f"restart {tag} {i}", sender="12345", client_ref=f"restart-{tag}-{i}")
        for i in range(600)
    ]

    async def go() -> None:
        async with await gateway.connect() as client:
            first = await client.submit(messages[:100])
            # Restart while the rest is being submitted: GoAway, the
            # connection closes, the client reconnects and resends.
            restart = asyncio.ensure_future(asyncio.to_thread(gateway.control, "restart"))
            rest = await client.submit(messages[100:])
            assert await restart == "ok"
            await client.ping()  # on the new gateway
            assert client.reconnects >= 1
        results = first + rest
        assert all(r.accepted for r in results), [r for r in results if not r.accepted]
        assert len({r.message_id for r in results}) == len(messages)

    run(go())
    assert gateway.control("drained") == "ok"
    # A message the old gateway had written to the SMSC with no answer yet
    # ends `unknown` instead of going again: at most once each.
    received = gateway.times_received(tag)
    assert set(received.values()) <= {1}, "nothing doubled"
    assert gateway.stats()["duplicates"] == 0


def test_the_blocking_facade(gateway: Gateway) -> None:
    tag = marker()
    with SyncClient.connect(gateway.addr, gateway.tenant, gateway.token) as client:
        assert client.ping() >= 0
        client.subscribe("connection")
        [r] = client.submit([Message(to="+14155550202", text=f"sync {tag}", sender="12345")])
        assert r.accepted
        while True:
            e = client.next_event(timeout=60)
            client.ack(e)
            if e.delivery and e.delivery.terminal:
                break
        assert e.delivery.message_id == r.message_id and e.delivery.state == "delivered"


def test_tls_with_a_ca_file(gateway: Gateway) -> None:
    tag = marker()

    async def go() -> None:
        # The test CA is in no system store: without it the handshake fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            await Client.connect(gateway.tls_addr, gateway.tenant, gateway.token, tls=True, reconnect=False)
        async with await Client.connect(gateway.tls_addr, gateway.tenant, gateway.token, ca_file=gateway.tls_ca) as c:
            events = await c.subscribe("connection")
            [r] = await c.submit([Message(to="+14155550203", text=f"tls {tag}", sender="12345")])
            assert r.accepted, r
            while True:
                e = await events.next(timeout=60)
                await c.ack(e)
                if e.delivery and e.delivery.terminal:
                    break
            assert e.delivery.message_id == r.message_id and e.delivery.state == "delivered"

    run(go())


# Last in the file: when it fails it leaves messages stuck in the gateway,
# and the tests that wait for `drained` would wait for them. (It found a
# gateway bug: a batch whose connection was cut before its BatchAck was
# journaled and deduplicated but never queued until a restart.)
def test_a_network_cut_mid_batch_loses_nothing(gateway: Gateway) -> None:
    tag = marker()
    rounds, per_round = 3, 300

    async def go() -> None:
        for n in range(rounds):
            messages = [
                Message(to=f"+1415560{i:04}", text=f"cut {tag} {n} {i}", sender="12345", client_ref=f"cut-{tag}-{n}-{i}")
                for i in range(per_round)
            ]
            async with await gateway.connect(via_proxy=True) as client:
                # The second batch reaches the gateway, then both sides
                # close at once, while the gateway is storing that batch.
                assert gateway.control("cut-on-batch 2") == "ok"
                results = await client.submit(messages)
                assert client.reconnects >= 1
            assert all(r.accepted for r in results)
            assert len({r.message_id for r in results}) == per_round

    run(go())
    assert gateway.control("drained 10") == "ok", "messages accepted but never sent"
    received = gateway.times_received(tag)
    assert len(received) == rounds * per_round, "nothing lost"
    assert set(received.values()) == {1}, "nothing doubled"
