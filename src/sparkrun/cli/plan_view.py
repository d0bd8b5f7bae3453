"""How a run plan is shown: `run --dry-run` text, `--json` (a documented, stable format) and `--markdown` (for CI
previews of recipe changes). All three render the same `RunPlan` objects the real run applies."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparkrun.api import RunPlan
    from sparkrun.launch.hooks import Hook
    from sparkrun.launch.planner import RankPlan


def _rank_json(r: RankPlan) -> dict[str, Any]:
    spec = r.container
    return {
        "rank": r.rank,
        "role": r.role,
        "host": r.host.address,
        "address": r.address,
        "container": spec.name,
        "start_group": r.spec.start_group,
        "wait_port": r.spec.wait_port,
        "api_port": r.spec.api_port,
        "serve_argv": list(r.spec.argv),
        "argv": list(spec.argv),
        "docker_argv": spec.to_json()["docker_argv"],
        "env": dict(spec.env),  # plain env only: secret values never appear (see secret_env)
        "secret_env": list(spec.secret_env),
        "labels": dict(spec.labels),
        "pre_hooks": [_hook(h) for h in r.pre_hooks],
    }


def plan_json(rp: RunPlan) -> dict[str, Any]:
    job, t = rp.job, rp.job.topology
    return {
        "job": job.job,
        "recipe": {"name": job.recipe_name, "source": job.recipe_source},
        "runtime": job.runtime,
        "model": job.model,
        "served_model_name": job.served_model_name,
        "image": job.image,
        "image_fallback": job.image_fallback,
        "hosts": {"source": job.source, "selected": list(t.hosts)},
        "topology": {
            "tensor_parallel": t.tensor_parallel,
            "pipeline_parallel": t.pipeline_parallel,
            "nodes": t.num_nodes,
            "head": t.hosts[0],
            "head_address": t.head_address,
        },
        "endpoint": job.endpoint(),
        "ranks": [_rank_json(r) for r in job.ranks],
        "copies": [{"label": c.label, "dest": c.dest, "bytes": c.size} for c in job.copies],
        "post_exec": [_hook(h) for h in job.post_exec],
        "post_commands": [_hook(h) for h in job.post_commands],
        "stop_after_post": job.stop_after_post,
        "readiness": {
            "port_timeout_s": job.readiness.port_timeout,
            "health_timeout_s": job.readiness.health_timeout,
            "inference": job.readiness.inference,
            "inference_timeout_s": job.readiness.inference_timeout,
        },
        "network_detection": t.num_nodes > 1,
        "hf_cache": job.hf_cache,
        "steps": rp.plan.to_json()["steps"],
        "undo": rp.plan.to_json()["undo"],
        "notes": [*job.notes, *rp.plan.notes],
        "warnings": list(rp.warnings),
        "distribution": rp.distribution,  # what the job needs: model (file list, sizes), image, memory estimate
    }


def _hook(hook: Hook) -> dict[str, Any]:
    return {"label": hook.label, "command": hook.command, "timeout_s": hook.timeout}


def _hook_lines(title: str, hooks: tuple[Hook, ...], indent: str = "  ") -> list[str]:
    if not hooks:
        return []
    lines = [f"{indent}{title}:"]
    for h in hooks:
        first, *rest = h.command.strip().splitlines() or [""]
        more = f"  (+{len(rest)} lines)" if rest else ""
        lines.append(f"{indent}  {h.label}: {first}{more}  [timeout {h.timeout}s]")
    return lines


def _rank_lines(rp: RunPlan, r: RankPlan) -> list[str]:
    job = rp.job
    then = f", then wait for port {r.spec.wait_port}" if r.spec.wait_port else ""
    lines = [f"[rank {r.rank}] {r.host.address}  {r.role}  (start group {r.spec.start_group}{then})"]
    lines.append("  " + shlex.join(r.container.to_json()["docker_argv"]))
    if r.container.secret_env:
        lines.append(f"  private env on stdin (--env-file /dev/stdin): {', '.join(r.container.secret_env)}")
    lines.append("  serve: " + shlex.join(r.spec.argv))
    if job.topology.num_nodes > 1:
        lines.append("  + NCCL/UCX/GLOO interface env detected by the probe on each host (ib_detect.sh)")
    if r.gated:
        copies = ", ".join(f"{c.label} -> {c.dest} ({c.size} bytes)" for c in job.copies)
        lines.append("  held by gate.sh until its hooks ran" + (f"; copies {copies}" if copies else ""))
    lines.extend(_hook_lines("before the engine starts (docker exec)", r.pre_hooks))
    return [*lines, ""]


def plan_text(rp: RunPlan) -> str:
    job, t = rp.job, rp.job.topology
    lines = [
        f"Job {job.job}: {job.recipe_name} ({job.recipe_source})",
        f"Runtime:  {job.runtime}    image {job.image}",
        f"Model:    {job.model}    served as {job.served_model_name}",
        f"Hosts:    {', '.join(t.hosts)}  (from {job.source})",
        f"Topology: tensor_parallel={t.tensor_parallel} pipeline_parallel={t.pipeline_parallel} "
        f"-> {t.num_nodes} node(s); head {t.hosts[0]} reachable at {t.head_address}",
        "",
    ]
    for r in job.ranks:
        lines.extend(_rank_lines(rp, r))
    lines.append("Steps:")
    for index, (phase, steps) in enumerate(rp.plan.phases(), start=1):
        for step in steps:
            lines.append(f"  {index}. [{phase}] {step.summary}" + (f"  (no-op: {step.noop})" if step.noop else ""))
    lines.append("  on failure or Ctrl-C: " + "; ".join(sorted({s.summary.split(" on ")[0] for s in rp.plan.undo})))
    lines.append(f"Endpoint:  {job.endpoint()}")
    lines.extend(_hook_lines(f"post_exec (in {job.api_rank.container.name}, once ready)", job.post_exec, ""))
    lines.extend(_hook_lines("post_commands (on this machine, once ready)", job.post_commands, ""))
    if job.stop_after_post:
        lines.append("stop_after_post: the job is stopped after its post hooks")
    lines.append(f"Hugging Face cache: {job.hf_cache} on each host (~ = the SSH user's home there)")
    lines.extend(f"Note: {n}" for n in (*job.notes, *rp.plan.notes))
    return "\n".join(lines)


def plan_markdown(rp: RunPlan) -> str:
    """A compact Markdown rendering (a PR comment in a recipe registry's CI)."""
    job, t = rp.job, rp.job.topology
    lines = [
        f"### `{job.recipe_name}`: job `{job.job}`",
        "",
        "| | |",
        "|---|---|",
        f"| runtime | `{job.runtime}` |",
        f"| image | `{job.image}`" + (f" (falls back to `{job.image_fallback}`)" if job.image_fallback else "") + " |",
        f"| model | `{job.model}` served as `{job.served_model_name}` |",
        f"| topology | tp={t.tensor_parallel} pp={t.pipeline_parallel}, {t.num_nodes} node(s) |",
        f"| endpoint | `{job.endpoint()}` |",
        "",
    ]
    for r in job.ranks:
        lines += [f"**rank {r.rank}** ({r.role} on `{r.host.address}`)", "", "```sh"]
        lines += [shlex.join(r.spec.argv), "```", ""]
    lines += ["<details><summary>docker run lines and steps</summary>", "", "```sh"]
    lines += [shlex.join(r.container.to_json()["docker_argv"]) for r in job.ranks]
    lines += ["```", ""]
    lines += [f"1. [{s.phase}] {s.summary}" for s in rp.plan.steps]
    lines += ["", "</details>"]
    lines += [f"> note: {n}" for n in (*job.notes, *rp.plan.notes)]
    lines += [f"> warning: {w}" for w in rp.warnings]
    return "\n".join(lines)


def plan_dump(rp: RunPlan) -> str:
    return json.dumps(plan_json(rp), indent=2)
