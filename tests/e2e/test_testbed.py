"""The test cluster itself: hosts, fake GPUs and InfiniBand, link faults, and the stand-in engines' multi-node
rendezvous across hosts, driven with plain ssh/docker (no sparkrun code involved)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed.harness import REPO, UNREACHABLE, Testbed, require_up

pytestmark = pytest.mark.e2e

IMAGE = "sparkrun-test/engine:latest"
FAST = {"STANDIN_STARTUP_SECONDS": "0.2"}


def start(tb: Testbed, host: str, name: str, cmd: str, env: dict[str, str] | None = None, gpus: bool = True) -> None:
    """`docker run -d` a stand-in engine container with host networking on `host`."""
    args = ["run", "-d", "--name", name, "--network", "host", "--label", "sparkrun.e2e=testbed"]
    if gpus:
        args += ["--gpus", "all"]
    for k, v in {**FAST, **(env or {})}.items():
        args += ["-e", f"{k}={v}"]
    tb.docker(host, *args, IMAGE, "bash", "-c", cmd)


def exit_code(tb: Testbed, host: str, name: str, timeout: float) -> int:
    """Wait for the container to exit; its exit code."""
    r = tb.docker(host, "wait", name, timeout=timeout)
    return int(r.stdout.strip())


def logs(tb: Testbed, host: str, name: str) -> str:
    r = tb.docker(host, "logs", name, check=False)
    return r.stdout + r.stderr


@pytest.fixture
def containers(testbed: Testbed) -> Iterator[list[tuple[str, str]]]:
    """Containers a test starts, as (host, name); removed afterwards whatever happened."""
    made: list[tuple[str, str]] = []
    yield made
    for host, name in made:
        testbed.docker(host, "rm", "-f", name, check=False)


def chat(url: str, model: str, stream: bool) -> tuple[str, str]:
    """POST a chat completion; (content type, body)."""
    require_up(urllib.parse.urlsplit(url).hostname or "")
    body = json.dumps(
        {"model": model, "stream": stream, "messages": [{"role": "user", "content": "Reply with exactly: ok-42"}]}
    ).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


# -- the hosts ---------------------------------------------------------------------------------------------------
def test_hosts_answer_ssh_and_docker(testbed: Testbed) -> None:
    assert len(testbed.hosts) >= 2
    for i, ip in enumerate(testbed.hosts, start=1):
        out = testbed.ssh(ip, "hostname; echo $TB_HOST; docker info --format '{{.Name}}'").stdout.split()
        assert out == [f"tb-h{i}", f"tb-h{i}", f"tb-h{i}"], out
        assert IMAGE in testbed.docker(ip, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout


def test_exec_runs_inside_the_host(testbed: Testbed) -> None:
    h = testbed.hosts[1]
    out = testbed.exec(h, "hostname; ip -4 -o addr show eth0; ps -e | wc -l; test -S /run/docker.sock && echo sock")
    lines = out.stdout.split("\n")
    assert lines[0] == "tb-h2" and f"inet {h}/24" in lines[1] and "sock" in lines
    assert int(lines[2]) < 40  # its own PID namespace: a handful of daemons, not the whole machine


def test_concurrent_ups_serialize(testbed: Testbed) -> None:
    env = {**os.environ, **testbed.env}
    n = str(len(testbed.hosts))
    procs = [
        subprocess.Popen(
            ["bash", str(testbed.script), "up", n], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert sum(b"waiting for another testbed.sh" in err for _, err in results) >= 1
    assert testbed.script_run("status").returncode == 0


def test_hosts_are_isolated(testbed: Testbed) -> None:
    h1, h2 = testbed.hosts[:2]
    testbed.ssh(h1, "echo h1 > /tmp/tb-e2e-marker; mkdir -p ~/.cache/huggingface/hub/tb-e2e")
    try:
        r = testbed.ssh(h2, "cat /tmp/tb-e2e-marker; ls ~/.cache/huggingface/hub", check=False)
        assert "h1" not in r.stdout and "tb-e2e" not in r.stdout
        # own PID namespace: sshd of h2 does not see h1's processes; own network: only its own address
        assert f"inet {h2}/24" in testbed.ssh(h2, "ip -4 addr show eth0").stdout
        assert h1 not in testbed.ssh(h2, "ip -4 addr").stdout
    finally:
        testbed.ssh(h1, "rm -rf /tmp/tb-e2e-marker ~/.cache/huggingface/hub/tb-e2e")


def test_nvidia_smi_answers_like_a_gb10(testbed: Testbed) -> None:
    h = testbed.hosts[0]
    q = testbed.ssh(h, "nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader").stdout
    assert q.strip() == "NVIDIA GB10, [N/A], 12.1"
    assert re.fullmatch(r"GPU 0: NVIDIA GB10 \(UUID: GPU-[0-9a-f-]+\)\n", testbed.ssh(h, "nvidia-smi -L").stdout)


def test_docker_run_gpus_all(testbed: Testbed) -> None:
    h = testbed.hosts[0]
    out = testbed.ssh(h, f"docker run --rm --gpus all {IMAGE} sh -c 'echo $NVIDIA_VISIBLE_DEVICES; nvidia-smi -L'")
    assert out.stdout.splitlines()[0] == "all"
    assert "NVIDIA GB10" in out.stdout
    assert testbed.ssh(h, f"docker run --rm --gpus device=0 {IMAGE} nvidia-smi -L").returncode == 0
    # without --gpus the engine finds no GPU, as a real one would
    r = testbed.ssh(h, f"docker run --rm {IMAGE} vllm serve Qwen/Qwen3-0.6B", check=False)
    assert r.returncode == 1 and "No CUDA GPUs are available" in r.stdout + r.stderr


def test_engine_image_rejects_malformed_flags(testbed: Testbed) -> None:
    # (a well-formed unknown long flag is accepted with a warning: another engine version may have it)
    h = testbed.hosts[0]
    r = testbed.ssh(h, f"docker run --rm --gpus all {IMAGE} vllm serve Qwen/Qwen3-0.6B -Z 1", check=False)
    assert r.returncode == 2 and "unrecognized arguments: -Z" in r.stderr
    versions = testbed.ssh(
        h, f"docker run --rm {IMAGE} bash -c 'vllm --version; sglang --version; llama-server --version; ray --version'"
    ).stdout
    assert re.search(r"^\d+\.\d+", versions) and "sglang" in versions and "ray, version" in versions


def test_fake_infiniband(testbed: Testbed) -> None:
    host = testbed.hosts[-1]
    i = testbed.index(host)
    testbed.ib(host, True)
    try:
        ib = "/sys/class/infiniband/rocep1s0f0"
        out = testbed.ssh(
            host,
            f"cat {ib}/ports/1/state {ib}/ports/1/gids/3 {ib}/ports/1/gid_attrs/types/3; ls {ib}/device/net; "
            "ip -4 -o addr show enp1s0f0np0; ls /sys/class/net",
        ).stdout
        ip_hex = "".join(f"{int(o):02x}" for o in f"10.213.0.{100 + i}".split("."))
        assert "4: ACTIVE" in out
        assert f"0000:0000:0000:0000:0000:ffff:{ip_hex[:4]}:{ip_hex[4:]}" in out
        assert "RoCE v2" in out and "enp1s0f0np0" in out
        assert f"inet 10.213.0.{100 + i}/32" in out
        # the IB address is reachable from another host (hosts answer ARP for it on eth0)
        other = testbed.hosts[0]
        assert testbed.ssh(other, f"busybox ping -c1 -W2 10.213.0.{100 + i}", check=False).returncode == 0
        # only this host has it
        assert testbed.ssh(other, "test -e /sys/class/infiniband", check=False).returncode != 0
        # sparkrun's own detection (src/sparkrun/shell/ib_detect.sh) finds the port on this host only
        detect = REPO / "src" / "sparkrun" / "shell" / "ib_detect.sh"
        if detect.is_file():
            cmd = f"HEAD_ADDRESS={other} bash -c {shlex.quote(detect.read_text())}"
            assert "NCCL_IB_HCA=rocep1s0f0" in testbed.ssh(host, cmd).stdout.split()
            assert "NCCL_IB_DISABLE=1" in testbed.ssh(other, cmd).stdout.split()
    finally:
        testbed.ib(host, False)
    assert testbed.ssh(host, "test -e /sys/class/infiniband", check=False).returncode != 0


# -- faults ------------------------------------------------------------------------------------------------------
def tcp_connect_ms(ip: str, port: int = 22) -> float:
    require_up(ip)
    t0 = time.monotonic()
    with socket.create_connection((ip, port), timeout=5):
        return (time.monotonic() - t0) * 1000


def test_link_down_and_up(testbed: Testbed) -> None:
    host = testbed.hosts[-1]
    testbed.link(host, False)
    try:
        t0 = time.monotonic()
        require_up(host)
        r = subprocess.run(
            ["ssh", "-F", str(testbed.ssh_config), "-o", "ConnectTimeout=2", f"root@{host}", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert r.returncode == 255 and time.monotonic() - t0 < 10
    finally:
        testbed.link(host, True)
    testbed.ssh(host, "true")


def test_delay_and_shape(testbed: Testbed) -> None:
    host = testbed.hosts[-1]
    testbed.delay(host, 60)
    try:
        assert min(tcp_connect_ms(host) for _ in range(3)) >= 55
    finally:
        testbed.delay(host, None)
    assert min(tcp_connect_ms(host) for _ in range(3)) < 40
    for where in (host, "control"):  # the host's link, then the control machine's
        testbed.shape(where, "16mbit")
        try:
            t0 = time.monotonic()
            testbed.ssh(host, "head -c 2000000 /dev/zero", timeout=60)  # 16 Mbit/s = 2 MB/s
            assert time.monotonic() - t0 >= 0.8, where
        finally:
            testbed.shape(where, None)
    t0 = time.monotonic()
    testbed.ssh(host, "head -c 2000000 /dev/zero", timeout=60)
    assert time.monotonic() - t0 < 0.8


def test_up_recovers_a_crashed_host(testbed: Testbed) -> None:
    host = testbed.hosts[-1]
    i = testbed.index(host)
    pid = int((testbed.state_dir / f"h{i}" / "init.pid").read_text())
    os.kill(pid, 9)  # the whole host dies with its PID 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert "down" in testbed.script_run("status", check=False).stdout.split(f"h{i} ")[1].split("\n")[0]
    testbed.script_run("up", str(len(testbed.hosts)), timeout=300)
    assert testbed.ssh(host, "hostname").stdout.strip() == f"tb-h{i}"
    assert IMAGE in testbed.docker(host, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout


def test_leftover_check_sees_a_running_testbed(testbed: Testbed) -> None:
    found = testbed.leftovers(testbed.state_dir)
    assert any(f.startswith("netns tb-h") for f in found)
    assert "link tb0" in found
    assert any(f.startswith("process") for f in found)
    assert f"state dir {testbed.state_dir}/h1" in found  # the host's homes and /etc overlay go with `down`


def test_cluster_file_and_ssh_config(testbed: Testbed, sparkrun_env: dict[str, str]) -> None:
    f = Path(sparkrun_env["SPARKRUN_CONFIG_DIR"]) / "clusters" / "testbed.yaml"
    cluster = yaml.safe_load(f.read_text())
    assert cluster["name"] == "testbed"
    assert cluster["hosts"][: len(testbed.hosts)] == testbed.hosts
    assert Path(cluster["ssh"]["identity_file"]).is_file()
    assert cluster["ssh"]["options"]["StrictHostKeyChecking"] == "yes"
    assert cluster["container"] == {"ulimits": {}, "shm_size": "1g"}
    # plain `ssh tb-h1` works in the isolated HOME (ssh wrapper + Include of the testbed's ssh_config)
    require_up(testbed.hosts[0])
    r = subprocess.run(
        ["ssh", "tb-h1", "hostname"], capture_output=True, text=True, env=sparkrun_env, timeout=30, check=False
    )
    assert r.stdout.strip() == "tb-h1", r.stderr
    opts = [x for k, v in cluster["ssh"]["options"].items() for x in ("-o", f"{k}={v}")]
    r = subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", cluster["ssh"]["identity_file"], *opts, f"root@{testbed.hosts[1]}", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr


# -- stand-in engines across hosts -------------------------------------------------------------------------------
def test_vllm_two_node_rendezvous(testbed: Testbed, containers: list[tuple[str, str]]) -> None:
    h1, h2 = testbed.hosts[:2]
    common = "vllm serve Qwen/Qwen3-0.6B -tp 2 --nnodes 2 --master-port 25000 --served-model-name qwen"
    containers += [(h2, "e2e_vllm_w"), (h1, "e2e_vllm_h")]
    start(testbed, h2, "e2e_vllm_w", f"{common} --node-rank 1 --master-addr {h1} --headless")
    start(testbed, h1, "e2e_vllm_h", f"{common} --node-rank 0 --master-addr {h1} --port 8000 --host 0.0.0.0")
    models = json.loads(testbed.wait_http(f"http://{h1}:8000/v1/models", timeout=30))
    assert [m["id"] for m in models["data"]] == ["qwen"]
    ctype, body = chat(f"http://{h1}:8000", "qwen", stream=True)
    assert ctype.startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "ok-42"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert f"rank 1 joined from {h2}" in logs(testbed, h1, "e2e_vllm_h")
    # the head dies: the worker fails like on a NCCL error
    testbed.docker(h1, "kill", "e2e_vllm_h")
    assert exit_code(testbed, h2, "e2e_vllm_w", timeout=30) == 1
    assert "NCCL error" in logs(testbed, h2, "e2e_vllm_w")


def test_vllm_worker_with_wrong_head_address_fails(testbed: Testbed, containers: list[tuple[str, str]]) -> None:
    h2 = testbed.hosts[1]
    containers.append((h2, "e2e_vllm_lost"))
    t0 = time.monotonic()
    start(
        testbed,
        h2,
        "e2e_vllm_lost",
        f"vllm serve Qwen/Qwen3-0.6B -tp 2 --nnodes 2 --node-rank 1 --master-addr {UNREACHABLE} --master-port 25000 "
        "--headless",
        env={"STANDIN_RENDEZVOUS_TIMEOUT": "3"},
    )
    assert exit_code(testbed, h2, "e2e_vllm_lost", timeout=30) != 0
    assert time.monotonic() - t0 < 15
    assert f"timed out after 3s while trying to connect to ({UNREACHABLE}, 25000)" in logs(testbed, h2, "e2e_vllm_lost")


def test_sglang_two_node_rendezvous(testbed: Testbed, containers: list[tuple[str, str]]) -> None:
    h1, h2 = testbed.hosts[:2]
    common = f"sglang serve --model-path Qwen/Qwen3-0.6B --tp-size 2 --dist-init-addr {h1}:25001 --nnodes 2"
    containers += [(h1, "e2e_sgl_0"), (h2, "e2e_sgl_1")]
    start(testbed, h1, "e2e_sgl_0", f"{common} --node-rank 0 --host 0.0.0.0 --port 30000")
    start(testbed, h2, "e2e_sgl_1", f"python3 -m sglang.launch_server {common[13:]} --node-rank 1 --host 0.0.0.0")
    models = json.loads(testbed.wait_http(f"http://{h1}:30000/v1/models", timeout=30))
    assert models["data"][0]["id"] == "Qwen/Qwen3-0.6B"
    _, body = chat(f"http://{h1}:30000", "Qwen/Qwen3-0.6B", stream=False)
    assert json.loads(body)["choices"][0]["message"]["content"] == "ok-42"
    testbed.wait_http(f"http://{h2}:30000/health", timeout=10)  # rank 1: health only
    # a clean stop of the head stops the worker cleanly
    testbed.docker(h1, "stop", "-t", "10", "e2e_sgl_0")
    assert exit_code(testbed, h1, "e2e_sgl_0", timeout=30) == 0
    assert exit_code(testbed, h2, "e2e_sgl_1", timeout=30) == 0


def test_llama_cpp_rpc(testbed: Testbed, containers: list[tuple[str, str]]) -> None:
    h1, h2 = testbed.hosts[:2]
    containers += [(h2, "e2e_rpc"), (h1, "e2e_llama"), (h1, "e2e_llama_bad")]
    start(testbed, h2, "e2e_rpc", "rpc-server --host 0.0.0.0 --port 50052")
    serve = "llama-server -hf Qwen/Qwen3-1.7B-GGUF:Q8_0 --host 0.0.0.0 --port 8081 --ctx-size 8192 -ngl 99 --no-mmap"
    deadline = time.monotonic() + 20
    while "Starting RPC server" not in logs(testbed, h2, "e2e_rpc") and time.monotonic() < deadline:
        time.sleep(0.1)
    start(testbed, h1, "e2e_llama", f"{serve} --rpc {h2}:50052")
    testbed.wait_http(f"http://{h1}:8081/health", timeout=30)
    models = json.loads(testbed.wait_http(f"http://{h1}:8081/v1/models", timeout=5))
    assert models["data"][0]["id"] == "Qwen/Qwen3-1.7B-GGUF:Q8_0"
    assert f"RPC[{h2}:50052]" in logs(testbed, h1, "e2e_llama")
    # an unreachable rpc-server fails the start
    start(
        testbed,
        h1,
        "e2e_llama_bad",
        f"{serve} --port 8082 --rpc {UNREACHABLE}:50052",
        {"STANDIN_RPC_CONNECT_TIMEOUT": "2"},
    )
    assert exit_code(testbed, h1, "e2e_llama_bad", timeout=30) == 1
    assert "failed to connect" in logs(testbed, h1, "e2e_llama_bad")
    # losing the rpc-server kills the server
    testbed.docker(h2, "kill", "e2e_rpc")
    assert exit_code(testbed, h1, "e2e_llama", timeout=30) == 1


def test_ray_cluster_and_vllm_on_ray(testbed: Testbed, containers: list[tuple[str, str]]) -> None:
    h1, h2 = testbed.hosts[:2]
    containers += [(h1, "e2e_ray_head"), (h2, "e2e_ray_worker")]
    start(
        testbed,
        h1,
        "e2e_ray_head",
        f"ray start --block --head --port 46379 --node-ip-address {h1} --include-dashboard=True "
        "--dashboard-host 0.0.0.0 --dashboard-port 8265 --disable-usage-stats",
    )
    start(testbed, h2, "e2e_ray_worker", f"ray start --block --address={h1}:46379 --node-ip-address {h2}")
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        status = testbed.docker(h1, "exec", "e2e_ray_head", "ray", "status", check=False).stdout
        if status.count(" 1 node_") == 2:
            break
        time.sleep(0.3)
    assert status.count(" 1 node_") == 2 and "0.0/2.0 GPU" in status, status
    testbed.docker(
        h1,
        "exec",
        "-d",
        "e2e_ray_head",
        "bash",
        "-c",
        "vllm serve Qwen/Qwen3-0.6B -tp 2 --port 8000 --served-model-name Qwen/Qwen3-0.6B "
        "--distributed-executor-backend ray > /tmp/serve.log 2>&1",
    )
    models = json.loads(testbed.wait_http(f"http://{h1}:8000/v1/models", timeout=30))
    assert models["data"][0]["id"] == "Qwen/Qwen3-0.6B"
    # a node leaves: vLLM fails like on a dead Ray actor
    testbed.docker(h2, "kill", "e2e_ray_worker")
    deadline = time.monotonic() + 30
    log = ""
    while time.monotonic() < deadline and "ActorDiedError" not in log:
        log = testbed.docker(h1, "exec", "e2e_ray_head", "cat", "/tmp/serve.log", check=False).stdout
        time.sleep(0.3)
    assert "ActorDiedError" in log


def test_ray_worker_without_head_fails(testbed: Testbed) -> None:
    h2 = testbed.hosts[1]
    with contextlib.suppress(AssertionError):
        testbed.docker(h2, "rm", "-f", "e2e_ray_lost")
    r = testbed.docker(
        h2,
        "run",
        "--rm",
        "--name",
        "e2e_ray_lost",
        "--network",
        "host",
        "-e",
        "STANDIN_RENDEZVOUS_TIMEOUT=2",
        IMAGE,
        "ray",
        "start",
        f"--address={UNREACHABLE}:46379",
        check=False,
        timeout=60,
    )
    assert r.returncode == 1 and "Unable to connect to GCS" in r.stderr
