"""Planners for the setup changes that need root on a host: `docker-group`, `fix-permissions`, `earlyoom`,
`clear-cache` (`cx7` in cx7.py). Pure: facts in, a `Plan` out, where a host that needs nothing gets a no-op step
that says why, and a host that cannot be helped is returned as an error (the rest of the plan still applies)."""

from __future__ import annotations

from collections.abc import Mapping

from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.setup.control import reconnect_step
from sparkrun.setup.facts import HostFacts
from sparkrun.setup.options import SetupOptions
from sparkrun.setup.sudo import root_step

Planned = tuple[Plan, list[HostError]]
ROOT_TIMEOUT_S = 120.0
INSTALL_TIMEOUT_S = 900.0


def _noop(f: HostFacts, phase: str, reason: str) -> Step:
    return Step(f.host, "setup_host", {}, phase, phase, noop=reason)


def _collect(items: list[Step | HostError]) -> Planned:
    steps = tuple(i for i in items if isinstance(i, Step))
    return Plan(steps), [i for i in items if isinstance(i, HostError)]


def _docker_group(f: HostFacts) -> list[Step | HostError]:
    if f.uid == 0:
        return [_noop(f, "docker-group", "root uses docker directly")]
    if f.docker == "missing" or not f.has("docker"):
        return [HostError(f.address, "docker-group", "docker is not installed", hint="install Docker Engine first")]
    reconnect = [] if f.host.local else [reconnect_step(f.host, f"new logins of {f.user} have group docker")]
    if f.docker_member:
        if f.docker == "denied":  # in the group, but this (shared) login predates it
            return [_noop(f, "docker-group", f"{f.user} is in group docker"), *reconnect]
        return [_noop(f, "docker-group", f"{f.user} is in group docker")]
    detail = (f"usermod -aG docker {f.user}",)
    step = root_step(
        f, "docker-group", f"add {f.user} to group docker", {"TARGET_USER": f.user}, detail=detail, timeout=60
    )
    return [step, *reconnect]


def plan_docker_group(facts: Mapping[str, HostFacts], options: SetupOptions) -> Planned:
    return _collect([item for f in facts.values() if f.reached for item in _docker_group(f)])


def _permissions(f: HostFacts, cache_dir: str) -> Step | HostError:
    if f.cache_exists and f.cache_writable and not f.cache_foreign:
        return _noop(f, "fix-permissions", f"{f.cache_path} is {f.user}'s")
    if not f.cache_exists and f.cache_writable:
        return _noop(f, "fix-permissions", f"{f.cache_path} does not exist yet; {f.user} can create it")
    detail = (f"mkdir -p {f.cache_path} && chown -R {f.uid}:{f.gid} {f.cache_path}",)
    summary = f"make {f.cache_path} {f.user}'s"
    values = {"CACHE_DIR": cache_dir}
    return root_step(f, "fix-permissions", summary, values, detail=detail, timeout=ROOT_TIMEOUT_S)


def plan_fix_permissions(facts: Mapping[str, HostFacts], cache_dir: str) -> Planned:
    return _collect([_permissions(f, cache_dir) for f in facts.values() if f.reached])


def _earlyoom(f: HostFacts, options: SetupOptions) -> Step | HostError:
    args = options.earlyoom_args(f.earlyoom_args if f.earlyoom_installed else None)
    if f.earlyoom_installed and f.earlyoom_active and (not args or args == f.earlyoom_args):
        return _noop(f, "earlyoom", "earlyoom is installed and running" + (f" ({f.earlyoom_args})" * bool(args)))
    if not f.earlyoom_installed and not f.has("apt-get"):
        hint = "install earlyoom with the host's package manager, then run this again"
        return HostError(f.address, "earlyoom", "earlyoom is not installed and there is no apt-get", hint=hint)
    if not f.has("systemctl"):
        return HostError(f.address, "earlyoom", "no systemctl to enable earlyoom with", hint="start it by hand")
    what = ["apt-get install -y earlyoom"] if not f.earlyoom_installed else []
    what += [f'EARLYOOM_ARGS="{args}" in /etc/default/earlyoom'] if args else []
    what += ["systemctl enable --now earlyoom" + (" && systemctl restart earlyoom" if args else "")]
    summary = "install and start earlyoom" if not f.earlyoom_installed else "configure and start earlyoom"
    timeout = INSTALL_TIMEOUT_S if not f.earlyoom_installed else ROOT_TIMEOUT_S
    return root_step(f, "earlyoom", summary, {"EARLYOOM_ARGS": args}, detail=tuple(what), timeout=timeout)


def plan_earlyoom(facts: Mapping[str, HostFacts], options: SetupOptions) -> Planned:
    return _collect([_earlyoom(f, options) for f in facts.values() if f.reached])


def plan_clear_cache(facts: Mapping[str, HostFacts], options: SetupOptions) -> Planned:
    detail = ("sync; echo 3 > /proc/sys/vm/drop_caches",)
    items: list[Step | HostError] = [
        root_step(f, "clear-cache", "drop the page cache", {}, detail=detail, timeout=ROOT_TIMEOUT_S)
        for f in facts.values()
        if f.reached
    ]
    return _collect(items)
