"""Regenerate the Python stubs of proto/ into the shared contracts package.

Usage: python scripts/gen_protos.py [OUT_DIR]

OUT_DIR defaults to the repository root, where the stubs land in ranomaly_contracts/ beside the
hand-written modules. The drift test calls generate() with a temporary folder and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def proto_sources() -> list[Path]:
    """Every .proto file under proto/, in a stable order."""
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Generate message, gRPC and typing stubs for every .proto into out_dir; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = proto_sources()
    include = str(Path(protoc.__file__).parent / "_proto")
    plugins = Path(sys.executable).parent  # mypy-protobuf installs its protoc plugins beside python
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(s) for s in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for source in sources:
        package_dir = out_dir / source.parent.relative_to(PROTO_ROOT)
        for parent in [package_dir, *package_dir.parents]:
            if parent == out_dir or out_dir not in parent.parents:
                break
            init = parent / "__init__.py"
            if not init.exists():
                init.write_text("")
        written.extend(sorted(package_dir.glob(f"{source.stem}_pb2*")))
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for path in generate(target):
        print(path.relative_to(target))  # noqa: T201
