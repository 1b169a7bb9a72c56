"""Regenerates (or checks) the committed protobuf stubs of `sluice_client`.

`sluice_client/ingest_pb2.py` and `ingest_pb2.pyi` are generated from the
repository's `proto/sluice/v1/ingest.proto` with the pinned `grpcio-tools`
(see `pyproject.toml`, extra `dev`) and committed, so installing the client
needs no compiler. Run from anywhere:

    python tools/gen_proto.py           # rewrite the committed stubs
    python tools/gen_proto.py --check   # exit 1 when they are stale

The check regenerates into a temporary directory and compares byte for byte;
`tests/test_generated.py` runs it under pytest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "sluice_client"
PROTO_ROOT = HERE.parent.parent.parent / "proto"
PROTO = "sluice/v1/ingest.proto"
OUTPUTS = ("ingest_pb2.py", "ingest_pb2.pyi")


def generate(out_dir: Path) -> dict[str, bytes]:
    """Runs protoc (from grpcio-tools) into `out_dir`; returns name -> bytes."""
    from grpc_tools import protoc  # the pinned generator; imported late on purpose

    code = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            str(PROTO_ROOT / PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    generated = out_dir / Path(PROTO).parent
    return {name: (generated / name).read_bytes() for name in OUTPUTS}


def stale_files() -> list[str]:
    """Names of committed stubs that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    stale = []
    for name, data in fresh.items():
        committed = PACKAGE / name
        if not committed.exists() or committed.read_bytes() != data:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed stubs are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(
                f"stale: {', '.join(stale)} differ from {PROTO}; run python clients/python/tools/gen_proto.py",
                file=sys.stderr,
            )
            return 1
        print("protobuf stubs are current")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    for name, data in fresh.items():
        (PACKAGE / name).write_bytes(data)
        print(f"wrote {PACKAGE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
