"""Launch planning is pure and deterministic: same inputs, same plan; the dry-run shows what will run."""

from __future__ import annotations

import json

import pytest

from sparkrun.api import RunPlan
from sparkrun.cli.plan_view import plan_json, plan_markdown, plan_text
from sparkrun.clusters import Cluster, ContainerSettings, HostSelection
from sparkrun.errors import InputError
from sparkrun.hosts import Host
from sparkrun.launch.container import docker_run_argv
from sparkrun.launch.facts import HostFacts
from sparkrun.launch.planner import JobPlan, plan_job
from sparkrun.launch.request import LaunchRequest
from sparkrun.launch.steps import launch_plan, probe_plan
from sparkrun.runtimes.base import ServeRequest
from sparkrun.runtimes.vllm import VllmDistributedRuntime

IMAGE = "sparkrun-test/engine:latest"


def selection(*addresses: str, container: ContainerSettings | None = None) -> HostSelection:
    cluster = Cluster(name="lab", hosts=addresses, container=container or ContainerSettings())
    return HostSelection(hosts=tuple(Host(a) for a in addresses), source="--hosts", cluster=cluster)


def request(tp: int = 1, **settings: object) -> ServeRequest:
    merged = {"port": 8000, "host": "0.0.0.0", "tensor_parallel": tp, "served_model_name": "qwen", **settings}
    return ServeRequest(model="Qwen/Qwen3-1.7B", image=IMAGE, settings=merged)


def launch_request(req: ServeRequest, sel: HostSelection, **kw: object) -> LaunchRequest:
    tp = int(req.settings.get("tensor_parallel", 1))
    return LaunchRequest(
        recipe_name="qwen3-1.7b-vllm",
        recipe_source="recipes/qwen3-1.7b-vllm.yaml",
        runtime=VllmDistributedRuntime(),
        request=req,
        selection=sel,
        nodes=tp,
        tensor_parallel=tp,
        **kw,  # type: ignore[arg-type]
    )


def preview(job: JobPlan) -> RunPlan:
    return RunPlan(job, probe_plan(job).then(launch_plan(job, None, wait_ready=True)))


def test_a_solo_plan_is_one_container_with_the_engine_as_main_process() -> None:
    plan = plan_job(launch_request(request(), selection("10.0.0.11")))
    assert len(plan.ranks) == 1
    rank = plan.ranks[0]
    assert rank.role == "solo"
    assert rank.container.name == f"sparkrun_{plan.job}_solo"
    argv = docker_run_argv(rank.container)
    assert argv[:5] == ["docker", "run", "-d", "--name", rank.container.name]
    assert IMAGE in argv
    assert argv[argv.index(IMAGE) - 2 : argv.index(IMAGE)] == ["--entrypoint", rank.spec.argv[0]]
    assert argv[argv.index(IMAGE) + 1 :] == list(rank.spec.argv[1:])
    assert "--gpus" in argv and "--network" in argv
    assert f"sparkrun.job={plan.job}" in argv
    assert "~/.cache/huggingface:/cache/huggingface" in argv
    assert plan.endpoint() == "http://10.0.0.11:8000/v1"


def test_the_same_inputs_give_the_same_job_id_and_plan() -> None:
    a = plan_job(launch_request(request(), selection("10.0.0.11")))
    b = plan_job(launch_request(request(), selection("10.0.0.11")))
    assert a.job == b.job
    assert json.dumps(plan_json(preview(a))) == json.dumps(plan_json(preview(b)))
    c = plan_job(launch_request(request(port=9000), selection("10.0.0.11")))
    assert c.job != a.job


def test_tensor_parallel_two_uses_two_hosts_head_first_and_trims_extras() -> None:
    plan = plan_job(launch_request(request(tp=2), selection("10.0.0.11", "10.0.0.12", "10.0.0.13")))
    assert [r.host.address for r in plan.ranks] == ["10.0.0.11", "10.0.0.12"]
    assert [r.role for r in plan.ranks] == ["head", "worker"]
    assert [[r.rank for r in g] for g in plan.groups()] == [[0], [1]]
    assert any("not using 10.0.0.13" in n for n in plan.notes)
    for rank in plan.ranks:  # every container knows its own address explicitly
        assert rank.spec.env["NODE_IP"] == rank.address


def test_too_few_hosts_is_an_error_naming_the_need() -> None:
    with pytest.raises(InputError) as err:
        plan_job(launch_request(request(tp=2), selection("10.0.0.11")))
    assert "needs 2 hosts" in str(err.value)


def test_secrets_never_appear_in_the_plan_output() -> None:
    lr = launch_request(request(), selection("10.0.0.11"), secrets={"HF_TOKEN": "hf_supersecret"})
    plan = plan_job(lr)
    run_plan = preview(plan)
    text = plan_text(run_plan) + json.dumps(plan_json(run_plan)) + plan_markdown(run_plan)
    assert "hf_supersecret" not in text
    assert "--env-file /dev/stdin" in text and "HF_TOKEN" in text
    assert plan.ranks[0].secrets == {"HF_TOKEN": "hf_supersecret"}
    launch = next(s for s in run_plan.plan.steps if s.script == "launch")
    assert launch.stdin == b"HF_TOKEN=hf_supersecret\n"  # the secret travels on the script's stdin only
    assert "hf_supersecret" not in launch.render().text


def test_cluster_container_settings_reach_docker() -> None:
    sel = selection("10.0.0.11", container=ContainerSettings(gpus=None, ulimits={}, shm_size="1g", env={"A": "1"}))
    argv = docker_run_argv(plan_job(launch_request(request(), sel)).ranks[0].container)
    assert "--gpus" not in argv and "--ulimit" not in argv
    assert argv[argv.index("--shm-size") + 1] == "1g"
    assert "A=1" in argv


def test_a_host_given_by_name_gets_its_probed_address() -> None:
    lr = launch_request(request(tp=2), selection("spark-a", "spark-b"))
    dry = plan_job(lr)
    assert dry.topology.head_address == "spark-a"
    facts = {"spark-a": HostFacts("spark-a", address="10.1.0.1"), "spark-b": HostFacts("spark-b", address="10.1.0.2")}
    real = plan_job(lr, facts)
    assert real.topology.addresses == ("10.1.0.1", "10.1.0.2")
    assert real.job == dry.job  # the job id does not depend on probed facts
