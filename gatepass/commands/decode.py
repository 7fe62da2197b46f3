"""``gatepass decode FILE...``: read the QR codes in image files.

With ``--json`` each file gives one line ``{"file": ..., "codes": [{"text": ...,
"bytes_b64": ...}]}``; a file that is missing, not a regular file, not an image,
corrupt or above the image limits (32 MiB, 40 megapixels, 16384 pixels a side) gives
``{"file": ..., "error": "..."}`` and one line ``gatepass: error: ...`` on stderr, and
the others are still decoded (exit code 1 if any file failed, 0 otherwise). When a
decoder backend is missing here (pyzbar without libzbar0, zxing-cpp), the default
decoder uses the others and one ``gatepass: note: ...`` line on stderr says so.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "decode", help="read QR codes in image files", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files (PNG, JPEG, WebP...)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument(
        "--decoder", default="default", metavar="NAME",
        help="default, zxingcpp, pyzbar, opencv or opencv-aruco (default: default)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gate_agent.decode import availability_note, make_decoder
    from gatepass.cli import UsageError
    from hardware.image import quiet_opencv

    try:
        decoder_factory = make_decoder
        decoder_factory(args.decoder)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    note = availability_note(args.decoder)
    if note:
        print(f"gatepass: note: {note}", file=sys.stderr, flush=True)
    quiet_opencv()
    failed = 0
    for name in args.files:
        # A fresh decoder per file: files are unrelated stills, no region memory.
        result = decode_file(name, decoder_factory(args.decoder))
        failed += "error" in result
        if "error" in result:
            print(f"gatepass: error: {result['error']}", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        elif "error" in result:
            print(f"{name}: not read", flush=True)
        elif not result["codes"]:
            print(f"{name}: no QR code", flush=True)
        else:
            for code in result["codes"]:
                print(f"{name}: {code['text']}", flush=True)
    if failed and len(args.files) > 1:
        print(f"gatepass: {failed} of {len(args.files)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


def decode_file(name: str, decoder: Any) -> dict[str, Any]:
    """Decode one file into the JSON shape of ``gatepass decode --json``."""
    from hardware.errors import HardwareError
    from hardware.image import read_image

    try:
        image = read_image(name, grayscale=True)
        codes = decoder.decode(image)
    except HardwareError as exc:
        return {"file": name, "error": str(exc)}
    return {
        "file": name,
        "codes": [
            {"text": c.text, "bytes_b64": base64.b64encode(c.data).decode("ascii")}
            for c in codes
        ],
    }
