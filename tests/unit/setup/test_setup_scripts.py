"""The setup host scripts run by real bash (with stand-in commands first on PATH where a real one would change this
machine): they pass shellcheck, setup_check.sh's report parses into the facts the checks use, the sudo password
reaches sudo on stdin only (never an argument, never the command's stdin), and the SSH files are edited idempotently.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from setup_fakes import host_key

from sparkrun.hosts import Host
from sparkrun.setup.facts import parse_check
from sparkrun.shell import render_script
from sparkrun.transport.base import Result
from sparkrun.transport.protocol import parse_output

SHELLCHECK = shutil.which("shellcheck") or str(Path(__file__).parents[3] / ".venv/bin/shellcheck")
SECRET = "pa ss'w$rd"

VALUES: dict[str, dict[str, object]] = {
    "setup_check": {
        "SELF": "10.0.0.11",
        "SSH_PORT": "22",
        "PEERS": ["10.0.0.12"],
        "PEER_SSH": ["ssh", "-o", "BatchMode=yes"],
        "HF_CACHE": "~/.cache/huggingface",
        "GPU_IMAGE": "",
        "GPU_TIMEOUT": "60",
        "SYSFS_ROOT": "/sys",
        "CX7_FILE": "/etc/netplan/70-sparkrun-cx7.yaml",
    },
    "setup_host": {
        "ACTION": "cx7",
        "SUDO": "password",
        "TARGET_USER": "spark",
        "CACHE_DIR": "~/.cache/huggingface",
        "EARLYOOM_ARGS": "-r 3600",
        "NETPLAN_FILE": "/etc/netplan/70-sparkrun-cx7.yaml",
        "NETPLAN_YAML": "network: {}\n",
        "CX7_IFACES": ["enp1s0f0np0"],
        "CX7_ADDRS": ["192.168.177.1/24"],
        "CX7_MTU": "9000",
    },
    "setup_ssh": {"ACTION": "trust", "AUTHORIZED": ["ssh-ed25519 AAAA x"], "KNOWN": ["h ssh-ed25519 AAAA"]},
    "setup_control": {
        "ACTION": "scan",
        "SSH_ARGV": ["ssh"],
        "TARGET": "h",
        "KNOWN_HOSTS_FILE": "/tmp/kh",
        "LINES": ["h ssh-ed25519 AAAA"],
    },
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_rendered_setup_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    script = tmp_path / f"{name}.sh"
    script.write_text(render_script(name, VALUES[name]).text)  # type: ignore[arg-type]
    excluded = "SC2034,SC2088,SC2317"  # as for the other host scripts (tests/unit/test_shell_scripts.py)
    proc = subprocess.run([SHELLCHECK, "-e", excluded, str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


# sudo as far as setup_host.sh uses it: -n (passwordless, when SUDO_NOPASSWD is set) or -S (the password on stdin,
# checked against SUDO_OK); it logs its arguments and runs the command.
SUDO_STUB = """printf "%s\\n" "$*" >>LOG/sudo.args
mode=n
while [ $# -gt 0 ]; do
  case $1 in -S) mode=S ;; -n) mode=n ;; -k) ;; -p) shift ;; --) shift; break ;; esac
  shift
done
if [ $mode = S ]; then
  IFS= read -r pw
  [ "$pw" = "$SUDO_OK" ] || { echo "Sorry, try again." >&2; exit 1; }
fi
if [ $mode = n ] && [ -z "${SUDO_NOPASSWD:-}" ]; then echo "sudo: a password is required" >&2; exit 1; fi
exec "$@"
"""


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def run(text: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", text], input=stdin.decode(), capture_output=True, text=True, env=env, check=False, timeout=60
    )


@pytest.fixture
def host_env(tmp_path: Path) -> dict[str, str]:
    """HOME and PATH for a pretend host: stand-ins for sudo and the user/group tools (they log what they got)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    (log / "groups").write_text("spark sudo\n")
    stub(bin_dir, "sudo", SUDO_STUB.replace("LOG", str(log)))
    stub(
        bin_dir,
        "getent",
        'if [ "$1 $2" = "group docker" ]; then echo "docker:x:999:"; else exec /usr/bin/getent "$@"; fi\n',
    )
    stub(bin_dir, "id", f'if [ "$1 $2" = "-nG spark" ]; then cat {log}/groups; else exec /usr/bin/id "$@"; fi\n')
    stub(
        bin_dir,
        "usermod",
        f'printf "%s\\n" "$*" >>{log}/usermod.args\ncat >>{log}/usermod.stdin\necho docker >>{log}/groups\n',
    )
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "SUDO_OK": SECRET, "LOG": str(log)}


def docker_group(sudo: str) -> str:
    return render_script("setup_host", {"ACTION": "docker-group", "SUDO": sudo, "TARGET_USER": "spark"}).text


def test_the_sudo_password_reaches_sudo_on_stdin_only(host_env: dict[str, str]) -> None:
    log = Path(host_env["LOG"])
    proc = run(docker_group("password"), host_env, stdin=f"{SECRET}\n".encode() + b"\n" * 100)
    out = parse_output(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.all("changed") == ["added spark to group docker (new logins have it)"]
    args = (log / "sudo.args").read_text()
    assert SECRET not in args and "-S -k -p  -- sh -c" in args
    assert (log / "usermod.args").read_text() == "-aG docker spark\n"
    assert (log / "usermod.stdin").read_text() == ""  # the command itself never sees the password
    assert SECRET not in proc.stdout + proc.stderr


def test_a_wrong_password_is_one_clear_failure_and_changes_nothing(host_env: dict[str, str]) -> None:
    proc = run(docker_group("password"), host_env, stdin=b"wrong\n")
    assert proc.returncode == 1
    assert parse_output(proc.stdout).last("fail") == "sudo the sudo password was refused"
    assert not (Path(host_env["LOG"]) / "usermod.args").exists()


def test_passwordless_sudo_is_used_with_n_and_an_empty_stdin(host_env: dict[str, str]) -> None:
    proc = run(docker_group("nopasswd"), {**host_env, "SUDO_NOPASSWD": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (Path(host_env["LOG"]) / "sudo.args").read_text().splitlines()[-1] == "-n -- usermod -aG docker spark"
    proc = run(docker_group("nopasswd"), host_env)  # sudo now wants a password after all
    assert (parse_output(proc.stdout).last("fail") or "").startswith("sudo sudo needs a password for ")


def ssh_trust(authorized: list[str], known: list[str]) -> str:
    return render_script("setup_ssh", {"ACTION": "trust", "AUTHORIZED": authorized, "KNOWN": known}).text


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)")
def test_ssh_trust_adds_keys_once_and_replaces_a_stale_host_key(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    a, b = host_key("10.0.0.11"), host_key("10.0.0.12")
    user = "ssh-ed25519 " + b.split()[1] + " spark@b"
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(f"10.0.0.11 {b}\n")  # stale: the host was reinstalled
    first = run(ssh_trust([user], [f"10.0.0.11 {a}", f"spark-11 {a}"]), env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(parse_output(first.stdout).all("changed")) == 2
    known = (tmp_path / ".ssh" / "known_hosts").read_text().splitlines()
    assert sorted(known) == sorted([f"10.0.0.11 {a}", f"spark-11 {a}"])
    assert (tmp_path / ".ssh" / "authorized_keys").read_text() == user + "\n"
    assert oct((tmp_path / ".ssh").stat().st_mode & 0o777) == "0o700"
    second = run(ssh_trust([user], [f"10.0.0.11 {a}", f"spark-11 {a}"]), env)
    assert parse_output(second.stdout).all("changed") == []  # idempotent


def test_control_record_appends_confirmed_keys_once(tmp_path: Path) -> None:
    kh = tmp_path / "dir" / "known_hosts"
    text = render_script(
        "setup_control", {"ACTION": "record", "KNOWN_HOSTS_FILE": str(kh), "LINES": ["h k1", "h k2"]}
    ).text
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    assert parse_output(run(text, env).stdout).all("changed") == [f"recorded 2 host key(s) in {kh}"]
    assert parse_output(run(text, env).stdout).all("changed") == []
    assert kh.read_text() == "h k1\nh k2\n"


def fake_sysfs(root: Path, address: str | None) -> None:
    port = root / "class/infiniband/rocep1s0f0/ports/1"
    port.mkdir(parents=True)
    (port / "state").write_text("4: ACTIVE\n")
    (port / "link_layer").write_text("Ethernet\n")
    (root / "class/infiniband/rocep1s0f0/device/net/enp1s0f0np0").mkdir(parents=True)
    net = root / "class/net/enp1s0f0np0"
    net.mkdir(parents=True)
    (net / "mtu").write_text("1500\n")
    (net / "operstate").write_text("up\n")


def test_the_check_scripts_report_parses_into_the_facts_the_checks_use(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    key = host_key("10.0.0.11")
    docker = (
        'case "$1 $2" in "version "*) echo 27.5.1 ;; "image ls") echo eng:latest ;; "image inspect") ;;\n'
        '  "run "*) echo "GPU 0: NVIDIA GB10 (UUID: GPU-1)" ;; *) exit 1 ;; esac\n'
    )
    stub(bin_dir, "docker", docker)
    stub(bin_dir, "nvidia-smi", "echo 'NVIDIA GB10'\n")
    stub(bin_dir, "sudo", "exit 0\n")
    stub(bin_dir, "timedatectl", "echo no\n")
    stub(bin_dir, "ssh-keyscan", f'echo "$5 {key}"\n')
    ssh = (
        'for a; do last=$a; done; [ "$last" = true ] || exit 1\n'
        'case " $* " in *" 10.0.0.12 "*) exit 0 ;; *) echo "Host key verification failed." >&2; exit 255 ;; esac\n'
    )
    stub(bin_dir, "ssh", ssh)
    stub(bin_dir, "earlyoom", "exit 0\n")
    stub(bin_dir, "systemctl", "echo active\n")
    sysfs = tmp_path / "sys"
    fake_sysfs(sysfs, None)
    home = tmp_path / "home"
    (home / ".cache/huggingface").mkdir(parents=True)
    values = {**VALUES["setup_check"], "SYSFS_ROOT": str(sysfs), "PEERS": ["10.0.0.12", "10.0.0.13"]}
    values["PEER_SSH"] = ["ssh", "-o", "BatchMode=yes"]
    text = render_script("setup_check", values).text  # type: ignore[arg-type]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home)}
    proc = run(text, env)
    assert proc.returncode == 0, proc.stderr
    facts = parse_check(Host("10.0.0.11"), Result("10.0.0.11", "setup_check", 0, proc.stdout, "", 1.0), (0, 9e9))
    assert facts.reached and facts.home == str(home) and facts.skew == 0.0
    assert facts.docker == "ok" and facts.docker_detail == "27.5.1"
    assert facts.gpu_container == "ok" and "NVIDIA GB10" in facts.gpu_detail
    assert facts.sudo in ("root", "nopasswd") and facts.ntp == "no"
    assert facts.cache_exists and facts.cache_writable and not facts.cache_foreign
    assert facts.cache_path == f"{home}/.cache/huggingface" and facts.disk is not None and facts.disk.size_kib > 0
    assert [(p.device, p.netdev, p.mtu, p.state, p.usable) for p in facts.ib] == [
        ("rocep1s0f0", "enp1s0f0np0", 1500, "ACTIVE", True)
    ]
    assert facts.earlyoom_installed and facts.earlyoom_active
    assert facts.host_keys == (key,)
    assert [(p.peer, p.outcome) for p in facts.mesh] == [("10.0.0.12", "ok"), ("10.0.0.13", "hostkey")]
    assert facts.tools["curl"] == (shutil.which("curl") is not None)
