"""The committed protobuf stubs are what the pinned ``grpcio-tools`` makes of
``proto/sluice/v1/ingest.proto`` (regenerated into a temporary directory and
compared byte for byte)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def test_committed_stubs_are_current() -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        required = os.environ.get("SLUICE_REQUIRE_EXTERNAL", "") not in ("", "0")
        if required:
            pytest.fail("grpcio-tools is not installed (pip install -e 'clients/python[dev]')")
        pytest.skip("needs grpcio-tools (pip install -e 'clients/python[dev]')")
    sys.path.insert(0, str(TOOLS))
    try:
        import gen_proto
    finally:
        sys.path.remove(str(TOOLS))
    stale = gen_proto.stale_files()
    assert not stale, f"{stale} are stale: run python clients/python/tools/gen_proto.py"


def test_stubs_load_with_the_installed_runtime() -> None:
    from sluice_client import ingest_pb2 as pb

    frame = pb.Frame(request_id=7)
    frame.ping.nonce = 9
    again = pb.Frame.FromString(frame.SerializeToString())
    assert again.WhichOneof("body") == "ping" and again.ping.nonce == 9
