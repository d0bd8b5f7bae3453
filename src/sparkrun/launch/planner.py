"""Plan a job: recipe request + runtime + hosts (+ probed facts) -> one `ContainerSpec` per rank. Pure.

The job id depends only on what was requested (recipe, runtime, model, image as requested, hosts, settings, command,
env, extra args), never on probed facts, so `run --dry-run`, `run`, `--ensure`, `status` and `stop` always agree on
it. Facts only fill in what cannot be known offline: the address of a host given by name, the SSH user's home on
each host (for `~/` paths), the network interface env detected on each host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun import __version__
from sparkrun.errors import InputError, RecipeError
from sparkrun.hosts import Host
from sparkrun.jobs.identity import container_name, job_id, labels
from sparkrun.launch.container import HF_CACHE_IN_CONTAINER, ContainerSpec, Mount, home_path, split_secrets
from sparkrun.launch.facts import HostFacts
from sparkrun.launch.hooks import Copy, Hook, gate_argv, mod_hook, render_hooks
from sparkrun.launch.request import LaunchRequest
from sparkrun.recipes.readiness import Readiness
from sparkrun.recipes.render import render_launch_tokens
from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology

DEFAULT_HF_CACHE = "~/.cache/huggingface"


@dataclass(frozen=True)
class RankPlan:
    spec: RankSpec
    host: Host
    address: str
    container: ContainerSpec
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    pre_hooks: tuple[Hook, ...] = ()  # mods' run.sh and pre_exec, in order, while gate.sh holds the engine
    gated: bool = False

    @property
    def rank(self) -> int:
        return self.spec.rank

    @property
    def role(self) -> str:
        return self.spec.role


@dataclass(frozen=True)
class JobPlan:
    job: str
    recipe_name: str
    recipe_source: str
    runtime: str
    model: str
    image: str
    image_fallback: str | None  # run this (tagged as `image`) when `image` is absent on the head
    served_model_name: str
    port: int
    topology: Topology
    ranks: tuple[RankPlan, ...]
    hf_cache: str
    readiness: Readiness
    pull: str
    notes: tuple[str, ...]
    source: str
    cluster: str | None
    probed: bool  # facts were applied (a dry-run shows placeholders instead)
    # Where readiness connects, on the API rank's host: 127.0.0.1 unless the engine binds one address only.
    probe_address: str = "127.0.0.1"
    copies: tuple[Copy, ...] = ()  # directories sent into every gated container (mods)
    post_exec: tuple[Hook, ...] = ()  # in the API rank's container, once ready
    post_commands: tuple[Hook, ...] = ()  # on the control machine, once ready
    stop_after_post: bool = False

    @property
    def api_rank(self) -> RankPlan:
        return next((r for r in self.ranks if r.spec.api_port is not None), self.ranks[0])

    @property
    def api_port(self) -> int:
        return self.api_rank.spec.api_port or self.port

    @property
    def hosts(self) -> list[Host]:
        return list({r.host.address: r.host for r in self.ranks}.values())

    def groups(self) -> list[list[RankPlan]]:
        order = sorted({r.spec.start_group for r in self.ranks})
        return [[r for r in self.ranks if r.spec.start_group == g] for g in order]

    def endpoint(self) -> str:
        return f"http://{self.api_rank.address}:{self.api_port}/v1"


# ---- hosts and identity ---------------------------------------------------------------------------------------


def choose_hosts(lr: LaunchRequest) -> tuple[tuple[Host, ...], list[str]]:
    """The hosts this job uses (the first `lr.nodes` given) and notes about trimming."""
    need, hosts = lr.nodes, lr.selection.hosts
    if len(hosts) < need:
        raise InputError(
            f"{lr.recipe_name} needs {need} hosts (tensor_parallel {lr.tensor_parallel} x pipeline_parallel "
            f"{lr.pipeline_parallel}; one GPU per host), but {lr.selection.source} gives {len(hosts)}",
            hint=f"give {need} hosts with -H, or lower --tp",
        )
    notes = []
    if len(hosts) > need:
        unused = ", ".join(h.address for h in hosts[need:])
        notes.append(f"using the first {need} of {len(hosts)} hosts; not using {unused}")
    return hosts[:need], notes


def job_identity(lr: LaunchRequest, hosts: Sequence[Host]) -> dict[str, Any]:
    """What defines a job (its id is a hash of this): only what was requested, never a probed fact."""
    req = lr.request
    return {
        "recipe": lr.recipe_name,
        "runtime": lr.runtime.name,
        "model": req.model,
        "image": req.image,
        "hosts": [h.address for h in hosts],
        "settings": {k: v for k, v in sorted(req.settings.items()) if v is not None},
        "command": list(req.command) if req.command else None,
        "env": dict(sorted({**req.env, **lr.env}.items())),
        "extra_args": list(req.extra_args),
    }


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _address(host: Host, facts: HostFacts | None, multi: bool) -> str:
    """The address other ranks use to reach `host` (never loopback in a multi-node job)."""
    given = host.address
    if _is_ip(given) and not ipaddress.ip_address(given.strip("[]")).is_loopback:
        return given
    if facts is not None and facts.address:
        return facts.address
    if host.local and multi:
        return f"<{given}: address probed at launch>"
    return given


def _probe_address(bind: str) -> str:
    return "127.0.0.1" if bind in {"", "0.0.0.0", "::", "[::]", "localhost"} else bind


# ---- ranks -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JobContext:
    lr: LaunchRequest
    job: str
    meta: Mapping[str, Any]
    launch_values: Mapping[str, Any]
    hf_cache: str
    mods: tuple[Hook, ...]
    num_nodes: int


def _rank_plan(ctx: _JobContext, spec: RankSpec, host: Host, address: str, facts: HostFacts | None) -> RankPlan:
    lr, name = ctx.lr, container_name(ctx.job, spec.role, spec.rank)
    values = {**ctx.launch_values, "container_name": name, "node_rank": spec.rank, "node_host": host.address}
    spec_env = render_launch_tokens(spec.env, {**values, "num_nodes": ctx.num_nodes, "model": lr.request.model})
    cluster = lr.selection.cluster.container
    plain_cluster, secret_cluster = split_secrets(dict(cluster.env))
    plain_spec, secret_spec = split_secrets(spec_env)
    plain_cli, secret_cli = split_secrets(dict(lr.env))
    detected = dict(facts.ib_env) if facts is not None else {}
    synced = {"HF_HUB_OFFLINE": "1"} if lr.hub_offline else {}  # the model is in this host's cache (distribution)
    env = {"HF_HOME": HF_CACHE_IN_CONTAINER, **synced, **detected, **plain_cluster, **plain_spec, **plain_cli}
    # A recipe that writes `HF_TOKEN: "${HF_TOKEN}"` means "pass mine on": the forwarded value wins over the text.
    secret_spec = {k: v for k, v in secret_spec.items() if not (k in lr.secrets and v.startswith("$"))}
    secrets = {**lr.secrets, **secret_cluster, **secret_spec, **secret_cli}
    home = facts.home if facts is not None else None
    mounts = (Mount(home_path(ctx.hf_cache, home), HF_CACHE_IN_CONTAINER), *_runtime_mounts(spec, home))
    pre = ctx.mods + render_hooks("pre_exec", lr.hooks.pre_exec, lr.render_hook, values)
    argv = gate_argv(spec.argv) if lr.hooks.gated else tuple(spec.argv)
    container = ContainerSpec(
        name=name,
        image=lr.request.image,
        entrypoint=argv[0],
        command=tuple(argv[1:]),
        env=tuple(env.items()),
        secret_env=tuple(sorted(secrets)),
        labels=tuple(labels(ctx.job, spec.rank, spec.role, ctx.meta).items()),
        mounts=mounts,
        gpus=cluster.gpus,
        ipc=cluster.ipc,
        shm_size=cluster.shm_size,
        ulimits=tuple(cluster.ulimits.items()),
        extra_args=tuple(cluster.docker_args),
    )
    return RankPlan(spec, host, address, container, secrets, pre, lr.hooks.gated)


def _runtime_mounts(spec: RankSpec, home: str | None) -> tuple[Mount, ...]:
    """Host paths a runtime asks for (`RankSpec.mounts`, `runtimes.base.Mount`s), `~/` resolved on the host."""
    return tuple(Mount(home_path(m.source, home), m.target, m.read_only) for m in spec.mounts)


def _context(lr: LaunchRequest, job: str, topology: Topology, specs: Sequence[RankSpec]) -> _JobContext:
    req = lr.request
    hf_cache = lr.selection.cluster.hf_cache or DEFAULT_HF_CACHE
    api_spec = next((s for s in specs if s.api_port is not None), specs[0])
    api_port = api_spec.api_port or int(req.setting("port", lr.runtime.default_port))
    meta = {
        "recipe": lr.recipe_name,
        "runtime": lr.runtime.name,
        "model": req.model,
        "served_model_name": served_name(req),
        "port": int(req.setting("port", lr.runtime.default_port)),
        "head": topology.hosts[0],
        "hosts": ",".join(topology.hosts),
        "cluster": lr.selection.cluster.name or None,
        "version": __version__,
        **dict(lr.extra_labels),
    }
    launch_values = {
        "head_host": topology.hosts[0],
        "head_ip": topology.head_address,
        "port": api_port,
        "cluster_id": job,
        "cache_dir": hf_cache,
        "base_url": f"http://{topology.head_address}:{api_port}/v1",
        "container_name": container_name(job, api_spec.role, api_spec.rank),
    }
    mods = tuple(mod_hook(c.label.removeprefix("mod:")) for c in lr.hooks.mods)
    return _JobContext(lr, job, meta, launch_values, hf_cache, mods, topology.num_nodes)


def served_name(req: ServeRequest) -> str:
    value = req.setting("served_model_name", req.model)
    if isinstance(value, list | tuple):
        return str(value[0]) if value else req.model
    return str(value)


def conventional_role(rank: int, num_nodes: int) -> str:
    """The role a rank has by convention (container names follow it): solo, else head for rank 0 and worker."""
    if num_nodes == 1:
        return "solo"
    return "head" if rank == 0 else "worker"


def _check_roles(runtime: str, specs: Sequence[RankSpec]) -> None:
    """Runtimes get the container names (`Topology.container_names`) before they assign roles: hold them to it."""
    for spec in specs:
        expected = conventional_role(spec.rank, len(specs))
        if spec.role != expected:
            raise RecipeError(
                f"runtime {runtime} gave rank {spec.rank} the role {spec.role!r}; expected {expected!r} "
                "(solo, or head for rank 0 and worker after)"
            )


def _topology(
    lr: LaunchRequest, hosts: Sequence[Host], addresses: tuple[str, ...], job: str, head_facts: HostFacts | None
) -> Topology:
    """Where the ranks run, with what runtimes may need to reach each other (container names, the SSH user)."""
    ssh = lr.selection.cluster.ssh
    probed_user = head_facts.user if head_facts and head_facts.user not in ("", "?") else None
    return Topology(
        hosts=tuple(h.address for h in hosts),
        addresses=addresses,
        tensor_parallel=lr.tensor_parallel,
        pipeline_parallel=lr.pipeline_parallel,
        container_names=tuple(container_name(job, conventional_role(r, len(hosts)), r) for r in range(len(hosts))),
        ssh_user=ssh.user or probed_user,
        ssh_port=ssh.port,
    )


def plan_job(lr: LaunchRequest, facts: Mapping[str, HostFacts] | None = None) -> JobPlan:
    hosts, notes = choose_hosts(lr)
    multi = len(hosts) > 1
    addresses = tuple(_address(h, (facts or {}).get(h.address), multi) for h in hosts)
    job = job_id(job_identity(lr, hosts))
    topology = _topology(lr, hosts, addresses, job, (facts or {}).get(hosts[0].address))
    specs = lr.runtime.build(lr.request, topology)
    if len(specs) != len(hosts):
        raise RecipeError(f"runtime {lr.runtime.name} planned {len(specs)} containers for {len(hosts)} hosts")
    _check_roles(lr.runtime.name, specs)
    ctx = _context(lr, job, topology, specs)
    ranks = tuple(
        _rank_plan(ctx, spec, host, address, (facts or {}).get(host.address))
        for spec, host, address in zip(specs, hosts, addresses, strict=True)
    )
    req = lr.request
    return JobPlan(
        job=job,
        recipe_name=lr.recipe_name,
        recipe_source=lr.recipe_source,
        runtime=lr.runtime.name,
        model=req.model,
        image=req.image,
        image_fallback=lr.runtime.fallback_image(req.image),
        served_model_name=served_name(req),
        port=int(req.setting("port", lr.runtime.default_port)),
        topology=topology,
        ranks=ranks,
        hf_cache=ctx.hf_cache,
        readiness=lr.readiness,
        pull=lr.pull,
        notes=tuple(notes),
        source=lr.selection.source,
        cluster=lr.selection.cluster.name or None,
        probed=facts is not None,
        probe_address=_probe_address(str(req.setting("host", "0.0.0.0"))),
        copies=lr.hooks.mods,
        post_exec=render_hooks("post_exec", lr.hooks.post_exec, lr.render_hook, ctx.launch_values),
        post_commands=render_hooks("post_commands", lr.hooks.post_commands, lr.render_hook, ctx.launch_values),
        stop_after_post=lr.hooks.stop_after_post,
    )
