"""The `model-cache` operations on a set of hosts: list, inspect (one model against its manifest), prune, delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.clusters import HostSelection
from sparkrun.core.events import Emit
from sparkrun.core.plan import Plan, Step
from sparkrun.distribution.cache import (
    HostCache,
    Revision,
    delete_plan,
    folder_of,
    kept_in_use,
    list_plan,
    parse_list,
    repo_of,
)
from sparkrun.distribution.cache import prune_selection as select_lru
from sparkrun.distribution.facts import Context, HostHoldings, parse_holdings
from sparkrun.distribution.spec import PARTIAL_SUFFIX, SyncSpec, hub_offline_env
from sparkrun.launch.planner import DEFAULT_HF_CACHE
from sparkrun.models.check import check_script_params
from sparkrun.models.manifest import ModelManifest, model_request, resolve_manifest
from sparkrun.transport.base import Transport


@dataclass
class CacheChange:
    """What prune/delete removed (or would remove, `dry_run`), per host."""

    dry_run: bool
    deleted: list[dict[str, Any]] = field(default_factory=list)  # {host, repo, commit, bytes}
    refused: list[dict[str, str]] = field(default_factory=list)  # {host, repo, commit, why}
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def freed(self) -> int:
        return sum(int(d["bytes"]) for d in self.deleted)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "freed": self.freed,
            "deleted": self.deleted,
            "refused": self.refused,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Inspection:
    manifest: ModelManifest
    hosts: tuple[HostHoldings, ...]

    def to_json(self) -> dict[str, Any]:
        hosts = []
        for held in self.hosts:
            check = held.check.files if held.check else ()
            files = [{"path": f.path, "state": str(f.state), "bytes": f.found_size} for f in check]
            hosts.append({"host": held.host, "complete": held.model_complete, "error": held.error, "files": files})
        return {"manifest": self.manifest.to_json(), "hosts": hosts}


class CacheOps:
    def __init__(self, selection: HostSelection, transport: Transport, emit: Emit) -> None:
        self.hosts = selection.hosts
        self.hf_cache = selection.cluster.hf_cache or DEFAULT_HF_CACHE
        self.context = Context(SyncSpec(self.hosts, self.hf_cache), transport, emit)

    @property
    def hub_dir(self) -> str:
        return self.context.spec.hub_dir

    @property
    def state_dir(self) -> str:
        return self.context.spec.state_dir

    def scan(self) -> list[HostCache]:
        found = self.context.run(list_plan(self.hosts, self.hub_dir, self.state_dir))
        return [parse_list(step.host.address, result) for step, result in found]

    def inspect(self, model: str, *, revision: str | None, runtime: str, verify: bool) -> Inspection:
        request = model_request(model, runtime, revision=revision)
        manifest = resolve_manifest(request, offline=hub_offline_env())
        values = {
            **check_script_params(manifest, self.hub_dir, verify=verify, fix_links=False),
            "VERIFIED_DIR": "" if verify else self.state_dir + "/verified",
            "PARTIAL_SUFFIX": PARTIAL_SUFFIX,
        }
        summary = "check {h}: " + f"{manifest.repo_id}@{manifest.commit[:12]}"
        steps = tuple(Step(h, "model_check", values, summary.format(h=h.address), "model-cache") for h in self.hosts)
        found = self.context.run(Plan(steps))
        return Inspection(manifest, tuple(parse_holdings(s.host.address, r, manifest) for s, r in found))

    def prune(self, *, max_bytes: int | None, min_free: int | None, dry_run: bool) -> CacheChange:
        """Orphans everywhere, then least recently used revisions not in use, until the targets are met."""
        caches = self.scan()
        targets: dict[str, list[Revision | str]] = {}
        for cache in caches:
            chosen = select_lru(cache, max_bytes=max_bytes, min_free=min_free)
            kept = kept_in_use(cache, chosen, max_bytes, min_free)  # reported as refused: the target is not met
            targets[cache.host] = [*_orphans(cache), *chosen, *kept]
        return self._apply(caches, targets, dry_run)

    def delete(self, model: str, *, revision: str | None, dry_run: bool) -> CacheChange:
        """Every revision of a repo (or the one `revision` names: a commit, its prefix, or a ref), on every host."""
        caches = self.scan()
        folder = folder_of(model)
        targets: dict[str, list[Revision | str]] = {}
        for cache in caches:
            revs: list[Revision | str] = [r for r in cache.revisions if r.folder == folder and _matches(r, revision)]
            targets[cache.host] = revs + [o for o in _orphans(cache) if o.startswith(folder + "/") and not revision]
        return self._apply(caches, targets, dry_run)

    def _apply(
        self, caches: Sequence[HostCache], targets: dict[str, list[Revision | str]], dry_run: bool
    ) -> CacheChange:
        change = CacheChange(dry_run)
        items: dict[str, list[str]] = {}
        for cache in caches:
            if cache.error:
                change.errors[cache.host] = cache.error
            items[cache.host] = []
            for target in targets.get(cache.host, []):
                if isinstance(target, Revision) and target.in_use_by:
                    why = f"in use by job {', '.join(target.in_use_by)}"
                    change.refused.append(
                        {"host": cache.host, "repo": target.repo, "commit": target.commit, "why": why}
                    )
                else:
                    items[cache.host].append(target if isinstance(target, str) else f"{target.folder}/{target.commit}")
                    if dry_run:
                        change.deleted.append(_would_free(cache, target))
        if not dry_run:
            self._delete(items, change)
        return change

    def _delete(self, items: dict[str, list[str]], change: CacheChange) -> None:
        for step, result in self.context.run(delete_plan(items, self.hosts, self.hub_dir, self.state_dir)):
            host = step.host.address
            if not result.ok:
                change.errors[host] = result.failure()[1]
            for folder, commit, freed in (e.split(" ")[:3] for e in result.output.all("deleted")):
                change.deleted.append({"host": host, "repo": repo_of(folder), "commit": commit, "bytes": int(freed)})
            for folder, commit, why in (e.split(" ", 2) for e in result.output.all("refused")):
                change.refused.append({"host": host, "repo": repo_of(folder), "commit": commit, "why": why})


def _orphans(cache: HostCache) -> list[str]:
    return [f"{folder}/orphans" for folder in cache.orphans]


def _would_free(cache: HostCache, target: Revision | str) -> dict[str, Any]:
    if isinstance(target, Revision):
        return {"host": cache.host, "repo": target.repo, "commit": target.commit, "bytes": target.bytes}
    folder = target.split("/", 1)[0]
    return {"host": cache.host, "repo": repo_of(folder), "commit": "orphans", "bytes": cache.orphans.get(folder, 0)}


def _matches(rev: Revision, revision: str | None) -> bool:
    return revision is None or rev.commit.startswith(revision) or revision in rev.refs
