"""`sparkrun setup …`: check the hosts and prepare them (SSH mesh, docker group, cache owner, earlyoom, CX7, page
cache), the wizard that does it all for a cluster, and `setup plugins` (an alias of `plugins`, as in earlier
sparkrun). Every command that changes hosts has `--dry-run` (its plan, from the hosts' facts; nothing changes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sparkrun.cli.context import AppContext, pass_app, target
from sparkrun.cli.options import hosts_options, json_option
from sparkrun.cli.plugins import plugins

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    """HOSTS, -u/--user, -n/--dry-run, --json: what every setup command that changes hosts takes."""
    func = json_option(func)
    func = click.option("-n", "--dry-run", is_flag=True, help="Show the plan (from the hosts' facts) and stop.")(func)
    func = click.option("-u", "--user", help="SSH user on the hosts (instead of the cluster's).")(func)
    return hosts_options(func)


@click.group()
def setup() -> None:
    """Check the hosts and prepare them for sparkrun."""


setup.add_command(plugins, "plugins")


@setup.command("check", short_help="Check every host in one read-only round trip; name each fix.")
@hosts_options
@click.option("-u", "--user", help="SSH user on the hosts (instead of the cluster's).")
@json_option
@click.option("--fix", is_flag=True, help="Apply the safe fixes for what failed, then check again.")
@click.option("--gpu-image", metavar="IMAGE", help="Image for the GPU-in-a-container test (default: newest on host).")
@click.option("--cache-dir", help="Hugging Face cache on the hosts (default: the cluster's, ~/.cache/huggingface).")
@click.option("--min-free", type=float, default=10.0, show_default=True, help="Fail below this many GiB free.")
@click.option("--max-skew", type=float, default=5.0, show_default=True, help="Fail when a clock is further off (s).")
@pass_app
def check(app: AppContext, /, hosts: str | None, hosts_file: str | None, cluster: str | None, **kw: Any) -> None:
    """Check every host in one read-only round trip: SSH and host keys, SSH between the hosts, docker without sudo,
    the GPU in a container, free disk and owner of the cache, clock skew, CX7 addresses and MTU, tools, earlyoom.

    One line per host and check; each failing line names its fix. Exit 0 when no check failed (warnings allowed),
    4 when any did (also with --fix: the result after fixing).
    """
    from sparkrun.cli import setup_flow  # deferred: the core loads only when a command runs

    options = setup_flow.options(kw, min_free=kw.pop("min_free"), max_skew=kw.pop("max_skew"))
    setup_flow.check(app, target(hosts, hosts_file, cluster), kw["user"], options, fix=kw["fix"], as_json=kw["as_json"])


def _act(app: AppContext, action: str, kw: dict[str, Any]) -> None:
    from sparkrun.cli import setup_flow  # deferred: the core loads only when a command runs

    where = target(kw.pop("hosts"), kw.pop("hosts_file"), kw.pop("cluster"))
    user, dry_run, as_json = kw.pop("user"), kw.pop("dry_run"), kw.pop("as_json")
    setup_flow.act(app, where, user, action, setup_flow.options(kw), dry_run=dry_run, as_json=as_json)


@setup.command("ssh", short_help="SSH keys and host keys among the hosts (the mesh).")
@_common
@click.option("--accept-host-key", "accept_host_keys", multiple=True, metavar="SHA256:...", help="Accept this key.")
@click.option("--discover-ips/--no-discover-ips", default=True, help="Also record host keys under the hosts' IPs.")
@pass_app
def ssh(app: AppContext, /, **kw: Any) -> None:
    """Mesh SSH keys among the hosts: each gets a key pair (made on the host), every host's key is authorized on
    every host, and every host's own SSH host keys are recorded in every host's known_hosts. A host whose key this
    machine does not know yet is shown with its fingerprint for you to confirm (or --accept-host-key)."""
    _act(app, "ssh", kw)


@setup.command("docker-group", short_help="Add the SSH user to group docker.")
@_common
@pass_app
def docker_group(app: AppContext, /, **kw: Any) -> None:
    """Add the SSH user to group docker, so sparkrun runs docker without sudo."""
    _act(app, "docker-group", kw)


@setup.command("earlyoom", short_help="Install, configure and start earlyoom.")
@_common
@click.option("--prefer", metavar="REGEX", help="Process names earlyoom kills first (default: inference engines).")
@click.option("--avoid", metavar="REGEX", help="Process names earlyoom spares (default: sshd, dockerd, ...).")
@pass_app
def earlyoom(app: AppContext, /, **kw: Any) -> None:
    """Install, configure and start earlyoom, so running out of memory kills an engine, not the host."""
    _act(app, "earlyoom", kw)


@setup.command("fix-permissions", short_help="Make the SSH user own the Hugging Face cache.")
@_common
@click.option("--cache-dir", help="Hugging Face cache on the hosts (default: the cluster's, ~/.cache/huggingface).")
@pass_app
def fix_permissions(app: AppContext, /, **kw: Any) -> None:
    """Make the SSH user own the Hugging Face cache on every host (e.g. after a container wrote it as root)."""
    _act(app, "fix-permissions", kw)


@setup.command("clear-cache", short_help="Drop the page cache on every host.")
@_common
@pass_app
def clear_cache(app: AppContext, /, **kw: Any) -> None:
    """Drop the page cache on every host (frees memory the GPU shares with the system on a DGX Spark)."""
    _act(app, "clear-cache", kw)


@setup.command("cx7", short_help="CX7 addresses and MTU 9000, saved with netplan.")
@_common
@click.option("--subnet", "subnets", multiple=True, metavar="CIDR", help="Subnet for CX7 interface 1, 2, ... in order.")
@click.option("--subnet1", hidden=True, help="Subnet for the first CX7 interface (same as the first --subnet).")
@click.option("--subnet2", hidden=True, help="Subnet for the second CX7 interface.")
@click.option("--interfaces", help="Comma-separated interfaces (default: every RDMA netdev with a link).")
@click.option("--mtu", type=int, default=9000, show_default=True, help="MTU for the CX7 interfaces.")
@click.option("--force", is_flag=True, help="Renumber interfaces that have an address outside the subnet.")
@pass_app
def cx7(app: AppContext, /, **kw: Any) -> None:
    """Give each host's CX7 interfaces an address and MTU 9000, saved with the host's network tool (netplan or
    NetworkManager). An interface that already has an address in its subnet keeps it."""
    _act(app, "cx7", kw)


@setup.command("wizard", short_help="Prepare a new or named cluster step by step, then check.")
@hosts_options
@click.option("-u", "--user", help="SSH user for a new cluster (or instead of the cluster's).")
@click.option("--ssh-key", "identity_file", help="SSH private key for a new cluster.")
@click.option("--cx7-subnet", "subnets", multiple=True, metavar="CIDR", help="Subnet per CX7 interface (see cx7).")
@click.option("--accept-host-key", "accept_host_keys", multiple=True, metavar="SHA256:...", help="Accept this key.")
@click.option("-n", "--dry-run", is_flag=True, help="Show every step's plan and stop.")
@click.option("-y", "--yes", is_flag=True, help="Apply every step without asking (unattended).")
@json_option
@pass_app
def wizard(app: AppContext, /, **kw: Any) -> None:
    """Prepare a new or named cluster: create it (with -H and a new --cluster NAME), then the SSH mesh, the docker
    group, the cache owner, earlyoom and CX7, each shown before it runs, then `setup check` and a summary."""
    from sparkrun.cli import setup_flow  # deferred: the core loads only when a command runs

    setup_flow.wizard(app, kw)
