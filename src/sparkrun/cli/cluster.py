"""`sparkrun cluster …`: named host groups with their SSH settings and container options (YAML in the config dir)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import click

from sparkrun import clusters as h
from sparkrun.cli.completion import complete_cluster
from sparkrun.cli.context import AppContext, pass_app
from sparkrun.cli.options import json_option
from sparkrun.errors import InputError
from sparkrun.hosts import parse_host_list, read_hosts_file

F = TypeVar("F", bound=Callable[..., Any])


def _settings_options(func: F) -> F:
    """Options shared by `create` and `update` (None = leave as is / default)."""
    opts = [
        click.option("-d", "--description", help="Free text."),
        click.option("-u", "--user", help="SSH user on the hosts."),
        click.option("--ssh-port", type=int, help="SSH port."),
        click.option("--ssh-key", "identity_file", help="SSH private key file."),
        click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE", help="Extra `ssh -o` option."),
        click.option("--connect-timeout", type=float, help="SSH connect timeout in seconds (default 10)."),
        click.option("--cache-dir", "hf_cache", help="Hugging Face cache on the hosts (default ~/.cache/huggingface)."),
        click.option(
            "--download",
            type=click.Choice(["auto", "control", "head"]),
            help="Where a model is downloaded once: this machine, the head, or auto (the head if it reaches the Hub).",
        ),
        click.option("--gpus", help="docker --gpus value (default all; 'none' to omit)."),
        click.option("--ipc", help="docker --ipc value (default host)."),
        click.option("--shm-size", help="docker --shm-size value (default 32g)."),
        click.option(
            "--ulimit", "ulimits", multiple=True, metavar="NAME=LIMIT", help="docker --ulimit (replaces defaults)."
        ),
        click.option("--docker-arg", "docker_args", multiple=True, help="Extra `docker run` argument (repeatable)."),
        click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment for every container."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _hosts_from(hosts: str | None, hosts_file: str | None) -> tuple[str, ...] | None:
    if hosts:
        return parse_host_list(hosts, where="--hosts")
    if hosts_file:
        return read_hosts_file(hosts_file)
    return None


@click.group()
def cluster() -> None:
    """Named host groups (YAML files in <config>/clusters/)."""


@cluster.command()
@click.argument("name")
@click.option("-H", "--hosts", help="Comma-separated hosts; the first is the head.")
@click.option("--hosts-file", help="File with one host per line.")
@_settings_options
@click.option("--default", "make_default", is_flag=True, help="Make it the default cluster.")
@pass_app
def create(
    app: AppContext, /, name: str, hosts: str | None, hosts_file: str | None, make_default: bool, **values: Any
) -> None:
    """Create cluster NAME."""

    h.check_cluster_name(name)
    addresses = _hosts_from(hosts, hosts_file)
    if not addresses:
        raise InputError("a cluster needs hosts", hint="pass -H host1,host2 or --hosts-file FILE")
    cluster = h.apply_changes(h.Cluster(name=name, hosts=addresses), **values)
    path = h.create_cluster(cluster, make_default=make_default)
    app.console.info(f"created cluster {name} ({len(addresses)} hosts): {path}")


@cluster.command()
@click.argument("name", shell_complete=complete_cluster)
@click.option("-H", "--hosts", help="Replace the host list.")
@click.option("--hosts-file", help="Replace the host list from a file.")
@click.option("--add-host", multiple=True, help="Add a host (repeatable).")
@click.option("--remove-host", multiple=True, help="Remove a host (repeatable).")
@_settings_options
@pass_app
def update(
    app: AppContext,
    /,
    name: str,
    hosts: str | None,
    hosts_file: str | None,
    add_host: tuple[str, ...],
    remove_host: tuple[str, ...],
    **values: Any,
) -> None:
    """Change cluster NAME."""

    given = _hosts_from(hosts, hosts_file)
    added = parse_host_list(",".join(add_host), where="--add-host")

    def change(current: h.Cluster) -> h.Cluster:
        addresses = list(given or current.hosts)
        addresses += [a for a in added if a not in addresses]
        missing = [a for a in remove_host if a not in addresses]
        if missing:
            raise InputError(f"cluster {name} has no host {', '.join(missing)}")
        addresses = [a for a in addresses if a not in remove_host]
        if not addresses:
            raise InputError(f"cluster {name} would have no hosts left")
        return h.apply_changes(replace(current, hosts=tuple(addresses)), **values)

    h.update_cluster(name, change)
    app.console.info(f"updated cluster {name}")


@cluster.command("list")
@json_option
@pass_app
def list_clusters(app: AppContext, as_json: bool) -> None:
    """List clusters."""

    default = h.default_cluster_name(app.user_config)
    clusters = [h.load_cluster(n) for n in h.list_cluster_names()]
    if as_json:
        app.console.json([{**h.cluster_to_mapping(c), "default": c.name == default} for c in clusters])
        return
    if not clusters:
        app.console.out("no clusters; create one: sparkrun cluster create NAME -H host1,host2")
        return
    rows = [
        ("*" if c.name == default else "", c.name, len(c.hosts), ",".join(c.hosts), c.description) for c in clusters
    ]
    app.console.table(["", "NAME", "HOSTS", "ADDRESSES", "DESCRIPTION"], rows)


@cluster.command()
@click.argument("name", shell_complete=complete_cluster)
@json_option
@pass_app
def show(app: AppContext, name: str, as_json: bool) -> None:
    """Show cluster NAME."""
    import yaml  # deferred: only `cluster show` prints YAML

    data = h.cluster_to_mapping(h.load_cluster(name))
    data["default"] = h.default_cluster_name(app.user_config) == name
    if as_json:
        app.console.json(data)
    else:
        app.console.out(yaml.safe_dump(data, sort_keys=False).rstrip())


@cluster.command()
@click.argument("name", shell_complete=complete_cluster)
@click.option("--force", is_flag=True, help="Also delete the default cluster.")
@pass_app
def delete(app: AppContext, name: str, force: bool) -> None:
    """Delete cluster NAME."""

    h.delete_cluster(name, force=force)
    app.console.info(f"deleted cluster {name}")


@cluster.command("set-default")
@click.argument("name", shell_complete=complete_cluster)
@pass_app
def set_default(app: AppContext, name: str) -> None:
    """Use NAME when no hosts are given."""

    h.load_cluster(name)
    h.set_default_cluster(app.user_config, name)
    app.console.info(f"default cluster: {name}")


@cluster.command("unset-default")
@pass_app
def unset_default(app: AppContext) -> None:
    """Forget the default cluster."""

    h.set_default_cluster(app.user_config, None)
    app.console.info("no default cluster")


@cluster.command("default")
@json_option
@pass_app
def default(app: AppContext, as_json: bool) -> None:
    """Print the default cluster's name."""

    name = h.default_cluster_name(app.user_config)
    if as_json:
        app.console.json({"default": name})
    else:
        app.console.out(name or "(none)")
