"""`sparkrun model-cache list|inspect|prune|delete`: the Hugging Face caches on the hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sparkrun.cli.context import AppContext, pass_app, target
from sparkrun.cli.options import hosts_options, json_option

if TYPE_CHECKING:
    from sparkrun.distribution.cache_ops import CacheChange


def _size(text: str | None) -> int | None:
    """`500G`, `1.5T`, `800M`, `0` (decimal units, as `df -H`) -> bytes."""
    if text is None:
        return None
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    value = text.strip().upper().removesuffix("B")
    unit = value[-1:] if value[-1:] in units else ""
    try:
        return int(float(value.removesuffix(unit) or "x") * units[unit])
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a size such as 500G, 1.5T or 800M") from None


@click.group("model-cache")
def model_cache() -> None:
    """The Hugging Face caches on the hosts: what they hold, and removing what is not needed."""


@model_cache.command("list")
@hosts_options
@json_option
@pass_app
def list_cmd(app: AppContext, /, as_json: bool, **where: str | None) -> None:
    """Every model revision on each host: size, refs, last used by sparkrun, in use by a running job."""
    from sparkrun.cli.transfer_view import age, human_bytes  # deferred: formatting only

    caches = app.session.model_cache(target(**where)).scan()
    if as_json:
        app.console.json([c.to_json() for c in caches])
        return
    rows = []
    for c in caches:
        if c.error:
            rows.append((c.host, "(unreachable)", "", "", "", "", c.error))
        for r in sorted(c.revisions, key=lambda r: -r.last_used):
            use = ", ".join(r.in_use_by) or ""
            refs = ",".join(r.refs)
            rows.append((c.host, r.repo, r.commit[:12], refs, human_bytes(r.bytes), age(r.last_used), use))
        for orphan in c.to_json()["orphans"]:
            rows.append((c.host, orphan["repo"], "(orphans)", "", human_bytes(orphan["bytes"]), "", "prune removes"))
    app.console.table(["HOST", "MODEL", "REVISION", "REFS", "SIZE", "LAST USED", "IN USE BY"], rows)
    for c in caches:
        if c.disk_free is not None:
            app.console.out(f"{c.host}: {human_bytes(c.used_bytes)} in {c.hub}, {human_bytes(c.disk_free)} free")


@model_cache.command("inspect")
@click.argument("model")
@hosts_options
@click.option("--revision", help="Branch, tag or commit (default: main).")
@click.option("--runtime", default="vllm", show_default=True, help="Which files count (llama-cpp: GGUF).")
@click.option("--verify", is_flag=True, help="Hash every file (sha256 where the Hub gives one).")
@json_option
@pass_app
def inspect_cmd(
    app: AppContext,
    /,
    model: str,
    as_json: bool,
    hosts: str | None,
    hosts_file: str | None,
    cluster: str | None,
    **check: Any,
) -> None:
    """Check MODEL (org/name or org/name:QUANT) on each host against its file list at the pinned commit."""
    report = app.session.model_cache(target(hosts, hosts_file, cluster)).inspect(model, **check)
    if as_json:
        app.console.json(report.to_json())
        return
    m = report.manifest
    app.console.out(f"{m.repo_id} @ {m.commit} ({m.revision}): {len(m.files)} files, {m.total_bytes / 1e9:.2f} GB")
    rows = []
    for held in report.hosts:
        if held.check is None:
            rows.append((held.host, "(unreachable)", held.error or ""))
            continue
        bad = [f"{f.path}: {f.state}" for f in held.check.files if f.state != "present"]
        rows.append((held.host, "complete" if held.model_complete else f"{len(bad)} file(s) not ok", "; ".join(bad)))
    app.console.table(["HOST", "STATE", "DETAIL"], rows)


def _print_change(app: AppContext, change: CacheChange, as_json: bool) -> None:
    from sparkrun.cli.transfer_view import human_bytes  # deferred: formatting only

    if as_json:
        app.console.json(change.to_json())
        return
    verb = "would remove" if change.dry_run else "removed"
    for d in change.deleted:
        app.console.out(f"{d['host']}: {verb} {d['repo']} {d['commit'][:12]} ({human_bytes(int(d['bytes']))})")
    for r in change.refused:
        app.console.out(f"{r['host']}: kept {r['repo']} {r['commit'][:12]}: {r['why']}")
    for host, error in change.errors.items():
        app.console.out(f"{host}: {error}")
    app.console.out(f"{verb} {human_bytes(change.freed)} in total")


@model_cache.command("prune")
@hosts_options
@click.option("--max-size", metavar="SIZE", help="Shrink each host's cache to at most SIZE (e.g. 500G).")
@click.option("--min-free", metavar="SIZE", help="Free space until the disk has SIZE free (e.g. 200G).")
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be removed.")
@json_option
@pass_app
def prune_cmd(
    app: AppContext, /, max_size: str | None, min_free: str | None, dry_run: bool, as_json: bool, **where: str | None
) -> None:
    """Remove least recently used model revisions (never one a running job uses) and unfinished copies."""
    ops = app.session.model_cache(target(**where))
    change = ops.prune(max_bytes=_size(max_size), min_free=_size(min_free), dry_run=dry_run)
    _print_change(app, change, as_json)


@model_cache.command("delete")
@click.argument("model")
@hosts_options
@click.option("--revision", help="Only this revision (a commit, its prefix, or a ref such as main).")
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be removed.")
@json_option
@pass_app
def delete_cmd(
    app: AppContext, /, model: str, revision: str | None, dry_run: bool, as_json: bool, **where: str | None
) -> None:
    """Remove MODEL (every revision, or --revision) from the hosts' caches; a revision in use is kept (exit 6)."""
    from sparkrun.errors import PartialFailure  # deferred: only on this path

    change = app.session.model_cache(target(**where)).delete(model, revision=revision, dry_run=dry_run)
    _print_change(app, change, as_json)
    if change.refused or change.errors:
        raise PartialFailure(f"{len(change.refused) + len(change.errors)} item(s) were not removed (listed above)")
