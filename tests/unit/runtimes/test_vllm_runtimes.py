"""vllm-distributed and vllm-ray: rank specs compared as data (snapshot values written out here)."""

from __future__ import annotations

import pytest
from runtime_cases import rank_vars, request, topology

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, ServeRequest
from sparkrun.runtimes.container_scripts import container_script
from sparkrun.runtimes.vllm import VllmDistributedRuntime, VllmRayRuntime

RAY_HEAD = container_script("ray_head.sh")
RECIPE_ENV = {"VLLM_MARLIN_USE_ATOMIC_ADD": "1"}
SERVE = (
    "vllm",
    "serve",
    "Qwen/Qwen3-1.7B",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--served-model-name",
    "qwen3",
)
TUNING = ("--gpu-memory-utilization", "0.8", "--max-model-len", "8192", "--enable-prefix-caching")


def _req() -> ServeRequest:
    return request({"served_model_name": "qwen3", "enable_prefix_caching": True}, env=RECIPE_ENV)


def _env(rank: int, nodes: int, **extra: str) -> dict[str, str]:
    return {**extra, **RECIPE_ENV, **rank_vars(rank, nodes, vllm=True)}


# --- vllm-distributed ---------------------------------------------------------------------------------------------


def test_distributed_solo_builds_the_serve_command_from_settings() -> None:
    specs = VllmDistributedRuntime().build(_req(), topology(1))
    assert specs == (
        RankSpec(
            rank=0,
            role="solo",
            argv=(*SERVE, "--tensor-parallel-size", "1", *TUNING),
            env=_env(0, 1),
            start_group=0,
            wait_port=None,
            api_port=8000,
        ),
    )


def test_distributed_two_nodes_head_waits_on_master_port_workers_headless() -> None:
    specs = VllmDistributedRuntime().build(_req(), topology(2))
    common = (*SERVE, "--tensor-parallel-size", "2", *TUNING, "--nnodes", "2")
    master = ("--master-addr", "10.0.0.11", "--master-port", "25000")
    assert specs == (
        RankSpec(
            rank=0,
            role="head",
            argv=(*common, *master, "--node-rank", "0"),
            env=_env(0, 2),
            start_group=0,
            wait_port=25000,
            api_port=8000,
        ),
        RankSpec(
            rank=1,
            role="worker",
            argv=(*common, *master, "--node-rank", "1", "--headless"),
            env=_env(1, 2),
            start_group=1,
            wait_port=None,
            api_port=None,
        ),
    )


def test_distributed_four_nodes_from_a_template_adds_only_the_node_flags() -> None:
    command = ("vllm", "serve", "Qwen/Qwen3-1.7B", "--port", "8000", "-tp", "4", "--max-num-seqs", "8")
    specs = VllmDistributedRuntime().build(request(command=command), topology(4))
    master = ("--nnodes", "4", "--master-addr", "10.0.0.11", "--master-port", "25000")
    assert specs == (
        RankSpec(0, "head", (*command, *master, "--node-rank", "0"), rank_vars(0, 4, vllm=True), 0, 25000, 8000),
        *(
            RankSpec(
                rank,
                "worker",
                (*command, *master, "--node-rank", str(rank), "--headless"),
                rank_vars(rank, 4, vllm=True),
                1,
            )
            for rank in (1, 2, 3)
        ),
    )


def test_distributed_template_master_port_is_kept_and_waited_on() -> None:
    command = ("vllm", "serve", "m", "--master-port", "29500", "--nnodes", "2", "--tensor-parallel-size", "2")
    head, worker = VllmDistributedRuntime().build(request(command=command), topology(2))
    assert head.argv == (*command, "--master-addr", "10.0.0.11", "--node-rank", "0")
    assert worker.argv == (*command, "--master-addr", "10.0.0.11", "--node-rank", "1", "--headless")
    assert head.wait_port == 29500


def test_distributed_init_port_setting_moves_the_master_port() -> None:
    head, worker = VllmDistributedRuntime().build(request({"init_port": 29600}), topology(2))
    assert head.wait_port == 29600
    assert worker.argv[worker.argv.index("--master-port") :][:2] == ("--master-port", "29600")


def test_distributed_template_without_tp_gets_the_topology_tp() -> None:
    command = ("vllm", "serve", "m", "--port", "8000")
    head, _ = VllmDistributedRuntime().build(request(command=command), topology(2))
    assert head.argv[: len(command) + 2] == (*command, "--tensor-parallel-size", "2")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("vllm", "serve", "m", "--node-rank", "0"), "sets per rank"),
        (("vllm", "serve", "m", "--headless"), "sets per rank"),
        (("vllm", "serve", "m", "--nnodes", "4"), "--nnodes 4"),
        (("vllm", "serve", "m", "-tp", "4"), "--tensor-parallel-size 4"),
        (("vllm", "serve", "m", "--distributed-executor-backend", "ray"), "needs a Ray cluster"),
        (("export", "A=1;", "vllm", "serve", "m"), "shell script"),
        (("bash", "-c", "vllm serve m"), "cannot add the multi-node flags"),
    ],
)
def test_distributed_rejects_commands_it_cannot_launch_on_two_nodes(command: tuple[str, ...], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        VllmDistributedRuntime().build(request(command=command), topology(2))


def test_template_port_is_the_api_port() -> None:
    (solo,) = VllmDistributedRuntime().build(request(command=("vllm", "serve", "m", "--port=8123")), topology(1))
    assert solo.api_port == 8123


# --- vllm-ray -----------------------------------------------------------------------------------------------------

RAY_ENV = {"RAY_memory_monitor_refresh_ms": "0"}
RAY_WORKER = ("ray", "start", "--address", "10.0.0.11:46379", "--node-ip-address")


def test_ray_solo_is_the_plain_serve_command() -> None:
    specs = VllmRayRuntime().build(_req(), topology(1))
    assert specs == (
        RankSpec(0, "solo", (*SERVE, "--tensor-parallel-size", "1", *TUNING), _env(0, 1, **RAY_ENV), 0, None, 8000),
    )


def test_ray_two_nodes_head_wrapper_then_workers() -> None:
    specs = VllmRayRuntime().build(_req(), topology(2))
    serve = (*SERVE, "--tensor-parallel-size", "2", *TUNING, "--distributed-executor-backend", "ray")
    head_argv = ("bash", "-c", RAY_HEAD, "sparkrun-ray-head", "46379", "10.0.0.11", "2", "600", "2", "", "--")
    worker_argv = ("ray", "start", "--address", "10.0.0.11:46379", "--node-ip-address", "10.0.0.12")
    assert specs == (
        RankSpec(0, "head", (*head_argv, *serve), _env(0, 2, **RAY_ENV), 0, 46379, 8000),
        RankSpec(1, "worker", (*worker_argv, "--block", "--disable-usage-stats"), _env(1, 2, **RAY_ENV), 1, None, None),
    )


def test_ray_four_nodes_from_a_template_with_the_ray_backend() -> None:
    command = ("vllm", "serve", "m", "--port", "8001", "-tp", "4", "--distributed-executor-backend", "ray")
    specs = VllmRayRuntime().build(request(command=command), topology(4))
    head_args = ("sparkrun-ray-head", "46379", "10.0.0.11", "4", "600", "2", "", "--")
    assert specs[0] == RankSpec(
        0,
        "head",
        ("bash", "-c", RAY_HEAD, *head_args, *command),
        {**RAY_ENV, **rank_vars(0, 4, vllm=True)},
        0,
        46379,
        8001,
    )
    assert specs[1:] == tuple(
        RankSpec(
            rank,
            "worker",
            (*RAY_WORKER, f"10.0.0.1{rank + 1}", "--block", "--disable-usage-stats"),
            {**RAY_ENV, **rank_vars(rank, 4, vllm=True)},
            1,
        )
        for rank in (1, 2, 3)
    )


def test_ray_launch_knobs_from_runtime_config_and_settings() -> None:
    req = request(
        {"ray_port": 6379, "ray_wait_timeout": 120, "dashboard_port": 8300}, runtime_config={"dashboard": True}
    )
    head, worker = VllmRayRuntime().build(req, topology(2))
    assert head.argv[3:10] == ("sparkrun-ray-head", "6379", "10.0.0.11", "2", "120", "2", "8300")
    assert head.wait_port == 6379
    assert worker.argv[3] == "10.0.0.11:6379"


def test_ray_rejects_another_executor_backend() -> None:
    command = ("vllm", "serve", "m", "--distributed-executor-backend", "mp")
    with pytest.raises(RecipeError, match="sets --distributed-executor-backend mp"):
        VllmRayRuntime().build(request(command=command), topology(2))


def test_ray_recipe_env_cannot_override_the_rank_address() -> None:
    req = request(env={"NODE_IP": "1.2.3.4", "VLLM_HOST_IP": "1.2.3.4", "RAY_memory_monitor_refresh_ms": "250"})
    head, worker = VllmRayRuntime().build(req, topology(2))
    assert (head.env["NODE_IP"], head.env["VLLM_HOST_IP"]) == ("10.0.0.11", "10.0.0.11")
    assert (worker.env["NODE_IP"], worker.env["VLLM_HOST_IP"]) == ("10.0.0.12", "10.0.0.12")
    assert worker.env["RAY_memory_monitor_refresh_ms"] == "250"  # the recipe may tune Ray's own knobs


# --- flag map -----------------------------------------------------------------------------------------------------


def test_generated_command_formats_switches_json_and_lists() -> None:
    settings = {
        "enforce_eager": False,
        "trust_remote_code": True,
        "speculative_config": {"method": "mtp", "num_speculative_tokens": 2},
        "served_model_name": ["a", "b"],
        "kv_cache_dtype": None,
        "unknown_key": "ignored",
    }
    (solo,) = VllmDistributedRuntime().build(request(settings), topology(1))
    assert solo.argv == (
        "vllm",
        "serve",
        "Qwen/Qwen3-1.7B",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--served-model-name",
        "a",
        "b",
        "--tensor-parallel-size",
        "1",
        "--gpu-memory-utilization",
        "0.8",
        "--max-model-len",
        "8192",
        "--trust-remote-code",
        "--no-enforce-eager",
        "--speculative-config",
        '{"method":"mtp","num_speculative_tokens":2}',
    )


def test_a_switch_with_a_non_boolean_value_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="enforce_eager"):
        VllmDistributedRuntime().build(request({"enforce_eager": "sometimes"}), topology(1))


def test_mapped_keys_cover_the_flag_map_and_launch_knobs() -> None:
    assert {"max_model_len", "gpu_memory_utilization", "tool_call_parser", "init_port"} <= (
        VllmDistributedRuntime().mapped_keys()
    )
    assert {"ray_port", "dashboard", "dashboard_port"} <= VllmRayRuntime().mapped_keys()
    assert "cpuset_cpus" not in VllmRayRuntime().mapped_keys()


def test_defaults_are_the_lowest_layer() -> None:
    assert VllmDistributedRuntime().defaults() == {"port": 8000, "host": "0.0.0.0", "gpu_memory_utilization": 0.8}
    assert VllmRayRuntime.default_image == "ghcr.io/spark-arena/dgx-vllm-eugr-nightly-tf5:latest"


def test_a_shell_command_from_the_recipe_layer_runs_on_two_nodes_with_flags_reaching_the_engine() -> None:
    wrapped = ("bash", "-c", 'export A=1\nexec "$@"', "sparkrun-serve", "vllm", "serve", "m")
    head, worker = VllmDistributedRuntime().build(request(command=wrapped), topology(2))
    assert head.argv[:7] == wrapped
    assert "--node-rank" in head.argv[7:] and "--headless" in worker.argv[7:]
