"""Plan a launch: recipe request + runtime + hosts → per-rank containers and the steps that start them. Pure.

`run --dry-run` prints exactly this plan (text or JSON) and stops without opening a connection; `run` applies the same
plan objects (`orchestration/launch.py`). Facts from the probe only fill in what cannot be known offline (the address
of a host given by name), never what runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun import __version__
from sparkrun.errors import InputError, RecipeError
from sparkrun.orchestration.facts import HostFacts
from sparkrun.orchestration.hooks import Copy, Hook, HookSet, Renderer, mod_hook, render_hooks
from sparkrun.orchestration.hosts import ContainerSettings, Host, HostSelection
from sparkrun.orchestration.jobs import container_name, job_id, labels
from sparkrun.orchestration.scripts import script_text
from sparkrun.runtimes.base import RankSpec, Runtime, ServeRequest, Topology

HF_CACHE_IN_CONTAINER = "/cache/huggingface"
DEFAULT_HF_CACHE = "~/.cache/huggingface"
SECRET_KEY_RE = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
DEFAULT_PROMPT = "Reply with exactly: sparkrun-ready"


@dataclass(frozen=True)
class Readiness:
    port_timeout: int = 1800
    health_timeout: int = 900
    inference: bool = True
    inference_timeout: int = 1200
    prompt: str = DEFAULT_PROMPT
    rendezvous_timeout: int = 600  # a rank's wait_port must open within this

    @classmethod
    def from_recipe(cls, data: Mapping[str, Any] | None) -> Readiness:
        d = dict(data or {})
        base = cls()
        try:
            return cls(
                port_timeout=int(d.get("port_timeout_s", base.port_timeout)),
                health_timeout=int(d.get("health_timeout_s", base.health_timeout)),
                inference=bool(d.get("inference", base.inference)),
                inference_timeout=int(d.get("inference_timeout_s", base.inference_timeout)),
                prompt=str(d.get("inference_prompt") or base.prompt),
                rendezvous_timeout=int(d.get("rendezvous_timeout_s", base.rendezvous_timeout)),
            )
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"readiness: timeouts must be whole seconds ({exc})") from exc


@dataclass(frozen=True)
class LaunchRequest:
    """Everything `plan_launch` needs; built by the `run` command from the recipe layer's output."""

    recipe_name: str
    recipe_source: str
    runtime: Runtime
    request: ServeRequest
    selection: HostSelection
    env: Mapping[str, str] = field(default_factory=dict)  # `-e KEY=VALUE` from the command line
    secrets: Mapping[str, str] = field(default_factory=dict)  # forwarded from the control machine (e.g. HF_TOKEN)
    readiness: Readiness = field(default_factory=Readiness)
    min_nodes: int | None = None
    max_nodes: int | None = None
    pull: str = "missing"  # or "never" (--offline)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    hooks: HookSet = field(default_factory=HookSet)
    render_hook: Renderer | None = None  # fills hook placeholders (the recipe layer's renderer)


@dataclass(frozen=True)
class RankPlan:
    spec: RankSpec
    host: Host
    address: str
    container: str
    image: str
    docker_opts: tuple[str, ...]
    secret_keys: tuple[str, ...]
    secret_env: tuple[str, ...] = field(repr=False, default=())
    pre_hooks: tuple[Hook, ...] = ()  # mods' run.sh and pre_exec, in order
    gated: bool = False  # start held by gate.sh until the pre hooks ran

    @property
    def rank(self) -> int:
        return self.spec.rank

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def main_argv(self) -> tuple[str, ...]:
        """The container's main process: the engine, behind gate.sh when pre hooks must run first."""
        if self.gated:
            return ("bash", "-c", _GATE_SCRIPT(), "sparkrun-gate", *self.spec.argv)
        return tuple(self.spec.argv)

    @property
    def entrypoint(self) -> str:
        """Passed as `--entrypoint`, so an image's own ENTRYPOINT (e.g. `vllm serve`) is never prepended."""
        return self.main_argv[0]

    @property
    def command(self) -> tuple[str, ...]:
        return self.main_argv[1:]

    def docker_run_argv(self, hf_cache: str) -> list[str]:
        """The full `docker run` line as the host will run it (secrets shown as the env-file placeholder)."""
        argv = ["docker", "run", "-d", "--name", self.container, *self.docker_opts]
        argv += ["-v", f"{hf_cache}:{HF_CACHE_IN_CONTAINER}"]
        for mount in self.spec.mounts:
            argv += ["-v", mount.volume()]
        if self.secret_keys:
            argv += ["--env-file", f"<private: {','.join(self.secret_keys)}>"]
        return [*argv, "--entrypoint", self.entrypoint, self.image, *self.command]


@dataclass(frozen=True)
class LaunchPlan:
    job: str
    recipe_name: str
    recipe_source: str
    runtime: str
    model: str
    image: str
    served_model_name: str
    port: int
    topology: Topology
    ranks: tuple[RankPlan, ...]
    hf_cache: str
    readiness: Readiness
    pull: str
    detect_network: bool
    notes: tuple[str, ...]
    source: str
    # Where readiness connects, on the API rank's host: 127.0.0.1 unless the engine binds one address only.
    probe_address: str = "127.0.0.1"
    copies: tuple[Copy, ...] = ()  # directories sent into every gated container (mods)
    post_exec: tuple[Hook, ...] = ()  # in the API rank's container, once ready
    post_commands: tuple[Hook, ...] = ()  # on the control machine, once ready
    stop_after_post: bool = False

    @property
    def api_rank(self) -> RankPlan:
        for r in self.ranks:
            if r.spec.api_port is not None:
                return r
        return self.ranks[0]

    def groups(self) -> list[list[RankPlan]]:
        order = sorted({r.spec.start_group for r in self.ranks})
        return [[r for r in self.ranks if r.spec.start_group == g] for g in order]

    def endpoint(self) -> str:
        api = self.api_rank
        return f"http://{api.address}:{api.spec.api_port or self.port}/v1"


# ---- planning -------------------------------------------------------------------------------------------------


def _int_setting(request: ServeRequest, key: str, default: int) -> int:
    value = request.setting(key, default)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise RecipeError(f"{key}: expected a whole number, got {value!r}") from None
    if n < 1:
        raise RecipeError(f"{key}: must be at least 1, got {n}")
    return n


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


def choose_hosts(lr: LaunchRequest) -> tuple[tuple[Host, ...], int, int, list[str]]:
    """The hosts this job uses (tensor x pipeline parallel of them) and notes about trimming."""
    tp = _int_setting(lr.request, "tensor_parallel", 1)
    pp = _int_setting(lr.request, "pipeline_parallel", 1)
    need = tp * pp
    if lr.max_nodes is not None and need > lr.max_nodes:
        raise RecipeError(
            f"{lr.recipe_name}: tensor_parallel {tp} x pipeline_parallel {pp} needs {need} hosts, "
            f"but the recipe allows at most {lr.max_nodes}"
        )
    if lr.min_nodes is not None and need < lr.min_nodes:
        raise RecipeError(
            f"{lr.recipe_name}: the recipe needs at least {lr.min_nodes} nodes, but tensor_parallel {tp} x "
            f"pipeline_parallel {pp} = {need}",
            hint=f"pass --tp {lr.min_nodes}",
        )
    hosts = lr.selection.hosts
    if len(hosts) < need:
        raise InputError(
            f"{lr.recipe_name} needs {need} hosts (tensor_parallel {tp} x pipeline_parallel {pp}; one GPU per host), "
            f"but {lr.selection.source} gives {len(hosts)}",
            hint=f"give {need} hosts with -H, or lower --tp",
        )
    notes = []
    if len(hosts) > need:
        unused = ", ".join(h.address for h in hosts[need:])
        notes.append(f"using the first {need} of {len(hosts)} hosts; not using {unused}")
    return hosts[:need], tp, pp, notes


def _split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for key, value in env.items():
        (secret if SECRET_KEY_RE.search(key) else plain)[key] = value
    return plain, secret


def conventional_role(rank: int, num_nodes: int) -> str:
    """The role a rank has by convention (container names follow it): solo, else head for rank 0 and worker."""
    if num_nodes == 1:
        return "solo"
    return "head" if rank == 0 else "worker"


def _docker_opts(
    spec: RankSpec, container: ContainerSettings, env: Mapping[str, str], lab: Mapping[str, str]
) -> list[str]:
    opts = ["--init", "--network", "host"]
    if container.gpus:
        opts += ["--gpus", container.gpus]
    if container.ipc:
        opts += ["--ipc", container.ipc]
    if container.shm_size:
        opts += ["--shm-size", container.shm_size]
    for name, limit in container.ulimits.items():
        opts += ["--ulimit", f"{name}={limit}"]
    for key, value in lab.items():
        opts += ["--label", f"{key}={value}"]
    for key, value in env.items():
        opts += ["-e", f"{key}={value}"]
    return [*opts, *container.docker_args]


def job_identity(lr: LaunchRequest, hosts: Sequence[Host]) -> dict[str, Any]:
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


def plan_launch(lr: LaunchRequest, facts: Mapping[str, HostFacts] | None = None) -> LaunchPlan:
    hosts, tp, pp, notes = choose_hosts(lr)
    multi = len(hosts) > 1
    addresses = tuple(_address(h, (facts or {}).get(h.address), multi) for h in hosts)
    job = job_id(job_identity(lr, hosts))
    cluster = lr.selection.cluster
    topology = Topology(
        hosts=tuple(h.address for h in hosts),
        addresses=addresses,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        container_names=tuple(container_name(job, conventional_role(r, len(hosts)), r) for r in range(len(hosts))),
        ssh_user=cluster.ssh.user,
        ssh_port=cluster.ssh.port,
    )
    specs = lr.runtime.build(lr.request, topology)
    if len(specs) != len(hosts):
        raise RecipeError(f"runtime {lr.runtime.name} planned {len(specs)} containers for {len(hosts)} hosts")
    for spec in specs:
        if container_name(job, spec.role, spec.rank) != topology.container_names[spec.rank]:
            raise RecipeError(
                f"runtime {lr.runtime.name} gave rank {spec.rank} the role {spec.role!r}; "
                f"expected {conventional_role(spec.rank, len(hosts))!r} (solo, or head for rank 0 and worker after)"
            )
    req = lr.request
    served = str(req.setting("served_model_name", req.model))
    port = int(req.setting("port", lr.runtime.default_port))
    meta = {
        "recipe": lr.recipe_name,
        "runtime": lr.runtime.name,
        "model": req.model,
        "served_model_name": served,
        "port": port,
        "head": topology.hosts[0],
        "hosts": ",".join(topology.hosts),
        "cluster": cluster.name or None,
        "version": __version__,
        **dict(lr.extra_labels),
    }
    plain_cli, secret_cli = _split_env(lr.env)
    hf_cache = cluster.hf_cache or DEFAULT_HF_CACHE
    api_spec = next((s for s in specs if s.api_port is not None), specs[0])
    api_port = api_spec.api_port or port
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
    ranks = []
    for spec, host, address in zip(specs, hosts, addresses, strict=True):
        name = container_name(job, spec.role, spec.rank)
        rank_values = {**launch_values, "container_name": name, "node_rank": spec.rank, "node_host": host.address}
        spec_env = expand_launch_tokens(spec.env, {**rank_values, "num_nodes": len(hosts), "model": req.model})
        env_plain, env_secret = _split_env({**cluster.container.env, **spec_env})
        env = {"HF_HOME": HF_CACHE_IN_CONTAINER, **env_plain, **plain_cli}
        # A recipe that writes `HF_TOKEN: "${HF_TOKEN}"` means "pass mine on": the forwarded value wins over the text.
        env_secret = {k: v for k, v in env_secret.items() if not (k in lr.secrets and v.startswith("$"))}
        secrets = {**lr.secrets, **env_secret, **secret_cli}
        lab = labels(job, spec.rank, spec.role, meta)
        pre = mods + render_hooks("pre_exec", lr.hooks.pre_exec, lr.render_hook, rank_values)
        ranks.append(
            RankPlan(
                spec=spec,
                host=host,
                address=address,
                container=name,
                image=req.image,
                docker_opts=tuple(_docker_opts(spec, cluster.container, env, lab)),
                secret_keys=tuple(sorted(secrets)),
                secret_env=tuple(f"{k}={v}" for k, v in sorted(secrets.items())),
                pre_hooks=pre,
                gated=lr.hooks.gated,
            )
        )
    return LaunchPlan(
        job=job,
        recipe_name=lr.recipe_name,
        recipe_source=lr.recipe_source,
        runtime=lr.runtime.name,
        model=req.model,
        image=req.image,
        served_model_name=served,
        port=port,
        topology=topology,
        ranks=tuple(ranks),
        hf_cache=hf_cache,
        readiness=lr.readiness,
        pull=lr.pull,
        detect_network=multi,
        notes=tuple(notes),
        source=lr.selection.source,
        probe_address=_probe_address(str(req.setting("host", "0.0.0.0"))),
        copies=lr.hooks.mods,
        post_exec=render_hooks("post_exec", lr.hooks.post_exec, lr.render_hook, launch_values),
        post_commands=render_hooks("post_commands", lr.hooks.post_commands, lr.render_hook, launch_values),
        stop_after_post=lr.hooks.stop_after_post,
    )


def _GATE_SCRIPT() -> str:
    """gate.sh without its comment lines (they would only lengthen every `docker run` line)."""
    text = script_text("container/gate.sh")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


_LAUNCH_TOKEN = re.compile(r"\{launch\.([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_launch_tokens(env: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """`{launch.node_rank}`-style tokens in recipe env values, per rank (unknown names stay as written)."""

    def sub(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else str(value)

    return {k: _LAUNCH_TOKEN.sub(sub, v) for k, v in env.items()}


def _probe_address(bind: str) -> str:
    return "127.0.0.1" if bind in {"", "0.0.0.0", "::", "[::]", "localhost"} else bind
