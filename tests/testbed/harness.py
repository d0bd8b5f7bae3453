"""The test cluster as seen from pytest: :class:`Testbed` (a handle on a running scripts/testbed.sh cluster) and
:func:`find_leftovers`. Used by tests/e2e/conftest.py (fixtures) and the e2e tests; needs no sparkrun code."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TESTBED_SH = REPO / "scripts" / "testbed.sh"
NET = "10.213.0"
UNREACHABLE = f"{NET}.201"  # inside the testbed subnet, held by no host
USER = "spark"  # the hosts' non-root user (scripts/testbed/lib/state.sh)
REGISTRY = f"{NET}.1:5000"  # the image registry on the control side (scripts/testbed/lib/registry.sh)
StateValue = str | int | bool
SetState = Callable[..., dict[str, str]]  # the `host_state` fixture: (host, *flags, **values) -> state before


def state_flags(values: dict[str, StateValue]) -> list[str]:
    """Python keywords -> `scripts/testbed.sh state` flags: docker_group=False -> docker-group=no, clock=300 ->
    clock=+300, cache_size="64M" -> cache-size=64M."""
    flags = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"{value:+d}"
        else:
            text = value
        flags.append(f"{key.replace('_', '-')}={text}")
    return flags


def require_up(address: str) -> None:
    """Refuse to send traffic to a testbed address while the testbed is down: without its bridge (tb0), the
    kernel would route 10.213.0.x out through the default gateway."""
    if address.startswith(f"{NET}.") and not Path("/sys/class/net/tb0").exists():
        raise AssertionError(f"the testbed is down (no tb0): not sending traffic to {address}")


def find_leftovers(state_dir: Path | None = None) -> list[str]:
    """Anything a testbed leaves on this machine, found without scripts/testbed.sh or its pid files."""
    out: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    out += [f"netns {n}" for n in re.findall(r"^(tb-(?:h\d+|sw))\b", netns, re.M)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    out += [f"link {n}" for n in re.findall(r"^\d+: (tb0|tb[vij]\d+)[@:]", links, re.M)]
    cg = Path("/sys/fs/cgroup")
    out += [f"cgroup {p}" for p in [*cg.glob("tb-h*"), *cg.glob("*/tb-h*")] if p.is_dir()]
    markers = ["/run/netns/tb-", "/sparkrun-testbed/"]
    if state_dir is not None:
        markers.append(f"{state_dir}/")
        # per-host dirs (homes, /etc and /usr/local/bin overlays) and the registry's data go with `down`
        out += [f"state dir {p}" for p in sorted(state_dir.glob("h[0-9]*"))]
        out += [f"registry data {p}" for p in [state_dir / "registry"] if p.exists()]
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if any(m in f"{fields[3]}/ {fields[4]}/" for m in markers):
                out.append(f"mount {fields[4]}")
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("flock ") and "sessions.lock" in cmd:
            continue  # another test session waiting for its turn on the cluster: not something this one left
        if any(m in cmd for m in ("__hostinit ", "nfq_delay.py", "--cgroup-parent=/tb-h", *markers[1:])):
            out.append(f"process {proc.name}: {cmd[:120]}")
    return out


@dataclass
class Testbed:
    """Handle on the running test cluster (see scripts/testbed.sh for the layout)."""

    __test__ = False  # not a test class, despite the name

    hosts: list[str]
    state_dir: Path
    ssh_config: Path
    script: Path = TESTBED_SH
    owned: bool = False
    env: dict[str, str] = field(default_factory=dict)

    # -- plumbing ----------------------------------------------------------------------------------------------
    def script_run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run scripts/testbed.sh with this testbed's TB_STATE."""
        r = subprocess.run(
            ["bash", str(self.script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
            check=False,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"testbed.sh {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def index(self, host: str) -> int:
        """10.213.0.13, h3, tb-h3 or 3 -> 3."""
        m = re.fullmatch(rf"(?:{re.escape(NET)}\.(\d+)|(?:tb-)?h?(\d+))", host)
        if not m:
            raise ValueError(f"not a testbed host: {host!r}")
        return int(m.group(1)) - 10 if m.group(1) else int(m.group(2))

    def ip(self, host: str | int) -> str:
        return f"{NET}.{10 + (host if isinstance(host, int) else self.index(host))}"

    # -- the API the tests use ---------------------------------------------------------------------------------
    def exec(self, host: str, cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the host's namespaces (no ssh involved)."""
        return self.script_run("exec", host, cmd, check=check, timeout=timeout)

    def ssh(
        self,
        host: str,
        cmd: str,
        check: bool = True,
        timeout: float = 60,
        user: str = "root",
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Plain OpenSSH with the testbed's ssh_config (the control machine's key), as `user` (root or spark) on
        `host`; `stdin` is fed to the command (e.g. a password for `sudo -S`)."""
        require_up(self.ip(host))
        r = subprocess.run(
            ["ssh", "-F", str(self.ssh_config), f"{user}@{self.ip(host)}", cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            check=False,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"ssh {host} {cmd!r} -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def docker(
        self, host: str, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against `host`'s own dockerd (through its socket, from the control machine)."""
        sock = self.state_dir / f"h{self.index(host)}" / "run" / "docker.sock"
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_CONFIG")}
        env["DOCKER_HOST"] = f"unix://{sock}"
        r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} on {host} -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def containers(self, host: str) -> list[dict[str, Any]]:
        """All containers on `host` (running or not): name, image, state, status and labels."""
        out = self.docker(host, "ps", "-a", "--no-trunc", "--format", "{{json .}}").stdout
        result = []
        for line in out.splitlines():
            c = json.loads(line)
            labels = dict(kv.split("=", 1) for kv in c.get("Labels", "").split(",") if "=" in kv)
            result.append(
                {"name": c["Names"], "image": c["Image"], "state": c["State"], "status": c["Status"], "labels": labels}
            )
        return result

    def link(self, host: str, up: bool) -> None:
        """Plug (up) or unplug (down) the host's cable; `host` may be "control"."""
        self.script_run("link", host, "up" if up else "down")

    def delay(self, host: str, ms: int | None) -> None:
        """Add `ms` of latency to everything `host` sends; None or 0 removes it."""
        self.script_run("delay", host, str(ms) if ms else "off")

    def shape(self, host: str, rate: str | None) -> None:
        """Limit `host`'s link (or "control") to `rate` (e.g. "200mbit") each way; None removes the limit."""
        self.script_run("shape", host, rate or "off")

    def ib(self, host: str, on: bool) -> None:
        """Give `host` the fake InfiniBand device (/sys/class/infiniband/rocep1s0f0, netdev enp1s0f0np0)."""
        self.script_run("ib", host, "on" if on else "off")

    def log_tail(self, host: str, lines: int = 20) -> str:
        """The host's daemon logs (init, dockerd, sshd), last lines of each."""
        logs = self.state_dir / f"h{self.index(host)}" / "log"
        parts = []
        for name in ("init.log", "dockerd.log", "sshd.log"):
            with contextlib.suppress(OSError):
                text = (logs / name).read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {logs / name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def wait_http(self, url: str, timeout: float = 30, status: int = 200) -> str:
        """GET `url` until it answers `status`; the body. Fails with the last error after `timeout` seconds."""
        import urllib.error
        import urllib.parse
        import urllib.request

        require_up(urllib.parse.urlsplit(url).hostname or "")
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == status:
                        return str(r.read().decode())
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code == status:
                    return str(e.read().decode())
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")

    @staticmethod
    def leftovers(state_dir: Path | None = None) -> list[str]:
        return find_leftovers(state_dir)

    # -- host states (scripts/testbed.sh state; README "Host states") -----------------------------------------------
    def state(self, host: str) -> dict[str, str]:
        """The host's state: sudo, password, docker-group, mesh-root, mesh-user, hf-cache, cache-size, cache-fill,
        earlyoom, cx7, clock."""
        out = self.script_run("state", host).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def set_state(self, host: str, *flags: str, **values: StateValue) -> dict[str, str]:
        """Change the running host's state for real; the state before (for :meth:`restore_state`). `flags` are
        literal (`"prepared"`, `"mesh=no"`), `values` Python-style: ``sudo="password", password="pw",
        docker_group=False, mesh=False, hf_cache="root-owned", cache_size="64M", cache_fill="48M",
        earlyoom=False, cx7="unconfigured", clock=300``."""
        before = self.state(host)
        self.script_run("state", host, *flags, *state_flags(values), timeout=120)
        return before

    def restore_state(self, host: str, before: dict[str, str]) -> None:
        """Put back a state returned by :meth:`set_state` (every key, so what a test changed by hand on the host for
        those keys is undone too: netplan files with `cx7`, earlyoom installs, group changes)."""
        self.script_run("state", host, *(f"{k}={v}" for k, v in before.items()), timeout=120)

    @contextlib.contextmanager
    def host_state(self, host: str, *flags: str, **values: StateValue) -> Iterator[dict[str, str]]:
        """``with testbed.host_state(h, docker_group=False): ...`` restores the previous state afterwards."""
        before = self.set_state(host, *flags, **values)
        try:
            yield before
        finally:
            self.restore_state(host, before)

    def as_user(self, host: str, cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a shell command as the non-root user inside the host (no ssh; a login shell's groups)."""
        return self.exec(host, f"runuser -l {USER} -c {shlex.quote(cmd)}", check=check, timeout=timeout)

    # -- the image registry --------------------------------------------------------------------------------------
    def registry_push(self, *names: str) -> list[str]:
        """Push the stand-in engine image to the registry as each NAME (e.g. ``"nvidia/vllm:25.09-py3"``), starting
        the registry if needed; the full references (``10.213.0.1:5000/nvidia/vllm:25.09-py3``) hosts can pull."""
        return self.script_run("registry", "push", *names, timeout=300).stdout.split()

    def registry(self, action: str) -> subprocess.CompletedProcess[str]:
        """`registry start|stop|status` (stop also drops its data; `down` stops it)."""
        return self.script_run("registry", action, check=action != "status")

    # -- cluster files -------------------------------------------------------------------------------------------
    def cluster_file(self, config_dir: Path, user: str = "root", name: str = "testbed") -> Path:
        """Write the sparkrun cluster `name` (hosts of this testbed, connecting as `user`) into `config_dir`."""
        self.script_run("cluster-file", str(config_dir), "--user", user, "--name", name)
        return config_dir / "clusters" / f"{name}.yaml"
