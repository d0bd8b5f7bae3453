"""Support for the distribution e2e tests: the Hub stand-in on the control machine's testbed address (hosts reach it),
recipes for its test models, wiping the hosts' caches, taking the engine image off hosts and putting it back, and
watching the hosts' process lists."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2e.cli import IMAGE, sparkrun
from hubstub.fixtures import GATED, GGUF, GOOD_TOKEN, LLAMA
from hubstub.presets import LlamaShape, write_gguf_repo, write_llama_repo
from hubstub.server import HubStub
from testbed.harness import Testbed

CONTROL = "10.213.0.1"  # the control machine's testbed address: the hosts reach the Hub stand-in there
MEDIUM = "test-org/medium-llama"  # ~120 MB in 4 shards: long enough to interrupt a copy on shaped links
MEDIUM_SHAPE = LlamaShape(hidden=1024, intermediate=2816, layers=4, heads=16, kv_heads=4, vocab=32000, shards=4)
HF_CACHE = "/root/.cache/huggingface"  # the testbed cluster connects as root


def start_hub(root: Path) -> HubStub:
    """The Hub stand-in on 10.213.0.1 with the tiny, gated, GGUF and medium test models."""
    hub = HubStub(CONTROL, tokens=frozenset({GOOD_TOKEN})).start()
    llama = write_llama_repo(root / "llama")
    hub.add_repo(LLAMA, llama)
    hub.add_repo(GATED, llama, gated=True)
    hub.add_repo(GGUF, write_gguf_repo(root / "gguf"))
    hub.add_repo(MEDIUM, write_llama_repo(root / "medium", MEDIUM_SHAPE, seed="medium", distractors=False))
    return hub


def hub_env(env: dict[str, str], hub: HubStub, token: str | None = None) -> dict[str, str]:
    """The sparkrun environment pointed at the stand-in (online; no proxy; a token only when asked for)."""
    out = {k: v for k, v in env.items() if k.upper() not in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}}
    out.pop("HF_HUB_OFFLINE", None)
    out.pop("HF_TOKEN", None)
    out["HF_ENDPOINT"] = hub.endpoint
    if token:
        out["HF_TOKEN"] = token
    return out


def write_recipe(directory: Path, name: str, model: str, image: str = IMAGE) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        f"""recipe_version: "2"
model: {model}
runtime: vllm
container: {image}
defaults:
  port: 8000
  host: 0.0.0.0
  served_model_name: {name}
  tensor_parallel: 1
  gpu_memory_utilization: 0.3
  max_model_len: 2048
command: |
  vllm serve {{model}} --host {{host}} --port {{port}} --served-model-name {{served_model_name}} \\
    --tensor-parallel-size {{tensor_parallel}} --gpu-memory-utilization {{gpu_memory_utilization}} \\
    --max-model-len {{max_model_len}}
"""
    )
    return path


def wipe_caches(testbed: Testbed) -> None:
    for host in testbed.hosts:
        testbed.exec(host, f"rm -rf {HF_CACHE}")


def blobs(testbed: Testbed, host: str, repo: str) -> dict[str, int]:
    """name -> size of the files in the host's blobs/ of `repo` (complete blobs and partial copies)."""
    folder = "models--" + repo.replace("/", "--")
    out = testbed.exec(host, f"find {HF_CACHE}/hub/{folder}/blobs -type f -printf '%f %s\\n' 2>/dev/null", check=False)
    return {name: int(size) for name, size in (line.split() for line in out.stdout.splitlines())}


def sync_json(env: dict[str, str], *args: str, timeout: float = 300) -> tuple[int, dict[str, Any], str]:
    r = sparkrun(env, "sync", "--json", *args, timeout=timeout)
    data: dict[str, Any] = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, data, r.stderr


def moved(report: dict[str, Any], item_prefix: str) -> dict[str, int]:
    """host -> bytes written there, for the item (e.g. "model ", "image ")."""
    item = next(i for i in report["items"] if i["item"].startswith(item_prefix))
    return {h["host"]: h["moved"] for h in item["hosts"]}


@contextmanager
def image_only_on(testbed: Testbed, keep: list[str], image: str = IMAGE) -> Iterator[None]:
    """The engine image removed from every host but `keep`; put back on every host afterwards."""
    source = keep[0] if keep else testbed.hosts[0]
    scratch = Path(tempfile.mkdtemp(prefix="sparkrun-e2e-image.", dir="/var/tmp"))
    saved = scratch / "engine.tar"  # the control's docker CLI writes and reads it (not a host's private /tmp)
    testbed.docker(source, "save", "-o", str(saved), image)
    for host in testbed.hosts:
        if host not in keep:
            testbed.docker(host, "rmi", "-f", image, check=False)
    try:
        yield
    finally:
        for host in testbed.hosts:
            if testbed.docker(host, "image", "inspect", image, check=False).returncode != 0:
                testbed.docker(host, "load", "-i", str(saved))
        shutil.rmtree(scratch, ignore_errors=True)


class ProcessWatch:
    """Polls `ps -eo args` on the hosts while a command runs; `seen(text)` lists the host lines that contained it."""

    def __init__(self, testbed: Testbed, needle: str) -> None:
        self.testbed = testbed
        self.needle = needle
        self.hits: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for host in self.testbed.hosts:
                out = self.testbed.exec(host, "ps -eo args", check=False).stdout
                self.hits += [f"{host}: {line}" for line in out.splitlines() if self.needle in line]
            self.polls += 1

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def files_containing(root: Path, needle: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def spawn_sync(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "sparkrun", "sync", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def shaped(testbed: Testbed, rate: str | None, hosts: list[str] | None = None) -> None:
    for host in [*(hosts or testbed.hosts), "control"]:
        testbed.shape(host, rate)
