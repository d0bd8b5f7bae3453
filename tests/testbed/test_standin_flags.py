"""The stand-in engines' command lines: every listed flag parses, each engine's dialect, --version, and leniency
(unknown well-formed long flags accepted with a warning, malformed input rejected like the real parser)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standin.flags import FLAGS_DIR, Dialect, FlagSet, UsageError

from testbed.standin_harness import Runner, free_port

LISTS = [
    "vllm-serve",
    "sglang-serve",
    "sglang-serve.older",
    "llama-server",
    "rpc-server",
    "ray-start",
    "trtllm-serve",
    "max-serve",
    "atlas",
    "tokenary",
    "mpirun",
]


def run_standin(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "standin", *argv], env=env, capture_output=True, text=True, timeout=30, check=False
    )


# -- the flag lists and the parser -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LISTS)
def test_every_listed_flag_parses(name: str) -> None:
    fs = FlagSet.load(name, dialect=Dialect(dash_values=True))
    for line in (FLAGS_DIR / f"{name}.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        *spellings, kind = line.split()
        for s in spellings:
            argv = [s, "x"] if kind == "value" else [s]
            if fs.flags[fs.aliases[s]].nargs == "2":
                argv.append("y")
            p = fs.parse(argv)
            assert p.given(spellings[0]), (name, s)


def test_vllm_dialect() -> None:
    from standin.vllm import FLAGS

    p = FLAGS.parse(
        [
            *["Qwen/Qwen3-0.6B", "-tp", "2", "--pipeline_parallel_size=1", "--max-model", "4096", "-cc.mode", "3"],
            *["--served-model-name", "a", "b", "--enforce-eager", "--no-enforce-eager"],
        ]
    )
    assert p.positionals == ["Qwen/Qwen3-0.6B"]
    assert p.get("--tensor-parallel-size") == "2"
    assert p.get("--pipeline-parallel-size") == "1"
    assert p.get("--max-model-len") == "4096"  # unique prefix, like argparse
    assert p.get("--compilation-config") == "mode=3"
    assert p.get_all("--served-model-name") == ["a", "b"]
    assert p.switches["--enforce-eager"] is False  # the negation came last
    for bad, message in [
        (["m1", "m2"], "unrecognized arguments: m2"),
        (["--port"], "expected one argument"),
        (["--port", "--host"], "expected one argument"),
        (["--enable"], "ambiguous option"),
        (["--headless=1"], "ignored explicit argument"),
        (["-Z"], "unrecognized arguments: -Z"),
        (["-tp2"], "unrecognized arguments: -tp2"),  # argparse attaches values to one-letter options only
    ]:
        with pytest.raises(UsageError, match=message):
            FLAGS.parse(bad)


def test_vllm_accepts_what_its_parser_accepts() -> None:
    from standin.vllm import FLAGS

    p = FLAGS.parse(
        [
            *["m", "-O3", "--limit-mm-per-prompt.image", "0", "--compilation-config.level=3", "-qfp8"],
            *["--max_num_seqs=4", "--enable-prefix", "--hf-overrides.rope_scaling.factor", "2"],
        ]
    )
    assert p.get("--optimization-level") == "3"
    assert p.get("--limit-mm-per-prompt") == "image=0"
    assert p.get("--compilation-config") == "level=3"
    assert p.get("--quantization") == "fp8"
    assert p.get("--max-num-seqs") == "4"
    assert p.flag("--enable-prefix-caching")
    assert p.get("--hf-overrides") == "rope_scaling.factor=2"
    assert FLAGS.parse(["m", "-O", "2"]).get("--optimization-level") == "2"
    assert FLAGS.parse(["m", "-O=1"]).get("--optimization-level") == "1"


@pytest.mark.parametrize(
    ("module", "argv", "unknown"),
    [
        (
            "vllm",
            ["m", "--from-a-newer-vllm", "7", "--new-switch", "--port", "1"],
            ["--from-a-newer-vllm 7", "--new-switch"],
        ),
        ("sglang", ["--model-path", "m", "--newer-knob=x"], ["--newer-knob=x"]),
        ("llama", ["-m", "x.gguf", "--newer-llama-flag", "3"], ["--newer-llama-flag 3"]),
        ("trtllm", ["m", "--newer_trtllm_option", "1"], ["--newer_trtllm_option 1"]),
        ("maxserve", ["--model", "m", "--newer-max-option=1"], ["--newer-max-option=1"]),
        ("atlas", ["m", "--newer-atlas-flag"], ["--newer-atlas-flag"]),
        ("tokenary", ["--model", "m", "--newer-tokenary-flag", "x"], ["--newer-tokenary-flag x"]),
    ],
)
def test_an_unknown_long_flag_from_another_version_is_accepted(
    module: str, argv: list[str], unknown: list[str]
) -> None:
    import importlib

    mod = importlib.import_module(f"standin.{module}")
    flags = getattr(mod, "LLAMA_FLAGS", None) or mod.FLAGS
    assert flags.parse(argv).unknown == unknown


def test_a_flag_an_earlier_sglang_release_had_is_accepted_by_its_exact_spelling_with_its_arity() -> None:
    """sglang 0.5.23 dropped --cuda-graph-max-bs / --cuda-graph-bs (nargs '+') for per-phase flags, so in 0.5.23 they
    are ambiguous prefixes; the releases the corpus's images ship (<= 0.5.18) accept them exactly."""
    from standin.sglang import FLAGS

    p = FLAGS.parse(["--model-path", "m", "--cuda-graph-max-bs", "16", "--cuda-graph-bs", "1", "2", "4", "--tp", "2"])
    assert p.get("--cuda-graph-max-bs") == "16"
    assert p.get_all("--cuda-graph-bs") == ["1", "2", "4"]
    assert p.get("--tp-size") == "2" and p.positionals == []
    assert p.unknown == ["--cuda-graph-max-bs 16", "--cuda-graph-bs 1 2 4"]  # the engine logs a warning for each
    assert FLAGS.parse(["--enable-nan-detection"]).unknown == ["--enable-nan-detection"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cuda-graph-max-b", "3"], "ambiguous option: --cuda-graph-max-b could match"),  # no prefixes of older flags
        (["--cuda-graph-max-bs"], "expected one argument"),
        (["--enable-nan-detection=1"], "ignored explicit argument"),
        (["--served-model-name", "a", "b"], "unrecognized arguments: b"),  # one name in every release
    ],
)
def test_sglang_still_refuses_what_every_release_refuses(argv: list[str], message: str) -> None:
    from standin.sglang import FLAGS

    with pytest.raises(UsageError, match=message):
        FLAGS.parse(["--model-path", "m", *argv])


def test_click_and_clap_engines_match_no_prefixes() -> None:
    from standin.atlas import FLAGS as ATLAS
    from standin.maxserve import FLAGS as MAX
    from standin.trtllm import FLAGS as TRT

    # A prefix is not the flag: it is an unknown (well-formed) flag, taking the next argument as its value.
    assert TRT.parse(["m", "--max_batch", "8"]).get("--max_batch_size") is None
    assert MAX.parse(["--model", "m", "--max-len", "9"]).get("--max-length") is None
    assert ATLAS.parse(["m", "--max-seq", "9"]).get("--max-seq-len") is None
    assert (
        TRT.parse(["m", "--tp_size=2", "--kv_cache_free_gpu_memory_fraction", "0.5"]).get("--tensor_parallel_size")
        == "2"
    )
    with pytest.raises(UsageError):
        TRT.parse(["m", "--trust_remote_code=1"])  # a switch takes no value


def test_atlas_optional_value_flags() -> None:
    from standin.atlas import FLAGS

    assert FLAGS.parse(["m", "--enable-prefix-caching"]).get_all("--enable-prefix-caching") == []
    assert FLAGS.parse(["m", "--enable-prefix-caching", "false"]).get("--enable-prefix-caching") == "false"
    p = FLAGS.parse(["--enable-prefix-caching", "m"])  # like clap: a bare optional-value flag takes the MODEL
    assert p.get("--enable-prefix-caching") == "m" and p.positionals == []


def test_mpirun_stops_at_the_program() -> None:
    from standin.mpi import FLAGS

    p = FLAGS.parse(["-np", "2", "--mca", "plm_rsh_agent", "/a", "-x", "A=1", "-x", "B", "prog", "--np", "9", "-x"])
    assert p.get("--np") == "2" and p.get_all("--mca") == ["plm_rsh_agent", "/a"] and p.get_all("-x") == ["A=1", "B"]
    assert p.positionals == ["prog", "--np", "9", "-x"]


def test_llama_and_ray_dialects() -> None:
    from standin.llama import LLAMA_FLAGS
    from standin.ray import START_FLAGS

    p = LLAMA_FLAGS.parse(["-hf", "Qwen/Qwen3-1.7B-GGUF:Q8_0", "-ngl", "99", "--no-mmap", "--rpc", "a:1,b:2"])
    assert p.get("--hf-repo") == "Qwen/Qwen3-1.7B-GGUF:Q8_0" and p.get("--gpu-layers") == "99"
    assert LLAMA_FLAGS.parse(["--control-vector-layer-range", "1", "5"]).get_all("--control-vector-layer-range") == [
        "1",
        "5",
    ]
    with pytest.raises(UsageError):
        LLAMA_FLAGS.parse(["--port=8080"])  # llama.cpp has no --flag=value
    assert LLAMA_FLAGS.parse(["--ctx", "9"]).get("--ctx-size") is None  # nor prefixes (an unknown flag instead)
    p = START_FLAGS.parse(["--head", "--port", "6379", "--include-dashboard=True", "--block"])
    assert p.flag("--head") and p.flag("--block") and p.get("--include-dashboard") == "True"
    assert not START_FLAGS.parse(["--hea"]).flag("--head")  # click does no prefix matching


VLLM = FlagSet.load("vllm-serve", dialect=Dialect(equals=True, snake_case=True))
VALUE_FLAGS = sorted(f.name for f in VLLM.flags.values() if f.takes_value and f.nargs == "1")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(VALUE_FLAGS), st.from_regex(r"[A-Za-z0-9_./:]{1,12}", fullmatch=True)),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
    st.booleans(),
)
def test_vllm_values_round_trip(pairs: list[tuple[str, str]], equals: bool, snake: bool) -> None:
    argv: list[str] = []
    for flag, value in pairs:
        spelling = "--" + flag[2:].replace("-", "_") if snake else flag
        argv += [f"{spelling}={value}"] if equals else [spelling, value]
    p = VLLM.parse(argv)
    for flag, _ in pairs:
        assert p.get(flag) == [v for f, v in pairs if f == flag][-1]


# -- command lines ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["vllm", "--version"], r"^\d+\.\d+"),
        (["sglang", "--version"], r"^sglang \d"),
        (["llama-server", "--version"], r"^version: "),
        (["rpc-server", "--version"], r"^version: "),
        (["ray", "--version"], r"^ray, version \d"),
        (["trtllm-serve", "--version"], r"^trtllm-serve, version \d"),
        (["mpirun", "--version"], r"^mpirun \(Open MPI\) 4\."),
        (["max", "--version"], r"^max 26\.7\.0"),
        (["spark", "--version"], r"^spark 1\.0\.0"),
        (["tokenary", "--version"], r"^tokenary "),
    ],
)
def test_version(engine_env: dict[str, str], argv: list[str], expect: str) -> None:
    r = run_standin(engine_env, *argv)
    assert r.returncode == 0
    assert re.match(expect, r.stdout), r.stdout


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["vllm", "serve", "m", "--port"], 2, "argument --port: expected one argument"),
        (["vllm", "serve", "m", "-Z"], 2, "unrecognized arguments: -Z"),
        (["sglang", "serve", "--model-path", "m", "--tp-size", "two"], 2, "invalid int value: 'two'"),
        (["sglang.launch_server", "--tp-size", "2"], 2, "required: --model-path"),
        (["llama-server", "-m", "x.gguf", "-Zq"], 1, "invalid argument: -Zq"),
        (["rpc-server", "-Z"], 1, "unknown argument: -Z"),
        (["ray", "start", "--head", "--port"], 2, "--port"),
        (["vllm", "bogus"], 2, "invalid choice"),
        (["trtllm-serve", "--port", "1"], 2, "Missing argument 'MODEL'"),
        (["trtllm-serve", "m", "--backend", "onnx"], 2, "Invalid value for '--backend'"),
        (["max", "serve", "--port", "1"], 2, "Missing option '--model'"),
        (["max", "serve", "--model", "m", "--devices", "tpu"], 2, "Invalid value for '--devices'"),
        (["spark", "serve", "m", "--rank"], 2, "expected one argument"),
        (["spark", "launch"], 2, "unrecognized subcommand 'launch'"),
        (["tokenary", "--port", "1"], 2, "--model <MODEL>"),
        (["mpirun", "-np", "2"], 1, "No executable was specified"),
    ],
)
def test_malformed_command_lines_fail_like_the_real_parser(
    engine_env: dict[str, str], argv: list[str], code: int, message: str
) -> None:
    r = run_standin(engine_env, *argv)
    assert r.returncode == code, r.stdout + r.stderr
    assert message in r.stderr


def test_an_unknown_flag_is_a_warning_line_in_the_log(engine: Runner) -> None:
    port = free_port()
    p = engine("vllm", "serve", "m", "--port", str(port), "--host", "127.0.0.1", "--flag-of-vllm-9", "x")
    p.wait_for("unrecognized argument --flag-of-vllm-9 x: not in vllm")
    p.wait_for("Application startup complete.")
    assert p.term() == 0
