"""`ranomaly keygen` and `ranomaly sign`: an Ed25519 key pair for model signing, and a local artifact signed.

The signing stack loads only when one of them runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new key pair into a folder (the private key with mode 0600); never overwrite one."""
    from models.signing import generate_key_pair

    private, public = generate_key_pair(Path(args.out))
    print(f"wrote {private} (private, mode 0600: the rApp's model_signing_key_file, or `ranomaly sign --key`)")
    print(f"wrote {public} (public: name it in the xApp's trusted_model_keys)")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign an artifact folder: its signature record beside its manifest (promotion counter --counter)."""
    from models.signing import SIGNATURE_FILE, load_signing_key, sign_folder

    key = load_signing_key(Path(args.key))
    folder = Path(args.artifact)
    sign_folder(key, folder, args.counter)
    print(f"wrote {folder / SIGNATURE_FILE}: signed by key {key.key_id} at promotion counter {args.counter}")
    return 0


def add_commands(commands: Any) -> None:
    """Add `keygen` and `sign` to the CLI's subcommands."""
    keygen = commands.add_parser("keygen", help="write an Ed25519 key pair for signing models")
    keygen.add_argument("--out", required=True, help="folder for model-signing.key (0600) and model-signing.pub")
    keygen.set_defaults(handler=cmd_keygen)
    sign = commands.add_parser("sign", help="sign a local artifact folder (writes signature.json beside its manifest)")
    sign.add_argument("--key", required=True, help="private key file (ranomaly keygen)")
    sign.add_argument("--counter", type=int, default=0, help="promotion counter signed (default 0: a seed model)")
    sign.add_argument("artifact", help="artifact folder")
    sign.set_defaults(handler=cmd_sign)
