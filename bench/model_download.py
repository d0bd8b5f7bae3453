"""One model download against a Hub endpoint (HF_ENDPOINT), for bench/models.sh: resolve the manifest, download
into --hub-dir, print one JSON line {files, bytes, seconds, mb_per_s, fetched_files, fetched_bytes}.

    PYTHONPATH=src python bench/model_download.py --repo test-org/bench-llama --hub-dir DIR [--runtime R] [--verify]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sparkrun.models.check import check_cache
from sparkrun.models.download import download_model
from sparkrun.models.manifest import ModelRequest, resolve_manifest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--hub-dir", type=Path, required=True)
    parser.add_argument("--runtime", default="vllm-distributed")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--check-only", action="store_true", help="time check_cache(verify=True) instead")
    args = parser.parse_args()
    manifest = resolve_manifest(ModelRequest(args.repo, args.runtime))
    started = time.monotonic()
    if args.check_only:
        complete = check_cache(args.hub_dir, manifest, verify=True).complete
        seconds = time.monotonic() - started
        print(
            json.dumps(
                {
                    "complete": complete,
                    "bytes": manifest.total_bytes,
                    "seconds": round(seconds, 3),
                    "mb_per_s": round(manifest.total_bytes / 1e6 / seconds, 1),
                }
            )
        )
        return
    report = download_model(manifest, args.hub_dir, max_workers=args.workers)
    seconds = time.monotonic() - started
    print(
        json.dumps(
            {
                "files": len(manifest.files),
                "bytes": manifest.total_bytes,
                "seconds": round(seconds, 3),
                "mb_per_s": round(report.bytes_fetched / 1e6 / seconds, 1) if report.bytes_fetched else 0,
                "fetched_files": len(report.fetched),
                "fetched_bytes": report.bytes_fetched,
            }
        )
    )


if __name__ == "__main__":
    main()
