"""The test cluster as seen from pytest: :class:`Testbed` (a handle on a running scripts/testbed.sh cluster) and
:func:`find_leftovers`. Used by tests/e2e/conftest.py (fixtures) and the e2e tests; needs no sparkrun code."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TESTBED_SH = REPO / "scripts" / "testbed.sh"
NET = "10.213.0"
UNREACHABLE = f"{NET}.201"  # inside the testbed subnet, held by no host


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

    def ssh(self, host: str, cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Plain OpenSSH with the testbed's ssh_config, as root on `host`."""
        require_up(self.ip(host))
        r = subprocess.run(
            ["ssh", "-F", str(self.ssh_config), f"root@{self.ip(host)}", cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
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
