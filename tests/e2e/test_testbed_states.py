"""The test cluster's host states (scripts/testbed.sh `state`, README "Host states"), the SSH mesh between hosts and
the image registry: each unprepared state is real on the host, and the real repair works on that host only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from e2e.cli import IMAGE, sparkrun
from testbed.harness import REGISTRY, USER, SetState, Testbed

pytestmark = pytest.mark.e2e


def key_of(testbed: Testbed, host: str, user: str) -> str:
    home = "/root" if user == "root" else f"/home/{USER}"
    return str(testbed.exec(host, f"cat {home}/.ssh/id_ed25519.pub").stdout.split()[1])


# -- SSH ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["root", USER])
def test_every_host_reaches_every_other_host_with_its_own_key(testbed: Testbed, user: str) -> None:
    h1, h2 = testbed.hosts[:2]
    for src, dst in ((h1, h2), (h2, h1)):
        out = testbed.ssh(src, f"ssh -o BatchMode=yes {dst} 'id -un; hostname'", user=user).stdout.split()
        assert out == [user, f"tb-h{testbed.index(dst)}"]
    control_key = (testbed.state_dir / "keys" / "id_ed25519.pub").read_text().split()[1]
    keys = {key_of(testbed, h, user) for h in (h1, h2)}
    assert len(keys) == 2 and control_key not in keys


def test_without_the_mesh_hosts_refuse_each_other(testbed: Testbed, host_state: SetState) -> None:
    h1, h2 = testbed.hosts[:2]
    host_state(h1, mesh=False)
    for user in ("root", USER):
        r = testbed.ssh(h1, f"ssh -o BatchMode=yes {h2} true", user=user, check=False)
        assert r.returncode == 255 and "Host key verification failed" in r.stderr  # no known_hosts, no key
        assert testbed.ssh(h1, "ls ~/.ssh", user=user).stdout.split() == ["authorized_keys"]
        r = testbed.ssh(h2, f"ssh -o BatchMode=yes {h1} true", user=user, check=False)
        assert r.returncode == 255 and "Permission denied (publickey)" in r.stderr
        assert testbed.ssh(h1, "true", user=user).returncode == 0  # the control machine still gets in


def test_mesh_comes_back_with_the_prepared_state(testbed: Testbed) -> None:
    h1, h2 = testbed.hosts[:2]
    with testbed.host_state(h1, mesh=False):
        assert testbed.ssh(h1, f"ssh -o BatchMode=yes {h2} true", check=False).returncode == 255
    assert testbed.state(h1)["mesh-root"] == "yes"
    assert testbed.ssh(h1, f"ssh -o BatchMode=yes {h2} hostname").stdout.strip() == f"tb-h{testbed.index(h2)}"


def test_head_container_reaches_another_host_over_ssh(testbed: Testbed) -> None:
    """TensorRT-LLM multi-node: mpirun in the head's container runs `ssh OTHER_HOST docker exec ...` with the host
    user's ~/.ssh mounted."""
    h1, h2 = testbed.hosts[:2]
    cmd = f"ssh -o BatchMode=yes {h2} docker info --format '{{{{.Name}}}}'"
    out = testbed.ssh(h1, f"docker run --rm --network host -v /root/.ssh:/root/.ssh:ro {IMAGE} {cmd}").stdout
    assert out.strip() == f"tb-h{testbed.index(h2)}"


# -- the non-root user: sudo, docker group ---------------------------------------------------------------------
def test_prepared_user_has_passwordless_sudo_and_docker(testbed: Testbed) -> None:
    h = testbed.hosts[0]
    out = testbed.ssh(h, "id -un; id -nG; sudo -n id -un; docker ps -q | wc -l", user=USER).stdout.split()
    assert out[0] == USER and "docker" in out and "sudo" in out and out[-2:] == ["root", "0"]
    # the user exists on the hosts only, never on the control machine
    assert f"\n{USER}:" not in "\n" + Path("/etc/passwd").read_text()


def test_user_outside_the_docker_group_is_refused_until_added(testbed: Testbed, host_state: SetState) -> None:
    h1, h2 = testbed.hosts[:2]
    host_state(h1, docker_group=False)
    r = testbed.ssh(h1, "docker ps", user=USER, check=False)
    assert r.returncode != 0 and "permission denied" in r.stderr
    assert testbed.ssh(h2, "docker ps -q", user=USER).returncode == 0  # only h1 changed
    testbed.ssh(h1, f"sudo -n usermod -aG docker {USER}", user=USER)  # the real repair
    assert testbed.ssh(h1, "docker ps -q", user=USER).returncode == 0  # a new login has the group


def test_sudo_with_password_really_asks(testbed: Testbed, host_state: SetState) -> None:
    h = testbed.hosts[0]
    host_state(h, sudo="password", password="tb-s3cret")
    r = testbed.ssh(h, "sudo -n true", user=USER, check=False)
    assert r.returncode == 1 and "a password is required" in r.stderr
    r = testbed.ssh(h, "sudo -S -p '' true", user=USER, stdin="wrong\n", check=False)
    assert r.returncode == 1 and "incorrect password" in r.stderr
    assert testbed.ssh(h, "sudo -S -p '' id -un", user=USER, stdin="tb-s3cret\n").stdout.strip() == "root"


def test_user_without_sudo_rights(testbed: Testbed, host_state: SetState) -> None:
    h = testbed.hosts[0]
    host_state(h, sudo="none", password="tb-s3cret")
    r = testbed.ssh(h, "sudo -S -p '' true", user=USER, stdin="tb-s3cret\n", check=False)
    assert r.returncode == 1 and "is not in the sudoers file" in r.stderr


# -- the Hugging Face cache ------------------------------------------------------------------------------------
def test_root_owned_hf_cache_refuses_the_user_until_fixed(testbed: Testbed, host_state: SetState) -> None:
    h = testbed.hosts[0]
    host_state(h, hf_cache="root-owned")
    r = testbed.ssh(h, "mkdir ~/.cache/huggingface/hub", user=USER, check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert testbed.as_user(h, "touch ~/.cache/huggingface/x", check=False).returncode != 0
    assert testbed.as_user(h, "touch ~/.cache/x && id -un").stdout.strip() == USER
    testbed.ssh(h, f"sudo -n chown -R {USER}: ~/.cache/huggingface && mkdir ~/.cache/huggingface/hub", user=USER)


def test_small_hf_cache_filesystem_fills_up(testbed: Testbed, host_state: SetState) -> None:
    h = testbed.hosts[0]
    host_state(h, cache_size="64M", cache_fill="48M")
    size, used = testbed.ssh(h, "df -B1M --output=size,used ~/.cache/huggingface | tail -1", user=USER).stdout.split()
    assert (int(size), int(used)) == (64, 48)
    r = testbed.ssh(h, "head -c 20M /dev/zero > ~/.cache/huggingface/blob", user=USER, check=False)
    assert r.returncode != 0 and "No space left on device" in r.stderr
    assert "tb-hf-cache" not in testbed.ssh(testbed.hosts[1], "df ~/.cache/huggingface", user=USER).stdout


# -- earlyoom --------------------------------------------------------------------------------------------------
def test_earlyoom_installs_on_one_host_only(testbed: Testbed, host_state: SetState) -> None:
    h1, h2 = testbed.hosts[:2]
    host_state(h1, earlyoom=False)
    r = testbed.ssh(h1, "command -v earlyoom; systemctl is-active earlyoom; dpkg -s earlyoom", check=False)
    assert "inactive" in r.stdout and "is not installed" in r.stderr
    r = testbed.ssh(h1, "apt-get install -y earlyoom", user=USER, check=False)
    assert r.returncode == 100 and "are you root?" in r.stderr  # like the real one without sudo
    testbed.ssh(h1, "sudo -n apt-get install -y earlyoom && sudo -n systemctl enable --now earlyoom", user=USER)
    out = testbed.ssh(h1, "systemctl is-active earlyoom; pgrep -x earlyoom >/dev/null && echo running").stdout
    assert out.split() == ["active", "running"]
    # the control machine and the other hosts are untouched by an install on h1
    assert shutil.which("earlyoom") is None and not Path("/etc/default/earlyoom").exists()
    testbed.ssh(h1, "apt-get purge -y earlyoom")
    assert testbed.ssh(h2, "systemctl is-active earlyoom").stdout.strip() == "active"


# -- CX7 -------------------------------------------------------------------------------------------------------
NETPLAN = """network:
  version: 2
  ethernets:
    enp1s0f0np0:
      addresses: [{addr}/28]
      mtu: 9000
"""


def test_unconfigured_cx7_is_configured_and_persisted_with_netplan(testbed: Testbed, host_state: SetState) -> None:
    h1, h2 = testbed.hosts[:2]
    cx7 = {h: f"10.213.0.{160 + testbed.index(h)}" for h in (h1, h2)}  # inside the testbed subnet, on the CX7 fabric
    for h in (h1, h2):
        host_state(h, cx7="unconfigured")
        assert testbed.ssh(h, "ip -4 -o addr show enp1s0f0np0").stdout == ""
        assert " mtu 1500 " in testbed.ssh(h, "ip -o link show enp1s0f0np0").stdout
        conf = NETPLAN.format(addr=cx7[h])
        save = "sudo -n tee /etc/netplan/40-cx7.yaml >/dev/null && sudo -n netplan apply"
        testbed.ssh(h, save, user=USER, stdin=conf)
    assert testbed.ssh(h1, f"busybox ping -c1 -W2 {cx7[h2]}", check=False).returncode == 0
    assert " mtu 9000 " in testbed.ssh(h1, "ip -o link show enp1s0f0np0").stdout
    # the config is h1's own and survives its restart (applied at boot, as networkd would)
    saved = {h: testbed.ssh(h, "cat /etc/netplan/40-cx7.yaml").stdout for h in (h1, h2)}
    assert cx7[h1] in saved[h1] and cx7[h1] not in saved[h2]
    pid = int((testbed.state_dir / f"h{testbed.index(h1)}" / "init.pid").read_text())
    os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    testbed.script_run("up", str(len(testbed.hosts)), timeout=300)
    assert f"inet {cx7[h1]}/28" in testbed.ssh(h1, "ip -4 -o addr show enp1s0f0np0").stdout


def test_cx7_state_absent_removes_the_port_and_its_config(testbed: Testbed) -> None:
    h = testbed.hosts[0]
    with testbed.host_state(h, cx7="unconfigured"):
        testbed.ssh(h, "echo 'network: {version: 2}' > /etc/netplan/40-cx7.yaml")
    assert testbed.state(h)["cx7"] == "absent"
    assert testbed.ssh(h, "ls /etc/netplan; ip link show enp1s0f0np0", check=False).stdout == ""


# -- clock ------------------------------------------------------------------------------------------------------
def test_skewed_clock_stand_in(testbed: Testbed, host_state: SetState) -> None:
    h = testbed.hosts[0]
    host_state(h, clock=300)
    host_now = int(testbed.ssh(h, "date +%s").stdout)
    assert 295 < host_now - time.time() < 305
    assert abs(int(testbed.ssh(h, "/bin/date +%s").stdout) - time.time()) < 5  # the kernel clock is not skewed
    assert testbed.ssh(h, "timedatectl show -p NTPSynchronized --value").stdout.strip() == "no"


# -- states at `up` ---------------------------------------------------------------------------------------------
def test_up_applies_per_host_states_to_a_running_host(testbed: Testbed) -> None:
    h = testbed.hosts[1]
    i = testbed.index(h)
    before = testbed.state(h)
    env = {**os.environ, **testbed.env, f"TB_HOST_STATE_{i}": "docker-group=no earlyoom=no"}
    try:
        r = subprocess.run(
            ["bash", str(testbed.script), "up", str(len(testbed.hosts))],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        state = testbed.state(h)
        assert (state["docker-group"], state["earlyoom"]) == ("no", "no")
        assert testbed.ssh(h, "docker ps", user=USER, check=False).returncode != 0
        assert testbed.state(testbed.hosts[0])["docker-group"] == "yes"
    finally:
        testbed.restore_state(h, before)
    assert testbed.ssh(h, "docker ps -q", user=USER).returncode == 0


def test_bad_state_flags_are_refused(testbed: Testbed) -> None:
    r = testbed.script_run("state", testbed.hosts[0], "sudo=maybe", check=False)
    assert r.returncode != 0 and "bad value for state sudo: 'maybe'" in r.stderr
    r = testbed.script_run("state", testbed.hosts[0], "colour=blue", check=False)
    assert r.returncode != 0 and "unknown state 'colour'" in r.stderr


# -- registry and the non-root cluster ----------------------------------------------------------------------------
def test_hosts_pull_from_the_registry(testbed: Testbed) -> None:
    h = testbed.hosts[1]
    ref = f"{REGISTRY}/nvidia/vllm:25.09-py3"
    assert testbed.registry_push("nvidia/vllm:25.09-py3") == [ref]
    catalog = json.loads(testbed.registry("status").stdout.splitlines()[1])
    assert "nvidia/vllm" in catalog["repositories"]
    try:
        testbed.ssh(h, f"docker pull -q {ref}")
        out = testbed.ssh(h, f"docker run --rm --gpus all {ref} vllm --version").stdout
        assert out.strip()
        r = testbed.ssh(h, f"docker pull {REGISTRY}/nvidia/never-pushed:1", check=False)
        assert r.returncode != 0 and "not found" in r.stderr
    finally:
        testbed.ssh(h, f"docker rmi {ref}", check=False)
        testbed.registry("stop")
    assert testbed.registry("status").returncode != 0 and not (testbed.state_dir / "registry").exists()


def test_sparkrun_reaches_hosts_as_the_non_root_user(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str
) -> None:
    f = Path(sparkrun_env["SPARKRUN_CONFIG_DIR"]) / "clusters" / f"{spark_cluster}.yaml"
    assert yaml.safe_load(f.read_text())["ssh"]["user"] == USER
    r = sparkrun(sparkrun_env, "status", "--json", "--cluster", spark_cluster)
    assert r.returncode == 0, r.stderr
    hosts = json.loads(r.stdout)["hosts"]
    assert [h["reachable"] for h in hosts] == [True] * len(testbed.hosts)
