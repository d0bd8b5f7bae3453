"""The trtllm, mpirun, max, spark (Atlas) and tokenary stand-ins on this machine: API, rendezvous, MPI wire-up through
an rsh agent, faults, clean stops."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from testbed.standin_harness import Runner, free_port
from testbed.test_standin_engines import get, post, wait_ok

# An rsh agent for tests: like `ssh HOST COMMAND...`, the words are joined and re-parsed by a shell ("remote").
AGENT = """#!/bin/bash
while [[ $1 == -* ]]; do shift; done
host=$1
shift
echo "agent: starting a rank on $host" >&2
[[ $host == unreachable ]] && { echo "ssh: connect to host $host port 22: No route to host" >&2; exit 255; }
exec sh -c "$*"
"""


@pytest.fixture
def agent(tmp_path: Path) -> str:
    path = tmp_path / "rsh-agent"
    path.write_text(AGENT)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def mpi_env(tmp_path: Path, engine_env: dict[str, str]) -> dict[str, str]:
    """PATH with trtllm-serve / trtllm-llmapi-launch stand-ins, as in the image."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("trtllm-serve", "trtllm-llmapi-launch"):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" -m standin {name} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return {**engine_env, "PATH": f"{bin_dir}:{engine_env['PATH']}"}


def chat(port: int, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "Reply with exactly: ok"}], "stream": True}
    status, ctype, text = post(f"http://127.0.0.1:{port}/v1/chat/completions", body)
    assert status == 200 and ctype.startswith("text/event-stream"), text
    assert text.rstrip().endswith("data: [DONE]")
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def mpirun(engine: Runner, env: dict[str, str], agent: str, hosts: str, *serve: str) -> object:
    return engine(
        "mpirun",
        *("--allow-run-as-root", "--mca", "plm_rsh_agent", agent, "--mca", "rmaps_ppr_n_pernode", "1"),
        *("-H", hosts, "-np", str(len(hosts.split(","))), "-x", "FROM_HEAD=1"),
        *("trtllm-llmapi-launch", "trtllm-serve", *serve),
        env=env,
    )


def test_trtllm_serve_solo_api_and_sigterm(engine: Runner) -> None:
    port = free_port()
    p = engine("trtllm-serve", "serve", "Qwen/Qwen3-1.7B", "--host", "127.0.0.1", "--port", str(port), "--tp_size", "1")
    models = json.loads(wait_ok(f"http://127.0.0.1:{port}/v1/models"))
    assert models["data"][0]["id"] == "Qwen/Qwen3-1.7B"
    assert chat(port, "Qwen/Qwen3-1.7B") == "ok"
    assert p.term() == 0
    assert "Uvicorn running on" in p.output


def test_trtllm_serve_alone_cannot_use_two_gpus(engine: Runner) -> None:
    gpu = {"STANDIN_REQUIRE_GPU": "1", "NVIDIA_VISIBLE_DEVICES": "all"}
    p = engine("trtllm-serve", "m", "--port", str(free_port()), "--tp_size", "2", env=gpu)
    assert p.wait() == 1
    assert "needs 2 GPUs but 1 are visible" in p.output


def test_mpirun_starts_a_remote_rank_through_the_agent(engine: Runner, mpi_env: dict[str, str], agent: str) -> None:
    port = free_port()
    p = mpirun(
        engine, mpi_env, agent, "127.0.0.1,nodeb", "m", "--host", "127.0.0.1", "--port", str(port), "--tp_size", "2"
    )
    wait_ok(f"http://127.0.0.1:{port}/v1/models")
    assert chat(port, "m") == "ok"
    assert "agent: starting a rank on nodeb" in p.output
    assert "[RANK 1] MPI worker ready (world size 2)" in p.output
    assert "rendezvous: rank 1 joined" in p.output
    assert p.term() == 0
    assert "shut down; exiting" in p.output  # the remote rank was told to stop


def test_mpirun_refuses_root_without_allow_run_as_root(engine: Runner, mpi_env: dict[str, str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root is refused")
    env = {k: v for k, v in mpi_env.items() if not k.startswith("OMPI_ALLOW")}
    p = engine("mpirun", "-np", "1", "trtllm-serve", "m", env=env)
    assert p.wait() == 1
    assert "--allow-run-as-root" in p.output


def test_mpirun_fails_the_job_when_the_world_size_does_not_match(
    engine: Runner, mpi_env: dict[str, str], agent: str
) -> None:
    p = mpirun(engine, mpi_env, agent, "127.0.0.1,nodeb", "m", "--port", str(free_port()), "--tp_size", "4")
    assert p.wait(30) == 1
    assert "must equal the MPI world size (2)" in p.output
    # mpirun notices the failed rank by its exit status or by its lost connection, whichever comes first
    assert "exited with non-zero status" in p.output or "mpirun lost contact with process rank 0" in p.output


def test_mpirun_gives_up_when_a_rank_never_reports_back(engine: Runner, mpi_env: dict[str, str], agent: str) -> None:
    env = {**mpi_env, "STANDIN_RENDEZVOUS_TIMEOUT": "2"}
    p = mpirun(engine, env, agent, "127.0.0.1,unreachable", "m", "--port", str(free_port()), "--tp_size", "2")
    assert p.wait(30) != 0
    assert "No route to host" in p.output


def test_mpirun_refuses_more_ranks_than_slots(engine: Runner, mpi_env: dict[str, str]) -> None:
    p = engine("mpirun", "--allow-run-as-root", "-H", "127.0.0.1", "-np", "2", "trtllm-serve", "m", env=mpi_env)
    assert p.wait() == 1
    assert "not enough slots" in p.output


def test_max_serve_solo_and_its_gpu_check(engine: Runner) -> None:
    port = free_port()
    p = engine(
        "max", "serve", "--model", "Qwen/Qwen3-1.7B", "--host", "127.0.0.1", "--port", str(port), "--devices", "gpu:0"
    )
    wait_ok(f"http://127.0.0.1:{port}/v1/models")
    assert chat(port, "Qwen/Qwen3-1.7B") == "ok"
    assert p.term() == 0
    gpu = {"STANDIN_REQUIRE_GPU": "1", "NVIDIA_VISIBLE_DEVICES": "all"}
    two = engine("max", "serve", "--model", "m", "--port", str(free_port()), "--devices", "gpu:0,1", env=gpu)
    assert two.wait() == 1
    assert "requested 2 GPU devices but only 1" in two.output


@pytest.mark.parametrize("engine_name", ["spark", "tokenary"])
def test_ranked_engines_rendezvous_and_serve_on_rank_0(engine: Runner, engine_name: str) -> None:
    port, master = free_port(), free_port()
    ranks = ("--world-size", "2", "--master-addr", "127.0.0.1", "--master-port", str(master), "--tp-size", "2")
    if engine_name == "spark":
        head_argv = ["spark", "serve", "m", "--host", "127.0.0.1", "--port", str(port), *ranks, "--rank", "0"]
        worker_argv = ["spark", "serve", "m", "--port", "0", *ranks, "--rank", "1"]
    else:
        head_argv = [
            "tokenary",
            "--model",
            "m",
            "--host",
            "127.0.0.1",
            *ranks,
            "--rank",
            "0",
            "--server",
            "--port",
            str(port),
        ]
        worker_argv = ["tokenary", "--model", "m", *ranks, "--rank", "1"]
    head = engine(*head_argv)
    head.wait_for("rendezvous: rank 0/2")
    with pytest.raises(OSError):  # the head does not serve before every rank joined
        get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
    worker = engine(*worker_argv)
    wait_ok(f"http://127.0.0.1:{port}/v1/models")
    assert chat(port, "m") == "ok"
    worker.wait_for("ready; serving requests from rank 0")
    assert head.term() == 0
    assert worker.wait(15) == 0  # a cleanly stopped head lets its workers exit 0


@pytest.mark.parametrize("engine_name", ["spark", "tokenary"])
def test_ranked_worker_fails_with_a_wrong_master_address(engine: Runner, engine_name: str) -> None:
    ranks = ("--world-size", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "--tp-size", "2")
    argv = ["spark", "serve", "m", "--port", "0"] if engine_name == "spark" else ["tokenary", "--model", "m"]
    worker = engine(*argv, *ranks, "--rank", "1", env={"STANDIN_RENDEZVOUS_TIMEOUT": "1.5"})
    assert worker.wait(20) == 1
    assert "DistNetworkError" in worker.output


def test_atlas_refuses_a_world_size_that_is_not_tp_times_ep(engine: Runner) -> None:
    p = engine("spark", "serve", "m", "--world-size", "2", "--tp-size", "2", "--ep-size", "4", "--rank", "0")
    assert p.wait() == 1
    assert "must equal tp_size * ep_size" in p.output
