"""Which hosts a job command acts on when the user names no hosts: the local records of launched jobs.

`sparkrun run RECIPE --cluster C` prints `sparkrun logs JOB` and `sparkrun stop JOB`; those commands, and a bare
`sparkrun status`, must work exactly as printed. A job record keeps its hosts, its cluster's name and its SSH
settings (no secrets), so a job id, id prefix or recipe name known locally finds its hosts without `-H`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sparkrun.clusters import Cluster, HostSelection, list_cluster_names, load_cluster
from sparkrun.errors import InputError
from sparkrun.hosts import Host, SshSettings, is_local_address
from sparkrun.jobs.records import JobStore


def ssh_to_record(s: SshSettings) -> dict[str, Any]:
    return {
        "user": s.user,
        "port": s.port,
        "identity_file": s.identity_file,
        "options": [list(o) for o in s.options],
        "connect_timeout": s.connect_timeout,
    }


def _ssh_from_record(data: Any) -> SshSettings:
    if not isinstance(data, Mapping):
        return SshSettings()
    options = tuple((str(k), str(v)) for k, v in (data.get("options") or []) if k)
    port, timeout = data.get("port"), data.get("connect_timeout")
    return SshSettings(
        user=str(data["user"]) if data.get("user") else None,
        port=int(port) if isinstance(port, int) else None,
        identity_file=str(data["identity_file"]) if data.get("identity_file") else None,
        options=options,
        connect_timeout=float(timeout) if isinstance(timeout, int | float) else None,
    )


def _record_ssh(record: Mapping[str, Any]) -> SshSettings:
    """The job's cluster's current SSH settings when that cluster still exists, else those recorded at launch."""
    name = record.get("cluster")
    if name and name in list_cluster_names():
        return load_cluster(str(name)).ssh
    return _ssh_from_record(record.get("ssh"))


def _hosts(addresses: list[str], ssh: SshSettings) -> tuple[Host, ...]:
    return tuple(Host(address=a, ssh=ssh, local=is_local_address(a)) for a in addresses)


def find_record(store: JobStore, ref: str) -> dict[str, Any] | None:
    """The record of job `ref` (id, id prefix or recipe name); ambiguity is an error listing the candidates."""
    records = store.all()
    exact = [r for r in records if r.get("job") == ref]
    if exact:
        return exact[0]
    matches = [r for r in records if str(r.get("job", "")).startswith(ref) or r.get("recipe") == ref]
    if len(matches) > 1:
        listed = ", ".join(f"{r.get('job')} ({r.get('recipe')})" for r in matches)
        raise InputError(f"{ref!r} matches several recorded jobs: {listed}", hint="give the job id")
    return matches[0] if matches else None


def selection_for_job(store: JobStore, ref: str) -> HostSelection | None:
    record = find_record(store, ref)
    if record is None or not record.get("hosts"):
        return None
    addresses = [str(h) for h in record["hosts"]]
    cluster = Cluster(name=str(record.get("cluster") or ""), hosts=tuple(addresses), ssh=_record_ssh(record))
    source = f"the record of job {record.get('job')}"
    return HostSelection(hosts=_hosts(addresses, cluster.ssh), source=source, cluster=cluster)


def selection_for_records(store: JobStore, default: HostSelection | None) -> HostSelection | None:
    """Every recorded job's hosts, plus the default cluster's (for a bare `sparkrun status`)."""
    hosts: dict[str, Host] = {h.address: h for h in (default.hosts if default else ())}
    for record in store.all():
        ssh = _record_ssh(record)
        for address in record.get("hosts") or []:
            hosts.setdefault(str(address), _hosts([str(address)], ssh)[0])
    if not hosts:
        return None
    recorded = "the hosts of recorded jobs"
    source = f"{default.source} and {recorded}" if default else recorded
    base = default.cluster if default else Cluster(name="", hosts=())
    return HostSelection(hosts=tuple(hosts.values()), source=source, cluster=replace(base, hosts=tuple(hosts)))
