"""trtllm, modular-max, atlas and tokenary: the commands the older sparkrun ran, the multi-node shapes, refusals."""

from __future__ import annotations

import pytest
from runtime_cases import container_names, request, topology

from sparkrun.errors import RecipeError
from sparkrun.runtimes.atlas import AtlasRuntime
from sparkrun.runtimes.base import Mount, ServeRequest
from sparkrun.runtimes.modular_max import ModularMaxRuntime
from sparkrun.runtimes.tokenary import TokenaryRuntime
from sparkrun.runtimes.trtllm import AGENT_DIR, SSH_DIR, TrtllmRuntime

TRT = TrtllmRuntime()
MAX = ModularMaxRuntime()
ATLAS = AtlasRuntime()
TOKENARY = TokenaryRuntime()


def defaults_of(runtime: TrtllmRuntime | ModularMaxRuntime | AtlasRuntime | TokenaryRuntime) -> dict[str, object]:
    return dict(runtime.defaults())


def bare(settings: dict[str, object], command: tuple[str, ...] | None = None) -> ServeRequest:
    """A request with exactly these settings (runtime_cases.request adds common ones)."""
    return ServeRequest(model="Qwen/Qwen3-1.7B", image="img", settings=settings, command=command)


# -- trtllm ------------------------------------------------------------------------------------------------------
def test_trtllm_solo_is_one_trtllm_serve() -> None:
    req = request({**defaults_of(TRT), "max_model_len": 8192, "max_batch_size": 8, "trust_remote_code": True})
    (solo,) = TRT.build(req, topology(1))
    assert solo.argv == (
        *("trtllm-serve", "Qwen/Qwen3-1.7B", "--backend", "pytorch", "--host", "0.0.0.0", "--port", "8000"),
        *("--tp_size", "1", "--max_batch_size", "8", "--max_seq_len", "8192", "--trust_remote_code"),
    )
    assert (solo.role, solo.api_port, solo.start_group, solo.mounts) == ("solo", 8000, 0, ())


def test_trtllm_two_hosts_run_mpirun_on_the_head_and_holders_on_the_workers() -> None:
    topo = topology(2, ssh_user="ubuntu", ssh_port=2222)
    head, worker = TRT.build(bare({"port": 8000, "host": "0.0.0.0"}), topo)
    assert head.argv[:2] == ("bash", "-c") and head.argv[3] == "sparkrun-mpi-head"
    args = head.argv[4:]
    split = args.index("--")
    assert args[:split] == (AGENT_DIR, SSH_DIR, "ubuntu", "2222", "10.0.0.12", container_names(2)[1])
    assert args[split + 1 :] == (
        *("mpirun", "--allow-run-as-root", "--mca", "plm_rsh_agent", f"{AGENT_DIR}/rsh-agent"),
        *("--mca", "rmaps_ppr_n_pernode", "1", "-H", "10.0.0.11,10.0.0.12", "-np", "2"),
        *("trtllm-llmapi-launch", "trtllm-serve", "Qwen/Qwen3-1.7B", "--host", "0.0.0.0", "--port", "8000"),
        *("--tp_size", "2"),
    )
    assert head.mounts == (Mount("~/.ssh", SSH_DIR, read_only=True),)
    assert (head.start_group, head.api_port, head.wait_port) == (1, 8000, None)
    assert worker.argv[3:] == ("sparkrun-mpi-worker", "10.0.0.11", "1")
    assert (worker.start_group, worker.api_port, worker.mounts) == (0, None, ())
    for spec in (head, worker):
        assert spec.env["OMPI_ALLOW_RUN_AS_ROOT"] == spec.env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"


def test_trtllm_four_hosts_name_every_worker_container_and_leave_ssh_defaults_empty() -> None:
    head, *workers = TRT.build(request(), topology(4))
    args = head.argv[4 : head.argv.index("--")]
    assert args[2:4] == ("", "")
    assert args[4:] == tuple(x for r in (1, 2, 3) for x in (topology(4).addresses[r], container_names(4)[r]))
    assert [w.argv[-1] for w in workers] == ["1", "2", "3"]


def test_trtllm_template_keeps_its_flags_and_gets_the_parallel_size() -> None:
    command = ("trtllm-serve", "Qwen/Qwen3-1.7B", "--port", "9000", "--backend", "pytorch")
    head, _ = TRT.build(request(command=command), topology(2))
    assert head.argv[-9:] == ("trtllm-llmapi-launch", *command, "--tp_size", "2")
    assert head.api_port == 9000
    with pytest.raises(RecipeError, match="--tp_size 4, but this launch needs 2"):
        TRT.build(request(command=(*command, "--tp_size", "4")), topology(2))
    with pytest.raises(RecipeError, match="starts with mpirun"):
        TRT.build(request(command=("mpirun", "-np", "2", "trtllm-serve", "m")), topology(2))


def test_trtllm_multi_node_needs_the_container_names() -> None:
    topo = topology(2)
    bare = type(topo)(hosts=topo.hosts, addresses=topo.addresses, tensor_parallel=2)
    with pytest.raises(RecipeError, match="container names"):
        TRT.build(request(), bare)


def test_trtllm_validate_flags_a_foreign_command() -> None:
    assert TRT.validate(request(command=("vllm", "serve", "m")))
    assert TRT.validate(request(command=("trtllm-serve", "m"))) == []


# -- modular-max -------------------------------------------------------------------------------------------------
def test_max_solo_runs_max_serve_on_gpu_0() -> None:
    req = bare({**defaults_of(MAX), "max_model_len": 8192, "max_num_seqs": 16, "served_model_name": "qwen"})
    (solo,) = MAX.build(req, topology(1))
    assert solo.argv == (
        *("max", "serve", "--model", "Qwen/Qwen3-1.7B", "--host", "0.0.0.0", "--port", "8000"),
        *("--max-length", "8192", "--max-batch-size", "16", "--served-model-name", "qwen", "--devices", "gpu:0"),
    )
    assert solo.api_port == 8000


@pytest.mark.parametrize(("nodes", "tp"), [(2, 2), (1, 2), (4, 4)])
def test_max_refuses_more_than_one_gpu(nodes: int, tp: int) -> None:
    topo = topology(nodes, tp=tp)
    with pytest.raises(RecipeError, match="one host with one GPU") as caught:
        MAX.build(request(), topo)
    assert caught.value.hint and "--tp 1" in caught.value.hint


def test_max_template_keeps_its_devices() -> None:
    (solo,) = MAX.build(request(command=("max", "serve", "--model", "m", "--devices", "gpu")), topology(1))
    assert solo.argv.count("--devices") == 1


# -- atlas -------------------------------------------------------------------------------------------------------
def test_atlas_solo_matches_the_older_tools_command() -> None:
    settings = {"port": 8888, "host": "0.0.0.0", "gpu_memory_utilization": 0.88, "max_model_len": 8192}
    (solo,) = ATLAS.build(request({**settings, "scheduling_policy": "slai"}), topology(1))
    assert solo.argv[:3] == ("spark", "serve", "Qwen/Qwen3-1.7B")
    assert solo.argv[3:] == (
        *("--host", "0.0.0.0", "--port", "8888", "--gpu-memory-utilization", "0.88", "--max-seq-len", "8192"),
        *("--scheduling-policy", "slai"),
    )
    assert solo.api_port == 8888 and "NCCL_NET_GDR_C2C" not in solo.env


def test_atlas_two_hosts_are_nccl_ranks_with_the_head_first() -> None:
    head, worker = ATLAS.build(bare({"port": 8888, "host": "0.0.0.0"}), topology(2))
    rank_flags = ("--tp-size", "2", "--world-size", "2", "--master-addr", "10.0.0.11", "--master-port", "25000")
    assert head.argv == (
        "spark",
        "serve",
        "Qwen/Qwen3-1.7B",
        "--host",
        "0.0.0.0",
        "--port",
        "8888",
        *rank_flags,
        "--rank",
        "0",
    )
    assert worker.argv == (
        *("spark", "serve", "Qwen/Qwen3-1.7B", "--host", "0.0.0.0", "--port", "0"),
        *rank_flags,
        *("--rank", "1"),
    )
    assert (head.start_group, head.wait_port, head.api_port) == (0, 25000, 8888)
    assert (worker.start_group, worker.wait_port, worker.api_port) == (1, None, None)
    assert head.env["NCCL_NET_GDR_C2C"] == worker.env["NCCL_NET_GDR_C2C"] == "0"


def test_atlas_expert_parallel_size() -> None:
    head, _ = ATLAS.build(request({"expert_parallel": 2}), topology(2))
    assert head.argv[head.argv.index("--ep-size") + 1] == "2"
    with pytest.raises(RecipeError, match="tp_size x ep_size"):
        ATLAS.build(request({"expert_parallel": 3}), topology(2))
    with pytest.raises(RecipeError, match="whole number"):
        ATLAS.build(request({"expert_parallel": "two"}), topology(2))


def test_atlas_template_port_stays_on_every_rank() -> None:
    command = ("spark", "serve", "m", "--port", "9999")
    head, worker = ATLAS.build(request(command=command, settings={"init_port": 26000}), topology(2))
    assert head.api_port == 9999
    assert worker.argv.count("--port") == 1 and worker.argv[4] == "9999"
    assert head.wait_port == 26000 and "26000" in worker.argv
    with pytest.raises(RecipeError, match="sets per rank"):
        ATLAS.build(request(command=(*command, "--rank", "0")), topology(2))


def test_atlas_validate_knows_the_binary() -> None:
    assert ATLAS.validate(request(command=("spark", "serve", "m"))) == []
    assert ATLAS.validate(request(command=("vllm", "serve", "m")))


# -- tokenary ----------------------------------------------------------------------------------------------------
def test_tokenary_solo_serves_http() -> None:
    settings = {"port": 8000, "host": "0.0.0.0", "max_model_len": 8192, "kv_cache_dtype": "fp8"}
    (solo,) = TOKENARY.build(request({**settings, "gpu_memory_utilization": 0.7}), topology(1))
    assert solo.argv == (
        *("tokenary", "--model", "Qwen/Qwen3-1.7B", "--host", "0.0.0.0", "--max-model-len", "8192"),
        *("--kvcache-dtype", "fp8", "--gpu-memory-utilization", "0.7", "--server", "--port", "8000", "--tp-size", "1"),
    )
    assert solo.api_port == 8000


def test_tokenary_two_hosts_rank_0_serves_and_rank_1_works() -> None:
    head, worker = TOKENARY.build(request({"port": 8000}), topology(2))
    common = ("--world-size", "2", "--master-addr", "10.0.0.11", "--master-port", "25000", "--tp-size", "2")
    assert head.argv[-13:] == ("--rank", "0", *common, "--server", "--port", "8000")
    assert worker.argv[-10:] == ("--rank", "1", *common)
    assert "--server" not in worker.argv and "--port" not in worker.argv
    assert (head.wait_port, head.api_port, worker.start_group) == (25000, 8000, 1)


def test_tokenary_template_port_goes_to_rank_0_only() -> None:
    command = ("tokenary", "--model", "m", "--port=9100")
    head, worker = TOKENARY.build(request(command=command), topology(2))
    assert head.api_port == 9100 and "--port=9100" in head.argv
    assert not [a for a in worker.argv if a.startswith("--port")]
    with pytest.raises(RecipeError, match="--server"):
        TOKENARY.build(request(command=(*command, "--server")), topology(2))


def test_tokenary_refuses_single_gpu_modes_on_several_hosts() -> None:
    with pytest.raises(RecipeError, match="encode_only on one GPU only"):
        TOKENARY.build(request({"encode_only": True}), topology(2))
    (solo,) = TOKENARY.build(request({"encode_only": True}), topology(1))
    assert "--encode-only" in solo.argv


def test_tokenary_prefix_cache_off_is_its_disable_flag() -> None:
    (solo,) = TOKENARY.build(request({"enable_prefix_caching": False}), topology(1))
    assert "--disable-prefix-cache" in solo.argv


@pytest.mark.parametrize("runtime", [TRT, MAX, ATLAS, TOKENARY], ids=lambda r: r.name)
def test_default_images_are_the_older_tools(runtime: object) -> None:
    expected = {
        "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:latest",
        "modular-max": "modular/max-nvidia-full:latest",
        "atlas": "azeezish/atlas-gb10:latest",
        "tokenary": "scitrera/tokenary:latest",
    }
    assert expected[runtime.name] == runtime.default_image  # type: ignore[attr-defined]
