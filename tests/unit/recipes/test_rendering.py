"""Rendering: placeholders filled once, literal JSON braces survive, unknown names are errors, argv via shlex."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recipe_fakes import FakeRuntimes, recipe_from, write

from sparkrun.errors import RecipeError
from sparkrun.recipes.command_argv import command_argv, needs_shell, shell_script
from sparkrun.recipes.render import placeholders, render_hook, render_template
from sparkrun.recipes.request import render_command, render_request
from sparkrun.recipes.value_chain import build_settings


def _argv(text: str, extra: str = "") -> tuple[str, ...]:
    recipe = recipe_from(f"model: org/m\nruntime: vllm\ndefaults:\n  port: 8000\n{extra}command: |\n{text}")
    argv = render_command(recipe, build_settings(recipe, FakeRuntimes().get("vllm-distributed"), {}, []))
    assert argv is not None
    return argv


def test_literal_json_braces_survive() -> None:
    argv = _argv(
        "  vllm serve {model} --compilation-config '{\"level\": 3}' \\\n"
        '    --speculative-config \'{"method":"mtp","num_speculative_tokens":3}\' --port {port}\n'
    )
    assert argv == (
        "vllm",
        "serve",
        "org/m",
        "--compilation-config",
        '{"level": 3}',
        "--speculative-config",
        '{"method":"mtp","num_speculative_tokens":3}',
        "--port",
        "8000",
    )


def test_json_value_substituted_inside_quotes_is_one_argument() -> None:
    extra = '  spec: \'{"method": "dflash", "model": "z/d", "n": 15}\'\n'
    argv = _argv("  vllm serve {model} --speculative-config '{spec}'\n", extra)
    assert argv[-1] == '{"method": "dflash", "model": "z/d", "n": 15}'


def test_placeholders_inside_json_are_filled() -> None:
    argv = _argv("  vllm serve {model} --kv '{\"port\": {port}}'\n")
    assert argv[-1] == '{"port": 8000}'


def test_nested_references_resolve() -> None:
    extra = "  base_url: 'http://localhost:{port}/v1'\n  probe: '{base_url}/models'\n"
    assert _argv("  check {probe}\n", extra) == ("check", "http://localhost:8000/v1/models")


def test_reference_cycles_are_errors() -> None:
    with pytest.raises(RecipeError, match="cycle"):
        _argv("  run {a}\n", "  a: '{b}'\n  b: '{a}'\n")


def test_unresolved_placeholder_names_file_line_and_key(tmp_path: Path) -> None:
    text = "model: org/m\nruntime: vllm\ncommand: |\n  vllm serve {model} --x {nope}\n"
    path = write(tmp_path / "r.yaml", text)
    recipe = recipe_from(text, path=path)
    with pytest.raises(RecipeError) as caught:
        render_command(recipe, build_settings(recipe, FakeRuntimes().get("vllm-distributed"), {}, []))
    assert caught.value.message.startswith(f"{path}:3: command: placeholder {{nope}} names nothing")
    assert "-o nope=VALUE" in (caught.value.hint or "")


def test_shell_parameters_are_left_to_the_shell() -> None:
    rendered = render_template('export P="a:${PATH:-${HOME}}" {x} ${NODE_IP} $X', {"x": 1})
    assert rendered.text == 'export P="a:${PATH:-${HOME}}" 1 ${NODE_IP} $X' and rendered.missing == ()
    assert placeholders("${A} {b} ${c:-{d}}") == ["b"]


@pytest.mark.parametrize(
    ("value", "text"), [(True, "true"), (False, "false"), ({"a": [1, 2]}, '{"a":[1,2]}'), (0.5, "0.5"), (7, "7")]
)
def test_values_are_formatted_for_command_lines(value: Any, text: str) -> None:
    assert render_template("{v}", {"v": value}).text == text


def test_backslash_continuations_including_trailing_spaces() -> None:
    assert command_argv("vllm serve m \\\n  --a 1 \\   \n  --b 2\n") == ("vllm", "serve", "m", "--a", "1", "--b", "2")


def test_unbalanced_quotes_are_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="cannot split"):
        _argv("  vllm serve {model} --x 'open\n")


@pytest.mark.parametrize(
    ("text", "shell"),
    [
        ("vllm serve m --port 8000", False),
        ("vllm serve m --allowed-media-domains '*' --x '$literal'", False),
        ('vllm serve m --x \'{"a": "b;c"}\'', False),
        ("export A=1; vllm serve m", True),
        ("A=1 vllm serve m", True),
        ('vllm serve m --host "$HOST"', True),
        ("vllm serve m | tee log", True),
        ("vllm serve ~/models/x", True),
        ("cd /w && vllm serve m", True),
    ],
)
def test_shell_syntax_is_detected(text: str, shell: bool) -> None:
    assert needs_shell(text) is shell


def test_script_with_plain_last_command_keeps_the_engine_argv_visible() -> None:
    argv = command_argv('export PATH="/x:${PATH:-}";\nexport B=1;\nexec /usr/bin/vllm serve m \\\n  --port 8000\n')
    assert argv[:2] == ("bash", "-c")
    assert argv[2] == 'export PATH="/x:${PATH:-}";\nexport B=1\nexec "$@"'
    assert argv[3:] == ("sparkrun-serve", "/usr/bin/vllm", "serve", "m", "--port", "8000")
    assert shell_script((*argv, "--nnodes", "2")) == (
        'export PATH="/x:${PATH:-}";\nexport B=1\nexec /usr/bin/vllm serve m --port 8000 --nnodes 2'
    )


def test_other_scripts_forward_appended_arguments_to_the_end() -> None:
    argv = command_argv("vllm serve $MODEL --port 8000;\n")
    assert argv == ("bash", "-c", 'vllm serve $MODEL --port 8000 "$@"', "sparkrun-serve")


def test_hooks_get_launch_values_and_reject_unknown_names() -> None:
    settings = {"port": 8000, "served_model_name": "x"}
    launch = {"head_ip": "10.0.0.1", "port": 9000, "base_url": "http://10.0.0.1:9000/v1"}
    hook = 'curl -fsS http://{head_ip}:{port}/v1/models -d \'{"model":"{served_model_name}"}\''
    assert render_hook(hook, settings, launch) == ('curl -fsS http://10.0.0.1:9000/v1/models -d \'{"model":"x"}\'')
    with pytest.raises(RecipeError, match=r"\{cluster\} names nothing"):
        render_hook("echo {cluster}", settings, launch)


def test_request_image_precedence_and_env_tokens() -> None:
    recipe = recipe_from(
        "model: org/m\nruntime: vllm\ncontainer: img/recipe\ndefaults: {x: 7}\n"
        "env: {A: 'v{config.x}', B: '{launch.node_rank}', C: '${HOME}'}\n"
    )
    runtime = FakeRuntimes().get("vllm-distributed")
    settings = build_settings(recipe, runtime, {}, [])
    request = render_request(recipe, runtime, settings, image=None, extra_args=["--x"], env={"D": "1"})
    assert request.image == "img/recipe" and request.command is None and request.extra_args == ("--x",)
    assert dict(request.env) == {"A": "v7", "B": "{launch.node_rank}", "C": "${HOME}", "D": "1"}
    assert render_request(recipe, runtime, settings, image="img/cli", extra_args=(), env={}).image == "img/cli"
    bare = recipe_from("model: org/m\nruntime: vllm\n")
    assert render_request(bare, runtime, settings, image=None, extra_args=(), env={}).image == "example/fake:1"
