"""The trtllm head and worker wrappers are real scripts: run the planned argv under bash with fake `ssh`/`mpirun`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from runtime_cases import container_names, request, topology

from sparkrun.runtimes.trtllm import TrtllmRuntime

FAKE_SSH = """#!/usr/bin/env bash
printf '%s\\n' "$@" >"$FAKE_DIR/ssh-args"
echo "fake ssh ran"
"""
# mpirun stand-in for this test: call the rsh agent like Open MPI does (ssh-style option, host, quoted command).
FAKE_MPIRUN = """#!/usr/bin/env bash
agent=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --mca) [[ $2 == plm_rsh_agent ]] && agent=$3; shift 3 ;;
    -H|-np) shift 2 ;;
    --allow-run-as-root) shift ;;
    *) break ;;
  esac
done
"$agent" -x "$FAKE_TARGET" orted -mca ess '"env"' "$@"
"""


def head_argv(tmp_path: Path, nodes: int = 2, **ssh: object) -> list[str]:
    """The planned head argv, with the agent and ssh directories moved under tmp_path."""
    head = TrtllmRuntime().build(request(), topology(nodes, **ssh))[0]  # type: ignore[arg-type]
    argv = list(head.argv)
    agent_dir = argv[4]
    argv[4], argv[5] = str(tmp_path / "agent"), str(tmp_path / "ssh")
    return [a.replace(agent_dir, str(tmp_path / "agent")) for a in argv]


@pytest.fixture
def fakes(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ssh", FAKE_SSH), ("mpirun", FAKE_MPIRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_text("key")
    (ssh_dir / "known_hosts").write_text("10.0.0.12 ssh-ed25519 AAAA")
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path)}


def run(argv: list[str], env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=30, check=False)


def test_the_rsh_agent_runs_the_rank_in_the_worker_container_over_host_ssh(
    tmp_path: Path, fakes: dict[str, str]
) -> None:
    result = run(head_argv(tmp_path, ssh_user="ubuntu", ssh_port=2222), fakes, FAKE_TARGET="10.0.0.12")
    assert result.returncode == 0, result.stderr
    assert "fake ssh ran" in result.stdout
    args = (tmp_path / "ssh-args").read_text().splitlines()
    ssh_dir = tmp_path / "ssh"
    assert args[:12] == [
        *("-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"),
        *("-o", f"UserKnownHostsFile={ssh_dir}/known_hosts", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"),
    ]
    planned = TrtllmRuntime().build(request(), topology(2))[0].argv
    program = planned[planned.index("trtllm-llmapi-launch") :]
    assert args[12:] == [
        *("-i", f"{ssh_dir}/id_ed25519", "-l", "ubuntu", "-p", "2222", "10.0.0.12"),
        *("docker", "exec", "-i", container_names(2)[1], "orted", "-mca", "ess", '"env"'),
        *program,
    ]


def test_the_rsh_agent_refuses_a_host_outside_the_job(tmp_path: Path, fakes: dict[str, str]) -> None:
    result = run(head_argv(tmp_path), fakes, FAKE_TARGET="10.9.9.9")
    assert result.returncode == 255
    assert "10.9.9.9 is not a host of this job (10.0.0.12)" in result.stderr
    assert not (tmp_path / "ssh-args").exists()


@pytest.mark.parametrize(("remove", "message"), [("id_ed25519", "no SSH key"), ("known_hosts", "no known_hosts")])
def test_the_head_needs_a_key_and_known_hosts(tmp_path: Path, fakes: dict[str, str], remove: str, message: str) -> None:
    (tmp_path / "ssh" / remove).unlink()
    result = run(head_argv(tmp_path), fakes, FAKE_TARGET="10.0.0.12")
    assert result.returncode == 3
    assert message in result.stderr


def test_the_head_needs_an_ssh_client(tmp_path: Path, fakes: dict[str, str]) -> None:
    (tmp_path / "bin" / "ssh").unlink()
    tools = tmp_path / "tools"  # bash and what the wrapper uses before ssh, without an ssh client
    tools.mkdir()
    for tool in ("bash", "mkdir", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    result = run(head_argv(tmp_path), fakes, PATH=f"{tmp_path / 'bin'}:{tools}")
    assert result.returncode == 3
    assert "no 'ssh' client" in result.stderr


def test_the_head_rejects_a_bad_container_name(tmp_path: Path, fakes: dict[str, str]) -> None:
    argv = head_argv(tmp_path)
    argv[argv.index(container_names(2)[1])] = "x; rm -rf /"
    result = run(argv, fakes)
    assert result.returncode == 2
    assert "not a container name" in result.stderr


def worker_argv(rank: int = 1) -> list[str]:
    return list(TrtllmRuntime().build(request(), topology(2))[rank].argv)


def test_the_worker_holder_waits_and_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(worker_argv(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "rank 1: waiting for mpirun on 10.0.0.11" in proc.stdout.readline()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def test_the_worker_holder_rejects_bad_arguments() -> None:
    argv = worker_argv()
    result = subprocess.run([*argv[:4], "10.0.0.11", "one"], capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2
    assert "usage" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare (PID namespace)")
def test_the_worker_holder_exits_when_the_mpi_ranks_started_in_it_end(tmp_path: Path) -> None:
    """In its own PID namespace (as in a container), a process entered from outside (like `docker exec`) has parent
    pid 0; the holder notices an MPI rank (OMPI_COMM_WORLD_RANK in its env) start and end, then exits 0; another
    process entered the same way does not count."""
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *worker_argv()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert "waiting for mpirun" in holder.stdout.readline()
        inner = int(subprocess.check_output(["pgrep", "-P", str(holder.pid)], text=True).split()[0])
        enter = ["nsenter", "-t", str(inner), "-p", "-m"]
        subprocess.run([*enter, "sleep", "2"], check=True, timeout=30)  # not one of mpirun's: ignored
        subprocess.run([*enter, "env", "OMPI_COMM_WORLD_RANK=1", "sleep", "2"], check=True, timeout=30)
        assert "started by mpirun" in holder.stdout.readline()
        assert "have ended; exiting" in holder.stdout.readline()
        assert holder.wait(15) == 0
    finally:
        holder.kill()
