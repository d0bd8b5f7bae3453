"""Every built-in runtime recognises its own engine in a recipe's `command:` by one rule (`engine.CommandShape`):
as given, behind the recipe layer's shell wrapper (a prelude, or a whole script), and it warns about anything else."""

from __future__ import annotations

import pytest
from runtime_cases import request

from sparkrun.recipes.command_argv import command_argv
from sparkrun.runtimes.atlas import AtlasRuntime
from sparkrun.runtimes.engine import EngineRuntime, engine_words
from sparkrun.runtimes.eugr import EugrVllmRuntime
from sparkrun.runtimes.llama_cpp import LlamaCppRuntime
from sparkrun.runtimes.modular_max import ModularMaxRuntime
from sparkrun.runtimes.sglang import SglangRuntime
from sparkrun.runtimes.tokenary import TokenaryRuntime
from sparkrun.runtimes.trtllm import TrtllmRuntime
from sparkrun.runtimes.vllm import VllmDistributedRuntime, VllmRayRuntime

# Each runtime with a `command:` of its own engine (as a recipe writes it) and one of a different engine.
CASES: list[tuple[EngineRuntime, str]] = [
    (VllmDistributedRuntime(), "vllm serve m --port 8000"),
    (VllmRayRuntime(), "python3 -m vllm.entrypoints.openai.api_server --model m"),
    (EugrVllmRuntime(), "vllm serve m"),
    (SglangRuntime(), "python3 -m sglang.launch_server --model-path m"),
    (LlamaCppRuntime(), "llama-server -hf org/m-GGUF:Q8_0"),
    (TrtllmRuntime(), "trtllm-serve m --backend pytorch"),
    (ModularMaxRuntime(), "/opt/venv/bin/max serve --model m"),
    (AtlasRuntime(), "spark serve m --port 8888"),
    (TokenaryRuntime(), "tokenary --model m"),
]
OTHER_ENGINE = "rpc-server --host 0.0.0.0"
IDS = [runtime.name for runtime, _ in CASES]


@pytest.mark.parametrize(("runtime", "own"), CASES, ids=IDS)
def test_its_own_engine_command_passes_as_given_and_behind_a_shell_prelude(runtime: EngineRuntime, own: str) -> None:
    assert runtime.validate(request(command=command_argv(own))) == []
    wrapped = command_argv(f"export HF_HUB_OFFLINE=1; {own}")
    assert wrapped[:2] == ("bash", "-c")  # the recipe layer's wrapper, the engine argv after it
    assert runtime.validate(request(command=wrapped)) == []


@pytest.mark.parametrize(("runtime", "own"), CASES, ids=IDS)
def test_a_whole_shell_script_passes_when_it_runs_the_engine(runtime: EngineRuntime, own: str) -> None:
    script = command_argv(f"cd /work && {own}")
    assert script[4:] == ()  # a script the recipe layer could not split: no engine argv after the wrapper
    assert runtime.validate(request(command=script)) == []


@pytest.mark.parametrize(("runtime", "own"), CASES, ids=IDS)
def test_another_engine_command_warns_naming_the_runtime_and_its_first_word(runtime: EngineRuntime, own: str) -> None:
    for command in (command_argv(OTHER_ENGINE), command_argv(f"export A=1; {OTHER_ENGINE}")):
        (warning,) = runtime.validate(request(command=command))
        assert warning.startswith(f"{runtime.name}: command: does not look like `")
        assert f"(starts with {command[0]!r})" in warning


@pytest.mark.parametrize(("runtime", "own"), CASES, ids=IDS)
def test_an_empty_command_is_a_warning_not_a_crash(runtime: EngineRuntime, own: str) -> None:
    assert runtime.validate(request(command=())) != []


def test_engine_words_look_past_the_shell_wrapper() -> None:
    assert engine_words(("vllm", "serve", "m"), 2) == ("vllm", "serve")
    assert engine_words(command_argv("export A=1; exec vllm serve m"), 2) == ("vllm", "serve")
    assert engine_words(command_argv("cd /x && vllm serve m"), 2) == ("cd", "/x", "&&", "vllm", "serve", "m", '"$@"')
