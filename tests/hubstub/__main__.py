"""Run the Hub stand-in as a process (e2e tests bind it to 10.213.0.1 so test hosts reach it; benchmarks use it too).

    PYTHONPATH=tests python -m hubstub --bind 127.0.0.1 --port 0 --data /var/tmp/hubstub [--bench] [--token T]

Generates the standard repos under --data once (kept between runs), prints one JSON line
`{"endpoint": ..., "repos": [...]}` on stdout when ready, and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from hubstub.presets import LlamaShape, write_gguf_repo, write_llama_repo
from hubstub.server import HubStub


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _ensure(root: Path, writer: object) -> dict[str, Path]:
    done = root / ".complete"
    if not done.exists():
        writer()  # type: ignore[operator]
        done.touch()
    return {k: v for k, v in _files(root).items() if k != ".complete"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubstub", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True, help="where generated model files are kept")
    parser.add_argument("--bench", action="store_true", help="also serve test-org/bench-llama (~1.1 GB)")
    parser.add_argument("--token", action="append", default=[], help="a token accepted for the gated repo")
    args = parser.parse_args(argv)

    stub = HubStub(args.bind, args.port, tokens=frozenset(args.token))
    llama = _ensure(args.data / "llama", lambda: write_llama_repo(args.data / "llama"))
    stub.add_repo("test-org/tiny-llama", llama)
    stub.add_repo("test-org/gated-llama", llama, gated=True)
    stub.add_repo("test-org/tiny-llama-GGUF", _ensure(args.data / "gguf", lambda: write_gguf_repo(args.data / "gguf")))
    if args.bench:
        bench = args.data / "bench"
        files = _ensure(bench, lambda: write_llama_repo(bench, LlamaShape.bench(), seed="bench", distractors=False))
        stub.add_repo("test-org/bench-llama", files)
    stub.start()
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    print(json.dumps({"endpoint": stub.endpoint, "repos": stub.repos.ids()}), flush=True)
    stopped.wait()
    stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
