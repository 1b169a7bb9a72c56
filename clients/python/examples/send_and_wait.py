#!/usr/bin/env python3
"""Sends one message through a sluice gateway and waits for its fate, like
``sluice send --wait``.

    send_and_wait.py --gateway HOST:PORT --tenant T --token K --to +E164 --text TEXT [--from SENDER]

Subscribes with connection scope (only this connection's delivery events,
so it can run beside a campaign system subscribed to the tenant's stream),
submits the message, waits for its terminal event and prints it as one JSON
line (``message_id``, ``client_ref``, ``state``, ``reason``, ``error_code``,
``carrier``, ``channel``, ``segments``, ``at_ms``). Exit status: 0 when
delivered, 1 for any other final state, 2 when the gateway rejected the
message (the JSON line then has ``state: "rejected"`` and the reason), 3 on
a connection or authentication error or a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

try:
    import sluice_client  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sluice_client import Client, Message, SluiceError


async def send_and_wait(args: argparse.Namespace) -> int:
    client = await Client.connect(
        args.gateway,
        args.tenant,
        args.token,
        tls=args.tls,
        ca_file=args.ca_file,
    )
    try:
        events = await client.subscribe("connection")
        message = Message(to=args.to, text=args.text, sender=args.sender, client_ref=args.client_ref or "")
        [result] = await client.submit([message])
        if not result.accepted:
            print(json.dumps({
                "client_ref": result.client_ref,
                "state": "rejected",
                "reason": result.reason,
                "detail": result.detail,
            }))
            return 2
        if result.duplicate:
            print(
                f"{result.client_ref} was submitted before as {result.message_id_hex}: "
                "its events go where the original's go",
                file=sys.stderr,
            )
            return 3
        print(f"{result.client_ref}\t{result.message_id_hex}", file=sys.stderr)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        while True:
            event = await events.next(timeout=max(0.0, deadline - loop.time()))
            d = event.delivery
            if d is None or d.message_id != result.message_id:
                continue  # not ours: left unacknowledged for its owner
            await client.ack(event)
            if d.terminal:
                print(json.dumps(d.to_json()))
                return 0 if d.state == "delivered" else 1
    finally:
        await client.close()  # pings first: the gateway has read the ack


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Send one message and wait for its terminal event.")
    p.add_argument("--gateway", required=True, help="ingest address, HOST:PORT")
    p.add_argument("--tenant", required=True)
    p.add_argument(
        "--token",
        default=os.environ.get("SLUICE_TOKEN"),
        required="SLUICE_TOKEN" not in os.environ,
        help="the tenant's token (default: $SLUICE_TOKEN, which keeps it out of the process list; never printed)",
    )
    p.add_argument("--to", required=True, help="recipient, +E.164")
    p.add_argument("--text", required=True)
    p.add_argument("--from", dest="sender", default="12345", help="sender (default 12345)")
    p.add_argument("--client-ref", default=None, help="idempotency key (default: a random one)")
    p.add_argument("--tls", action="store_true", help="TLS, verified against the system roots")
    p.add_argument("--ca-file", default=None, help="TLS, verified against this PEM CA file")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    args = p.parse_args(argv)
    try:
        return asyncio.run(send_and_wait(args))
    except asyncio.TimeoutError:
        print(f"no terminal event within {args.timeout}s", file=sys.stderr)
        return 3
    except (SluiceError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
