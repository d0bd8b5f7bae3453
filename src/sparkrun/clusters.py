"""Clusters: named host groups with their SSH and container settings, stored as YAML in the config dir; and which
hosts a command acts on.

Host resolution order for commands that act on hosts: `-H/--hosts` > `--hosts-file` > `--cluster` > the default
cluster > `hosts:` in config.yaml. A cluster file (`<config>/clusters/<name>.yaml`) looks like:

    name: testbed
    description: two lab Sparks
    hosts: [10.0.0.11, 10.0.0.12]
    ssh: {user: root, port: 22, identity_file: ~/.ssh/id_ed25519, options: {StrictHostKeyChecking: "yes"},
          connect_timeout: 10}
    hf_cache: ~/.cache/huggingface        # on the hosts; ~ is the SSH user's home there
    download: auto                        # where a model is downloaded once: auto | control | head (distribution)
    container: {gpus: all, ipc: host, shm_size: 32g, ulimits: {memlock: "-1"}, docker_args: [], env: {}}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sparkrun.config import UserConfig, config_dir, config_lock, load_user_config, load_yaml_mapping, write_yaml_atomic
from sparkrun.errors import ConfigError, InputError
from sparkrun.hosts import Host, SshSettings, is_local_address, parse_host_list, read_hosts_file, split_assignments

CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

DEFAULT_ULIMITS: Mapping[str, str] = {"memlock": "-1", "stack": "67108864"}
DOWNLOAD_MODES = ("auto", "control", "head")
LEGACY_TRANSFER_MODES = {"local": "control", "push": "control", "delegated": "head", "pull": "head"}


@dataclass(frozen=True)
class ContainerSettings:
    """Docker options every container of a job gets, from the cluster (or defaults)."""

    gpus: str | None = "all"
    ipc: str | None = "host"
    shm_size: str | None = "32g"
    ulimits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ULIMITS))
    docker_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    name: str
    hosts: tuple[str, ...]
    description: str = ""
    ssh: SshSettings = field(default_factory=SshSettings)
    hf_cache: str | None = None
    container: ContainerSettings = field(default_factory=ContainerSettings)
    download: str = "auto"  # auto | control | head: where a model is downloaded (sparkrun.distribution.spec)


@dataclass(frozen=True)
class HostSelection:
    """The hosts a command acts on and where they came from."""

    hosts: tuple[Host, ...]
    source: str  # "--hosts", "--hosts-file FILE", "cluster NAME", "config"
    cluster: Cluster


# ---- parsing ------------------------------------------------------------------------------------------------


def _ssh_from(data: Any, where: str) -> SshSettings:
    if data is None:
        return SshSettings()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: ssh must be a mapping")
    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}: ssh.options must be a mapping of OpenSSH option names to values")
    port = data.get("port")
    timeout = data.get("connect_timeout")
    try:
        port_i = int(port) if port is not None else None
        timeout_f = float(timeout) if timeout is not None else None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: ssh.port and ssh.connect_timeout must be numbers") from exc
    if port_i is not None and not 0 < port_i < 65536:
        raise ConfigError(f"{where}: ssh.port: expected 1-65535, got {port_i}")
    if timeout_f is not None and not 0 < timeout_f < 86400:  # also refuses nan and inf
        raise ConfigError(f"{where}: ssh.connect_timeout: expected seconds (0-86400), got {timeout}")
    identity = data.get("identity_file")
    return SshSettings(
        user=str(data["user"]) if data.get("user") else None,
        port=port_i,
        identity_file=str(identity) if identity else None,
        options=tuple((str(k), str(v)) for k, v in options.items()),
        connect_timeout=timeout_f,
    )


def _str_map(data: Any, where: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    return {str(k): str(v) for k, v in data.items()}


def _container_from(data: Any, where: str) -> ContainerSettings:
    if data is None:
        return ContainerSettings()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: container must be a mapping")
    base = ContainerSettings()
    args = data.get("docker_args") or []
    if not isinstance(args, list):
        raise ConfigError(f"{where}: container.docker_args must be a list")
    return ContainerSettings(
        gpus=str(data["gpus"]) if data.get("gpus") is not None else (None if "gpus" in data else base.gpus),
        ipc=str(data["ipc"]) if data.get("ipc") is not None else (None if "ipc" in data else base.ipc),
        shm_size=str(data["shm_size"])
        if data.get("shm_size") is not None
        else (None if "shm_size" in data else base.shm_size),
        ulimits=_str_map(data["ulimits"], f"{where}: container.ulimits") if "ulimits" in data else base.ulimits,
        docker_args=tuple(str(a) for a in args),
        env=_str_map(data.get("env"), f"{where}: container.env"),
    )


def cluster_from_mapping(name: str, data: Mapping[str, Any], where: str) -> Cluster:
    hosts_raw = data.get("hosts") or []
    if isinstance(hosts_raw, str):
        hosts = parse_host_list(hosts_raw, where=where)
    elif isinstance(hosts_raw, list):
        hosts = parse_host_list(",".join(str(h) for h in hosts_raw), where=where) if hosts_raw else ()
    else:
        raise ConfigError(f"{where}: hosts must be a list")
    return Cluster(
        name=name,
        hosts=hosts,
        description=str(data.get("description") or ""),
        ssh=_ssh_from(data.get("ssh"), where),
        hf_cache=str(data["hf_cache"]) if data.get("hf_cache") else None,
        container=_container_from(data.get("container"), where),
        download=download_mode(data.get("download") or data.get("transfer_mode"), where),
    )


def download_mode(value: Any, where: str = "download") -> str:
    """`auto`, `control` or `head` (None: auto); the older tool's transfer modes map onto them."""
    text = str(value or "auto").strip().lower()
    text = LEGACY_TRANSFER_MODES.get(text, text)
    if text not in DOWNLOAD_MODES:
        raise ConfigError(f"{where}: download {value!r} is not one of {', '.join(DOWNLOAD_MODES)}")
    return text


def cluster_to_mapping(cluster: Cluster) -> dict[str, Any]:
    ssh: dict[str, Any] = {}
    if cluster.ssh.user:
        ssh["user"] = cluster.ssh.user
    if cluster.ssh.port:
        ssh["port"] = cluster.ssh.port
    if cluster.ssh.identity_file:
        ssh["identity_file"] = cluster.ssh.identity_file
    if cluster.ssh.options:
        ssh["options"] = dict(cluster.ssh.options)
    if cluster.ssh.connect_timeout is not None:
        ssh["connect_timeout"] = cluster.ssh.connect_timeout
    c = cluster.container
    container: dict[str, Any] = {
        "gpus": c.gpus,
        "ipc": c.ipc,
        "shm_size": c.shm_size,
        "ulimits": dict(c.ulimits),
        "docker_args": list(c.docker_args),
        "env": dict(c.env),
    }
    out: dict[str, Any] = {"name": cluster.name, "description": cluster.description, "hosts": list(cluster.hosts)}
    out["ssh"] = ssh
    if cluster.hf_cache:
        out["hf_cache"] = cluster.hf_cache
    if cluster.download != "auto":
        out["download"] = cluster.download
    out["container"] = container
    return out


# ---- the cluster store ---------------------------------------------------------------------------------------


def clusters_dir() -> Path:
    return config_dir() / "clusters"


def check_cluster_name(name: str) -> str:
    if not CLUSTER_NAME_RE.match(name):
        raise InputError(f"invalid cluster name {name!r}", hint="use letters, digits, '.', '_' or '-' (max 64)")
    return name


def cluster_path(name: str) -> Path:
    return clusters_dir() / f"{check_cluster_name(name)}.yaml"


def load_cluster(name: str) -> Cluster:
    path = cluster_path(name)
    if not path.is_file():
        known = ", ".join(list_cluster_names()) or "none"
        hint = f"known clusters: {known}; create one with `sparkrun cluster create`"
        raise ConfigError(f"unknown cluster {name!r}", hint=hint)
    return cluster_from_mapping(name, load_yaml_mapping(path, what="cluster"), str(path))


def save_cluster(cluster: Cluster) -> Path:
    path = cluster_path(cluster.name)
    write_yaml_atomic(path, cluster_to_mapping(cluster))
    return path


def create_cluster(cluster: Cluster, *, make_default: bool = False) -> Path:
    """Save a new cluster; refused when one of that name exists (checked and written under the config lock)."""
    with config_lock():
        if cluster_path(cluster.name).exists():
            hint = f"change it with `sparkrun cluster update {cluster.name}`"
            raise InputError(f"cluster {cluster.name!r} already exists", hint=hint)
        path = save_cluster(cluster)
        if make_default:
            set_default_cluster(None, cluster.name)
        return path


def update_cluster(name: str, change: Callable[[Cluster], Cluster]) -> Cluster:
    """Load, change and save a cluster as one step under the config lock (concurrent updates all count)."""
    with config_lock():
        updated = change(load_cluster(name))
        save_cluster(updated)
        return updated


def delete_cluster(name: str, *, force: bool) -> bool:
    """Delete a cluster (the default one only with `force`, which also unsets it); True if it was the default."""
    with config_lock():
        load_cluster(name)
        is_default = default_cluster_name(load_user_config()) == name
        if is_default and not force:
            raise InputError(f"{name} is the default cluster", hint="pass --force, or set another default first")
        cluster_path(name).unlink()
        if is_default:
            set_default_cluster(None, None)
        return is_default


def list_cluster_names() -> list[str]:
    d = clusters_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml") if CLUSTER_NAME_RE.match(p.stem))


def default_cluster_name(user_config: UserConfig) -> str | None:
    name = user_config.get("default_cluster")
    return str(name) if name else None


def set_default_cluster(user_config: UserConfig | None, name: str | None) -> None:
    """Set (or, with None, unset) `default_cluster` in config.yaml. The file is read again under the config lock, so
    what other processes wrote since `user_config` was loaded is kept."""
    with config_lock():
        current = load_user_config()
        data = dict(current.data)
        if name is None:
            data.pop("default_cluster", None)
        else:
            data["default_cluster"] = name
        write_yaml_atomic(current.path, data)


# ---- changes (cluster create/update) ----------------------------------------------------------------------------


def _none_word(value: str) -> str | None:
    return None if value.lower() in {"", "none"} else value


def _changed_ssh(ssh: SshSettings, changes: Mapping[str, Any]) -> SshSettings:
    updates: dict[str, Any] = {}
    for key, field_name in (("user", "user"), ("ssh_port", "port"), ("identity_file", "identity_file")):
        if changes.get(key) is not None:
            updates[field_name] = changes[key]
    if changes.get("connect_timeout") is not None:
        updates["connect_timeout"] = float(changes["connect_timeout"])
    if changes.get("ssh_options"):
        merged = {**dict(ssh.options), **split_assignments(changes["ssh_options"], what="--ssh-option")}
        updates["options"] = tuple(merged.items())
    return replace(ssh, **updates)


def _changed_container(c: ContainerSettings, changes: Mapping[str, Any]) -> ContainerSettings:
    updates: dict[str, Any] = {}
    for key in ("gpus", "ipc", "shm_size"):
        if changes.get(key) is not None:
            updates[key] = _none_word(str(changes[key]))
    if changes.get("ulimits"):
        updates["ulimits"] = split_assignments(changes["ulimits"], what="--ulimit")
    if changes.get("docker_args"):
        updates["docker_args"] = tuple(changes["docker_args"])
    if changes.get("env"):
        updates["env"] = {**c.env, **split_assignments(changes["env"], what="--env")}
    return replace(c, **updates)


def apply_changes(cluster: Cluster, **changes: Any) -> Cluster:
    """A copy of `cluster` with the options of `cluster create/update` applied (None = unchanged)."""
    out = replace(
        cluster, ssh=_changed_ssh(cluster.ssh, changes), container=_changed_container(cluster.container, changes)
    )
    if changes.get("description") is not None:
        out = replace(out, description=str(changes["description"]))
    if changes.get("hf_cache") is not None:
        out = replace(out, hf_cache=str(changes["hf_cache"]) or None)
    if changes.get("download") is not None:
        out = replace(out, download=download_mode(changes["download"], "--download"))
    return out


# ---- resolution ----------------------------------------------------------------------------------------------


def _merge_ssh(base: SshSettings, override: SshSettings) -> SshSettings:
    return SshSettings(
        user=override.user or base.user,
        port=override.port or base.port,
        identity_file=override.identity_file or base.identity_file,
        options=tuple({**dict(base.options), **dict(override.options)}.items()),
        connect_timeout=override.connect_timeout if override.connect_timeout is not None else base.connect_timeout,
    )


def resolve_hosts(
    user_config: UserConfig,
    *,
    hosts: str | None = None,
    hosts_file: str | None = None,
    cluster: str | None = None,
    connect_timeout: float | None = None,
) -> HostSelection:
    """Which hosts to act on, with their SSH and container settings. Pure except for reading config files."""
    config_ssh = _ssh_from(user_config.get("ssh"), str(user_config.path))
    config_cache = user_config.get("hf_cache")
    if config_cache is not None and not isinstance(config_cache, str):
        raise ConfigError(f"{user_config.path}: hf_cache: expected a path, got {type(config_cache).__name__}")
    download = download_mode(user_config.get("download"), str(user_config.path))
    base = Cluster(name="", hosts=(), ssh=config_ssh, hf_cache=config_cache, download=download)
    named: Cluster | None = None
    if cluster:
        named = load_cluster(cluster)
    elif not hosts and not hosts_file:
        default = default_cluster_name(user_config)
        if default:
            named = load_cluster(default)
    if named is not None:
        base = replace(named, ssh=_merge_ssh(config_ssh, named.ssh), hf_cache=named.hf_cache or base.hf_cache)

    if hosts:
        addresses, source = parse_host_list(hosts, where="--hosts"), "--hosts"
    elif hosts_file:
        addresses, source = read_hosts_file(hosts_file), f"--hosts-file {hosts_file}"
    elif named is not None:
        addresses, source = named.hosts, f"cluster {named.name}"
    else:
        raw = user_config.get("hosts")
        text = ",".join(map(str, raw)) if isinstance(raw, list) else str(raw or "")
        addresses = parse_host_list(text, where="config")
        source = "config"
    if not addresses:
        raise InputError(
            "no hosts to act on",
            hint="give -H host1,host2, --hosts-file FILE or --cluster NAME (or `sparkrun cluster set-default NAME`)",
        )
    ssh = base.ssh if connect_timeout is None else replace(base.ssh, connect_timeout=connect_timeout)
    selected = tuple(Host(address=a, ssh=ssh, local=is_local_address(a)) for a in addresses)
    return HostSelection(hosts=selected, source=source, cluster=replace(base, hosts=addresses))
