"""`setup check`: facts -> one line per host and check, with a status and, for every line that is not ok, its fix.

Statuses: `ok`, `warn` (works, but not as a prepared DGX Spark should), `fail` (something sparkrun needs is missing or
broken), `skip` (could not be checked: the host was not reached, or what it depends on failed). A line's `action` is
the setup command that `setup check --fix` may run for it; lines without one name a command to run by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.setup.cx7 import interfaces_of, suggest_subnets
from sparkrun.setup.facts import HostFacts
from sparkrun.setup.options import Limits, Origin
from sparkrun.transport.ssh import AUTH_FAILED, HOST_KEY_CHANGED, HOST_KEY_UNKNOWN, SSH_HINTS

CHECKS = ("ssh", "mesh", "sudo", "tools", "docker", "gpu", "disk", "cache", "clock", "cx7", "earlyoom")
REQUIRED_TOOLS = ("bash", "curl", "tar")
GIB = 1024 * 1024  # KiB per GiB


@dataclass(frozen=True)
class CheckLine:
    host: str
    check: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str | None = None  # the command that fixes it (a `sparkrun setup ...` one where sparkrun can)
    action: str | None = None  # the setup action `--fix` runs for it (only safe ones)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "check": self.check,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
            "fixable": self.action is not None,
        }


@dataclass(frozen=True)
class Context:
    facts: Mapping[str, HostFacts]
    origin: Origin
    limits: Limits


def _line(
    f: HostFacts, check: str, status: str, detail: str, fix: str | None = None, action: str | None = None
) -> CheckLine:
    return CheckLine(f.address, check, status, detail, fix, action)


def check_ssh(f: HostFacts, ctx: Context) -> CheckLine:
    if f.reached:
        return _line(f, "ssh", "ok", f"connected as {f.user} (host key verified)")
    cause = f.error or "not reached"
    setup_ssh = ctx.origin.command("ssh")
    fixes = {
        HOST_KEY_UNKNOWN: setup_ssh + "   (shows the key's fingerprint for you to confirm)",
        HOST_KEY_CHANGED: f"ssh-keygen -R {f.address}, only if the host was reinstalled; then {setup_ssh}",
        AUTH_FAILED: f"ssh-copy-id {f.host.ssh.user + '@' if f.host.ssh.user else ''}{f.address}; then {setup_ssh}",
    }
    return _line(f, "ssh", "fail", cause, fixes.get(cause) or SSH_HINTS.get(cause) or "check the host and its network")


def check_mesh(f: HostFacts, ctx: Context) -> CheckLine:
    peers = [p for p in ctx.facts if p != f.address]
    if not peers:
        return _line(f, "mesh", "skip", "a single host: no SSH between hosts needed")
    bad = [p for p in f.mesh if p.outcome != "ok"]
    if not bad and len(f.mesh) == len(peers):
        return _line(f, "mesh", "ok", f"reaches the other {len(peers)} host(s) over SSH (BatchMode)")
    words = {"hostkey": "host key unknown", "auth": "key refused", "unreachable": "unreachable", "error": "failed"}
    detail = "; ".join(f"{p.peer}: {words.get(p.outcome, p.outcome)}" for p in bad) or "peers not tried"
    if bad and all(p.outcome == "unreachable" for p in bad):
        return _line(f, "mesh", "fail", detail, "check the network between the hosts (routes, firewall, sshd)")
    return _line(f, "mesh", "fail", detail, ctx.origin.command("ssh"), "ssh")


def check_sudo(f: HostFacts, ctx: Context) -> CheckLine:
    if f.uid == 0 or f.sudo == "root":
        return _line(f, "sudo", "ok", "connected as root")
    if f.sudo == "nopasswd":
        return _line(f, "sudo", "ok", f"{f.user} has passwordless sudo")
    if f.sudo == "password":
        detail = f"sudo asks {f.user} for a password: setup commands that need root ask for it on a terminal"
        return _line(f, "sudo", "warn", detail, "run setup commands on a terminal, or give the user passwordless sudo")
    detail = "sudo is not installed: setup changes that need root cannot be made"
    return _line(f, "sudo", "warn", detail, "apt-get install sudo (as root)")


def check_tools(f: HostFacts, ctx: Context) -> CheckLine:
    missing = [t for t in REQUIRED_TOOLS if not f.has(t)]
    if missing:
        fix = f"sudo apt-get install -y {' '.join(missing)}"
        return _line(f, "tools", "fail", f"missing: {', '.join(missing)}", fix)
    return _line(f, "tools", "ok", ", ".join(REQUIRED_TOOLS))


def check_docker(f: HostFacts, ctx: Context) -> CheckLine:
    if f.docker == "ok" and f.uid != 0 and "docker" in f.groups and not f.docker_member:
        detail = f"usable only through an older login: {f.user} is no longer in group docker"
        return _line(f, "docker", "fail", detail, ctx.origin.command("docker-group"), "docker-group")
    if f.docker == "ok":
        return _line(f, "docker", "ok", f"Docker {f.docker_detail}, usable by {f.user} without sudo")
    if f.docker == "denied":
        why = "in group docker, but this login predates it" if f.docker_member else "not in group docker"
        detail = f"{f.user} may not use the docker socket ({why})"
        return _line(f, "docker", "fail", detail, ctx.origin.command("docker-group"), "docker-group")
    if f.docker == "down":
        detail = f"the docker daemon does not answer: {f.docker_detail}"
        return _line(f, "docker", "fail", detail, "sudo systemctl start docker")
    fix = "install Docker Engine and the NVIDIA container toolkit (docs.docker.com/engine/install)"
    return _line(f, "docker", "fail", "docker is not installed", fix)


def check_gpu(f: HostFacts, ctx: Context) -> CheckLine:
    if f.gpu_container == "ok":
        how, _, line = f.gpu_detail.partition(" ")
        return _line(f, "gpu", "ok", f"{line} in a container ({'CDI' if how == 'cdi' else 'docker --gpus'})")
    if f.gpu_container == "skip":
        return _line(f, "gpu", "skip", f.gpu_detail or "not checked")
    _how, _, cause = f.gpu_detail.partition(" ")
    host_gpu = "" if f.gpu_host.startswith("0 ") else f" (the host itself sees {f.gpu_host.split(' ', 1)[-1]})"
    fix = "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
    return _line(f, "gpu", "fail", f"no GPU in a container: {cause}{host_gpu}", fix)


def size_text(kib: int) -> str:
    return f"{kib / GIB:.1f} GiB" if kib >= GIB else f"{kib / 1024:.0f} MiB"


def check_disk(f: HostFacts, ctx: Context) -> CheckLine:
    d = f.disk
    if d is None or not d.size_kib:
        return _line(f, "disk", "skip", "the cache filesystem could not be read")
    free = d.avail_kib / GIB
    used = f"{d.used_percent:.0f}% used"
    detail = f"{size_text(d.avail_kib)} free of {size_text(d.size_kib)} ({used}) on {d.mount} ({d.fstype})"
    fix = f"free space on {d.mount}: `du -sh {f.cache_path}/hub/*` lists the cached models by size"
    if free < ctx.limits.min_free_gib:
        return _line(f, "disk", "fail", detail + f", below {ctx.limits.min_free_gib:g} GiB", fix)
    if d.used_percent >= ctx.limits.warn_used_percent:
        return _line(f, "disk", "warn", detail, fix)
    return _line(f, "disk", "ok", detail)


def check_cache(f: HostFacts, ctx: Context) -> CheckLine:
    if f.cache_exists and f.cache_writable and not f.cache_foreign:
        return _line(f, "cache", "ok", f"{f.cache_path} is {f.user}'s")
    if not f.cache_exists and f.cache_writable:
        return _line(f, "cache", "ok", f"{f.cache_path} does not exist yet; {f.user} can create it")
    if f.cache_foreign:
        detail = f"{f.cache_foreign} is not {f.user}'s"
    else:
        detail = f"{f.cache_path} is not writable by {f.user}"
    return _line(f, "cache", "fail", detail, ctx.origin.command("fix-permissions"), "fix-permissions")


def check_clock(f: HostFacts, ctx: Context) -> CheckLine:
    skew = f.skew
    if skew is None:
        return _line(f, "clock", "skip", "the host's time could not be read")
    fix = "sudo timedatectl set-ntp true   (or fix chrony/ntpd), then check again"
    if abs(skew) > ctx.limits.max_skew_s:
        way = "ahead of" if skew > 0 else "behind"
        return _line(f, "clock", "fail", f"{abs(skew):.1f} s {way} the control machine", fix)
    if f.ntp == "no":
        return _line(f, "clock", "warn", "within the limit, but not synchronized (NTP)", fix)
    return _line(f, "clock", "ok", f"within {ctx.limits.max_skew_s:g} s of the control machine")


def check_cx7(f: HostFacts, ctx: Context) -> CheckLine:
    usable = interfaces_of(f)
    if not f.ib:
        return _line(f, "cx7", "skip", "no RDMA (CX7) device")
    if not usable:
        return _line(f, "cx7", "warn", "RDMA device(s) without a link: " + ", ".join(sorted({p.device for p in f.ib})))
    ports = {p.netdev: p for p in f.ib if p.netdev in usable}
    shown = "; ".join(f"{n} {','.join(p.addresses) or 'no address'} MTU {p.mtu}" for n, p in ports.items())
    subnets = suggest_subnets(ctx.facts)
    if any(not p.addresses for p in ports.values()):
        extra = " ".join(f"--subnet {s}" for s in subnets) or "--subnet CIDR"
        return _line(f, "cx7", "fail", shown, ctx.origin.command("cx7", extra), "cx7" if subnets else None)
    if any(p.mtu != ctx.limits.mtu for p in ports.values()):
        return _line(f, "cx7", "warn", shown + f" (want MTU {ctx.limits.mtu})", ctx.origin.command("cx7"), "cx7")
    return _line(f, "cx7", "ok", shown)


def check_earlyoom(f: HostFacts, ctx: Context) -> CheckLine:
    if f.earlyoom_installed and f.earlyoom_active:
        args = f.earlyoom_args if len(f.earlyoom_args) <= 40 else f.earlyoom_args[:39] + "…"
        return _line(f, "earlyoom", "ok", "running" + (f" ({args})" if args else ""))
    detail = "installed but not running" if f.earlyoom_installed else "not installed (an OOM can hang a DGX Spark)"
    return _line(f, "earlyoom", "fail", detail, ctx.origin.command("earlyoom"), "earlyoom")


CHECKERS: dict[str, Callable[[HostFacts, Context], CheckLine]] = {
    "ssh": check_ssh,
    "mesh": check_mesh,
    "sudo": check_sudo,
    "tools": check_tools,
    "docker": check_docker,
    "gpu": check_gpu,
    "disk": check_disk,
    "cache": check_cache,
    "clock": check_clock,
    "cx7": check_cx7,
    "earlyoom": check_earlyoom,
}


def evaluate(facts: Mapping[str, HostFacts], origin: Origin, limits: Limits) -> list[CheckLine]:
    """Every check on every host, in host order then CHECKS order. An unreached host: `ssh` fails, the rest skip."""
    ctx = Context(facts, origin, limits)
    lines: list[CheckLine] = []
    for f in facts.values():
        if not f.reached:
            lines.append(check_ssh(f, ctx))
            lines += [CheckLine(f.address, c, "skip", "host not reached") for c in CHECKS if c != "ssh"]
            continue
        lines += [CHECKERS[name](f, ctx) for name in CHECKS]
    return lines
