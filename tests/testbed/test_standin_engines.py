"""The stand-in engines on their own (no cluster, no root): flags, --version, HTTP API, SSE, rendezvous, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from testbed.standin_harness import Runner, free_port


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post(url: str, body: dict[str, object]) -> tuple[int, str, str]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def wait_ok(url: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = get(url, timeout=1)
            if status == 200:
                return body
            last = status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{url}: {last}")


# -- HTTP --------------------------------------------------------------------------------------------------------
def test_vllm_solo_api_and_sigterm(engine: Runner) -> None:
    port = free_port()
    p = engine(
        "vllm", "serve", "Qwen/Qwen3-0.6B", "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "q"
    )
    base = f"http://127.0.0.1:{port}"
    models = json.loads(wait_ok(f"{base}/v1/models"))
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["q"]
    assert get(f"{base}/health")[0] == 200
    p.wait_for(f"Starting vLLM API server 0 on http://127.0.0.1:{port}")
    # streamed: SSE data lines, role first, content, finish_reason, then [DONE]
    msg = {"role": "user", "content": "Reply with exactly: sparkrun-ready"}
    status, ctype, body = post(f"{base}/v1/chat/completions", {"model": "q", "stream": True, "messages": [msg]})
    assert status == 200 and ctype.startswith("text/event-stream")
    lines = [ln for ln in body.split("\n") if ln]
    assert all(ln.startswith("data: ") for ln in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "q" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "sparkrun-ready"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # plain JSON
    status, ctype, body = post(f"{base}/v1/chat/completions", {"model": "q", "messages": [msg]})
    reply = json.loads(body)
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]["content"] == "sparkrun-ready"
    assert reply["usage"]["completion_tokens"] == 1
    # unknown served model name: 404 like vLLM
    status, _, body = post(f"{base}/v1/chat/completions", {"model": "nope", "messages": [msg]})
    assert status == 404 and "does not exist" in body
    t0 = time.monotonic()
    assert p.term() == 0
    assert time.monotonic() - t0 < 3


def test_llama_server_answers_503_while_loading(engine: Runner) -> None:
    port = free_port()
    p = engine(
        "llama-server", "-m", "/models/x.gguf", "--host", "127.0.0.1", "--port", str(port), "--alias", "x",
        env={"STANDIN_STARTUP_SECONDS": "1.5"},
    )  # fmt: skip
    p.wait_for("HTTP server is listening")
    status, body = get(f"http://127.0.0.1:{port}/health")
    assert status == 503 and "Loading model" in body
    assert json.loads(wait_ok(f"http://127.0.0.1:{port}/health")) == {"status": "ok"}
    assert json.loads(wait_ok(f"http://127.0.0.1:{port}/v1/models"))["data"][0]["id"] == "x"
    assert p.term() == 0


def test_sigint_and_startup_failure(engine: Runner) -> None:
    p = engine(
        "sglang", "serve", "--model-path", "m", "--port", str(free_port()), env={"STANDIN_STARTUP_SECONDS": "30"}
    )
    p.wait_for("Load weight begin")
    p.popen.send_signal(signal.SIGINT)
    assert p.wait(5) == 0
    f = engine(
        "vllm", "serve", "m", "--port", str(free_port()), env={"STANDIN_FAIL": "startup", "STANDIN_FAIL_EXIT": "3"}
    )
    assert f.wait() == 3
    assert "crashed during start-up" in f.output
    r = engine(
        "vllm", "serve", "m", "--port", str(free_port()), env={"STANDIN_FAIL": "ready", "STANDIN_FAIL_AFTER": "0.2"}
    )
    assert r.wait() == 1
    assert "Application startup complete." in r.output and "crashed after start-up" in r.output


def test_gpu_and_model_checks(engine: Runner, tmp_path: Path) -> None:
    port = str(free_port())
    no_gpu = engine("vllm", "serve", "m", "--port", port, env={"STANDIN_REQUIRE_GPU": "1"})
    assert no_gpu.wait() == 1 and "No CUDA GPUs are available" in no_gpu.output
    two = engine(
        "vllm",
        "serve",
        "m",
        "-tp",
        "2",
        "--port",
        port,
        env={"STANDIN_REQUIRE_GPU": "1", "NVIDIA_VISIBLE_DEVICES": "all"},
    )
    assert two.wait() == 1 and "needs 2 GPUs" in two.output
    check = {"STANDIN_CHECK_MODEL": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    missing = engine("vllm", "serve", "org/model", "--port", port, env=check)
    assert missing.wait() == 1 and "couldn't find them in the cached files" in missing.output
    snap = tmp_path / "hf" / "hub" / "models--org--model" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    ok = engine("vllm", "serve", "org/model", "--port", port, "--host", "127.0.0.1", env=check)
    wait_ok(f"http://127.0.0.1:{port}/v1/models")
    assert ok.term() == 0


# -- rendezvous ---------------------------------------------------------------------------------------------------
def test_vllm_rendezvous_on_localhost(engine: Runner) -> None:
    mport, port = free_port(), free_port()
    common = [
        "vllm",
        "serve",
        "m",
        "-tp",
        "2",
        "--nnodes",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(mport),
    ]
    head = engine(*common, "--node-rank", "0", "--host", "127.0.0.1", "--port", str(port))
    head.wait_for("rank 0 joined")
    assert get_refused_or_hang(port)  # not ready before the worker joined
    worker = engine(*common, "--node-rank", "1", "--headless")
    wait_ok(f"http://127.0.0.1:{port}/v1/models")
    worker.wait_for("Running headless")
    # the worker dies: the head fails like on an NCCL error
    worker.popen.kill()
    assert head.wait(15) == 1
    assert "NCCL error" in head.output


def get_refused_or_hang(port: int) -> bool:
    try:
        get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5)
    except OSError:
        return True
    return False


def test_rendezvous_timeouts(engine: Runner) -> None:
    mport = free_port()  # nobody listens there
    fast = {"STANDIN_RENDEZVOUS_TIMEOUT": "1"}
    t0 = time.monotonic()
    worker = engine(
        "vllm", "serve", "m", "-tp", "2", "--nnodes", "2", "--node-rank", "1", "--master-addr", "127.0.0.1",
        "--master-port", str(mport), "--headless", env=fast,
    )  # fmt: skip
    assert worker.wait() == 1
    assert time.monotonic() - t0 < 6
    assert f"timed out after 1s while trying to connect to (127.0.0.1, {mport})" in worker.output
    head = engine(
        "sglang", "serve", "--model-path", "m", "--tp-size", "2", "--nnodes", "2", "--node-rank", "0",
        "--dist-init-addr", f"127.0.0.1:{free_port()}", "--port", str(free_port()), env=fast,
    )  # fmt: skip
    assert head.wait() == 1
    assert "rendezvous timed out" in head.output


def test_rendezvous_rejects_mismatched_nnodes(engine: Runner) -> None:
    mport = free_port()
    head = engine(
        "vllm", "serve", "m", "-tp", "2", "--nnodes", "2", "--node-rank", "0", "--master-port", str(mport),
        "--port", str(free_port()),
    )  # fmt: skip
    head.wait_for("rank 0 joined")
    worker = engine(
        "vllm", "serve", "m", "-tp", "3", "--nnodes", "3", "--node-rank", "1", "--master-port", str(mport), "--headless"
    )
    assert worker.wait() == 1 and head.wait() == 1
    assert "nnodes=3" in worker.output


def test_sglang_rendezvous_clean_stop(engine: Runner) -> None:
    dist = f"127.0.0.1:{free_port()}"
    p0, p1 = free_port(), free_port()
    common = ["sglang", "serve", "--model-path", "m", "--tp-size", "2", "--nnodes", "2", "--dist-init-addr", dist]
    head = engine(*common, "--node-rank", "0", "--port", str(p0))
    worker = engine("sglang.launch_server", *common[2:], "--node-rank", "1", "--port", str(p1))
    wait_ok(f"http://127.0.0.1:{p0}/v1/models")
    head.wait_for("The server is fired up and ready to roll!")
    assert get(f"http://127.0.0.1:{p1}/v1/models")[0] == 404  # rank 1: health only
    wait_ok(f"http://127.0.0.1:{p1}/health")
    assert head.term() == 0
    assert worker.wait(10) == 0


def test_llama_rpc_on_localhost(engine: Runner) -> None:
    rport, port = free_port(), free_port()
    rpc = engine("rpc-server", "--host", "127.0.0.1", "--port", str(rport))
    rpc.wait_for("Starting RPC server")
    server = engine(
        "llama-server", "-hf", "Qwen/Qwen3-1.7B-GGUF:Q8_0", "--port", str(port), "--rpc", f"127.0.0.1:{rport}"
    )
    wait_ok(f"http://127.0.0.1:{port}/health")
    rpc.wait_for("Accepted client connection")
    bad = engine("llama-server", "-m", "x.gguf", "--port", str(free_port()), "--rpc", f"127.0.0.1:{free_port()}")
    assert bad.wait() == 1 and "failed to connect" in bad.output
    rpc.popen.kill()
    assert server.wait(15) == 1


def test_ray_cluster_on_localhost(engine: Runner, engine_env: dict[str, str], tmp_path: Path) -> None:
    gport, port = free_port(), free_port()

    def ray(*argv: str, tmp: str = "ray") -> subprocess.CompletedProcess[str]:
        env = {**engine_env, "RAY_TMPDIR": str(tmp_path / tmp)}
        cmd = [sys.executable, "-m", "standin", "ray", *argv]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)

    head = ray("start", "--head", "--port", str(gport), "--node-ip-address", "127.0.0.1")
    assert head.returncode == 0 and "Ray runtime started." in head.stdout, head.stderr
    assert (tmp_path / "ray" / "ray_current_cluster").read_text().strip() == f"127.0.0.1:{gport}"
    assert " 0.0/1.0 GPU" in ray("status").stdout
    # vLLM with the Ray executor waits for tp x pp GPUs in the Ray cluster
    serve = engine(
        "vllm", "serve", "m", "-tp", "2", "--host", "127.0.0.1", "--port", str(port),
        "--distributed-executor-backend", "ray",
    )  # fmt: skip
    serve.wait_for("Waiting for creating a placement group")
    worker = ray("start", f"--address=127.0.0.1:{gport}", "--node-ip-address", "127.0.0.1", tmp="ray2")
    assert worker.returncode == 0, worker.stderr
    status = ray("status", f"--address=127.0.0.1:{gport}").stdout
    assert status.count(" 1 node_") == 2 and " 0.0/2.0 GPU" in status
    wait_ok(f"http://127.0.0.1:{port}/v1/models")
    # the worker node goes away: vLLM fails
    stopped = ray("stop", tmp="ray2")
    assert "Stopped all 1 Ray processes." in stopped.stdout
    assert serve.wait(20) == 1 and "ActorDiedError" in serve.output
    assert "Stopped all 1 Ray processes." in ray("stop").stdout
    nothing = ray("status")
    assert nothing.returncode == 1 and "Could not find any running Ray instance" in nothing.stderr


def test_ray_worker_gives_up_without_head(engine_env: dict[str, str]) -> None:
    env = {**engine_env, "STANDIN_RENDEZVOUS_TIMEOUT": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "standin", "ray", "start", f"--address=127.0.0.1:{free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1 and "Unable to connect to GCS" in r.stderr


def test_module_entry_points(engine_env: dict[str, str]) -> None:
    """`python3 -m sglang.launch_server` and `python3 -m vllm.entrypoints.openai.api_server` resolve in the image
    through the shim packages; here they resolve the same way with the shims on PYTHONPATH."""
    shims = Path(engine_env["PYTHONPATH"]) / "shims"
    env = {**engine_env, "PYTHONPATH": os.pathsep.join([engine_env["PYTHONPATH"], str(shims)])}
    for mod in ("sglang.launch_server", "vllm.entrypoints.openai.api_server"):
        r = subprocess.run(
            [sys.executable, "-m", mod, "-Z"], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert r.returncode == 2 and "-Z" in r.stderr, (mod, r.stderr)


def test_vllm_lists_and_accepts_every_served_name_and_enforces_its_api_key(engine: Runner) -> None:
    port = free_port()
    engine(
        "vllm", "serve", "Qwen/Qwen3-0.6B", "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", "first", "second", "--api-key", "k3y",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_ok(f"{base}/health")
    assert get(f"{base}/v1/models")[0] == 401  # like vLLM: every /v1 route needs the key
    req = urllib.request.Request(f"{base}/v1/models", headers={"Authorization": "Bearer k3y"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert [m["id"] for m in json.loads(r.read())["data"]] == ["first", "second"]
    body = json.dumps({"model": "second", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer k3y"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/chat/completions", body, headers), timeout=5) as r:
        assert r.status == 200


def test_llama_server_routes_live_under_its_api_prefix(engine: Runner) -> None:
    port = free_port()
    engine("llama-server", "-m", "/dev/null", "--host", "127.0.0.1", "--port", str(port), "--api-prefix", "/api")
    base = f"http://127.0.0.1:{port}"
    wait_ok(f"{base}/api/v1/models")
    assert get(f"{base}/v1/models")[0] == 404
