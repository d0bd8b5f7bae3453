"""How a launch plan is shown: `run --dry-run` text and `run --dry-run --json` (a documented, stable format)."""

from __future__ import annotations

import shlex
from typing import Any

from sparkrun.orchestration.hooks import Hook
from sparkrun.orchestration.plan import LaunchPlan


def plan_json(plan: LaunchPlan) -> dict[str, Any]:
    return {
        "job": plan.job,
        "recipe": {"name": plan.recipe_name, "source": plan.recipe_source},
        "runtime": plan.runtime,
        "model": plan.model,
        "served_model_name": plan.served_model_name,
        "image": plan.image,
        "hosts": {"source": plan.source, "selected": list(plan.topology.hosts)},
        "topology": {
            "tensor_parallel": plan.topology.tensor_parallel,
            "pipeline_parallel": plan.topology.pipeline_parallel,
            "nodes": plan.topology.num_nodes,
            "head": plan.topology.hosts[0],
            "head_address": plan.topology.head_address,
        },
        "endpoint": plan.endpoint(),
        "ranks": [
            {
                "rank": r.rank,
                "role": r.role,
                "host": r.host.address,
                "address": r.address,
                "container": r.container,
                "start_group": r.spec.start_group,
                "wait_port": r.spec.wait_port,
                "api_port": r.spec.api_port,
                "serve_argv": list(r.spec.argv),
                "docker_argv": r.docker_run_argv(plan.hf_cache),
                "env": dict(r.spec.env),
                "secret_env": list(r.secret_keys),
                "pre_hooks": [_hook(h) for h in r.pre_hooks],
            }
            for r in plan.ranks
        ],
        "copies": [{"label": c.label, "dest": c.dest, "bytes": c.size} for c in plan.copies],
        "post_exec": [_hook(h) for h in plan.post_exec],
        "post_commands": [_hook(h) for h in plan.post_commands],
        "stop_after_post": plan.stop_after_post,
        "readiness": {
            "port_timeout_s": plan.readiness.port_timeout,
            "health_timeout_s": plan.readiness.health_timeout,
            "inference": plan.readiness.inference,
            "inference_timeout_s": plan.readiness.inference_timeout,
        },
        "network_detection": plan.detect_network,
        "notes": list(plan.notes),
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


def plan_text(plan: LaunchPlan) -> str:
    t = plan.topology
    lines = [
        f"Job {plan.job}: {plan.recipe_name} ({plan.recipe_source})",
        f"Runtime:  {plan.runtime}    image {plan.image}",
        f"Model:    {plan.model}    served as {plan.served_model_name}",
        f"Hosts:    {', '.join(t.hosts)}  (from {plan.source})",
        f"Topology: tensor_parallel={t.tensor_parallel} pipeline_parallel={t.pipeline_parallel} "
        f"-> {t.num_nodes} node(s); head {t.hosts[0]} reachable at {t.head_address}",
        "",
    ]
    for r in plan.ranks:
        then = f", then wait for port {r.spec.wait_port}" if r.spec.wait_port else ""
        lines.append(f"[rank {r.rank}] {r.host.address}  {r.role}  (start group {r.spec.start_group}{then})")
        lines.append("  " + shlex.join(r.docker_run_argv(plan.hf_cache)))
        lines.append("  serve: " + shlex.join(r.spec.argv))
        if plan.detect_network and t.num_nodes > 1:
            lines.append("  + NCCL/UCX/GLOO interface env detected on the host at launch (ib_detect.sh)")
        if r.gated:
            copies = ", ".join(f"{c.label} -> {c.dest} ({c.size} bytes)" for c in plan.copies)
            lines.append("  held by gate.sh until its hooks ran" + (f"; copies {copies}" if copies else ""))
        lines.extend(_hook_lines("before the engine starts (docker exec)", r.pre_hooks))
        lines.append("")
    api = plan.api_rank
    lines.append(
        f"Readiness: {api.host.address}:{api.spec.api_port or plan.port} port open"
        f" (<= {plan.readiness.port_timeout}s)"
        f" -> GET /v1/models (<= {plan.readiness.health_timeout}s)"
        + (f" -> streamed chat completion (<= {plan.readiness.inference_timeout}s)" if plan.readiness.inference else "")
    )
    lines.append(f"Endpoint:  {plan.endpoint()}")
    lines.extend(_hook_lines(f"post_exec (in {api.container}, once ready)", plan.post_exec, indent=""))
    lines.extend(_hook_lines("post_commands (on this machine, once ready)", plan.post_commands, indent=""))
    if plan.stop_after_post:
        lines.append("stop_after_post: the job is stopped after its post hooks")
    lines.append(f"Hugging Face cache: {plan.hf_cache} on each host (~ = the SSH user's home there)")
    lines.extend(f"Note: {n}" for n in plan.notes)
    return "\n".join(lines)
