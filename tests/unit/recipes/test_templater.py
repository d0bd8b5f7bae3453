"""The one templater: `{name}`, `{config.NAME}`, `{launch.NAME}` in commands, hooks and env, with today's semantics."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkrun.errors import RecipeError
from sparkrun.recipes.render import (
    ShellQuotes,
    render_env,
    render_hook,
    render_launch_tokens,
    render_template,
    shell_quote,
)

SETTINGS = {"port": 8000, "served_model_name": "qwen", "base_url": "http://localhost:{port}/v1"}


def test_config_namespace_names_settings_in_commands_and_hooks() -> None:
    assert render_template("--port {config.port} {port}", SETTINGS).text == "--port 8000 8000"
    assert render_hook("curl {config.base_url}/models", SETTINGS, {}) == "curl http://localhost:8000/v1/models"


def test_env_values_expand_config_tokens_only() -> None:
    env = {"A": "v{config.port}", "B": "{launch.node_rank}", "C": "${HOME}", "D": "{port}", "E": '{"k": 1}'}
    assert render_env(env, SETTINGS) == {
        "A": "v8000",
        "B": "{launch.node_rank}",
        "C": "${HOME}",
        "D": "{port}",
        "E": '{"k": 1}',
    }


def test_env_config_values_that_refer_to_other_settings_are_rendered() -> None:
    assert render_env({"URL": "{config.base_url}"}, SETTINGS) == {"URL": "http://localhost:8000/v1"}


def test_launch_tokens_fill_per_rank_values_and_keep_unknown_ones() -> None:
    env = {"RANK": "{launch.node_rank}", "HEAD": "{launch.head_ip}:{launch.port}", "X": "{launch.nope}/{config.port}"}
    values = {"node_rank": 1, "head_ip": "10.0.0.1", "port": 8000, "num_nodes": None}
    assert render_launch_tokens(env, values) == {
        "RANK": "1",
        "HEAD": "10.0.0.1:8000",
        "X": "{launch.nope}/{config.port}",
    }


def test_unknown_launch_tokens_in_a_command_are_missing() -> None:
    assert render_template("vllm serve --x {launch.node_rank}", SETTINGS).missing == ("launch.node_rank",)


def test_unknown_hook_placeholders_are_errors() -> None:
    with pytest.raises(RecipeError, match=r"\{cluster\} names nothing"):
        render_hook("echo {cluster}", SETTINGS, {"head_ip": "10.0.0.1"})


def test_launch_values_win_over_settings_and_are_never_templates() -> None:
    launch = {"port": 9000, "container_name": "sparkrun_{port}"}
    assert render_hook("echo {port} {container_name}", SETTINGS, launch) == "echo 9000 'sparkrun_{port}'"


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ("curl http://{head_ip}:{port}/v1/models", "curl http://10.0.0.1:9000/v1/models"),
        ("echo '{served_model_name}' \"{served_model_name}\"", "echo 'qwen' \"qwen\""),
        ('curl -d \'{{"model": "{served_model_name}"}}\'', 'curl -d \'{"model": "qwen"}\''),
        ("docker exec {container_name} true", "docker exec sparkrun_abc_head true"),
    ],
)
def test_normal_values_render_unchanged_in_every_context(hook: str, expected: str) -> None:
    launch = {"head_ip": "10.0.0.1", "port": 9000, "container_name": "sparkrun_abc_head"}
    assert render_hook(hook, SETTINGS, launch) == expected


HOSTILE = ["$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a; touch /tmp/pwned", "x'y\"z", "line1\nline2", "\\$HOME"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "hook", ["printf %s {v}", "printf %s '{v}'", 'printf %s "{v}"', 'printf %s "$(printf %s {v})"']
)
def test_hostile_values_reach_the_hook_literally(value: str, hook: str) -> None:
    rendered = render_hook(hook, {"v": "x"}, {"v": value})
    done = subprocess.run(["bash", "-c", rendered], capture_output=True, check=True)
    assert done.stdout == value.encode()


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("echo ", "plain"),
        ("echo '", "single"),
        ("echo 'a' \"", "double"),
        ("echo \"it's ", "double"),
        ('echo "a \\" ', "double"),
        ('echo "$(echo ', "sub"),
        ('echo $(echo "x" (a) ', "sub"),
        ("echo $'", "ansi"),
        ("echo `", "backtick"),
        ("echo 'a' \"b\" $(c) ", "plain"),
    ],
)
def test_quoting_context_follows_bash(text: str, context: str) -> None:
    quotes = ShellQuotes()
    quotes.feed(text)
    assert quotes.context == context


# Values bash can carry in a `bash -c` script (no NUL), and that are not themselves templates (setting values may
# refer to other settings: `{port}` inside a value is a placeholder, by design).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
CONTEXT_HOOKS = ("printf %s {v}", "printf %s '{v}'", 'printf %s "{v}"')


@settings(max_examples=120, deadline=None)
@given(value=TEXT)
def test_any_value_is_printed_byte_for_byte_in_all_three_quoting_contexts(value: str) -> None:
    script = "; printf '\\0'; ".join(render_hook(hook, {}, {"v": value}) for hook in CONTEXT_HOOKS)
    done = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"})
    assert done.stdout.split(b"\0") == [value.encode()] * 3


@settings(max_examples=60, deadline=None)
@given(value=TEXT.filter(lambda v: "{" not in v))
def test_setting_values_are_printed_byte_for_byte_too(value: str) -> None:
    hooks = [hook.replace("{v}", "{served_model_name}") for hook in CONTEXT_HOOKS]
    script = "; printf '\\0'; ".join(render_hook(hook, {"served_model_name": value}, {}) for hook in hooks)
    done = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"})
    assert done.stdout.split(b"\0") == [value.encode()] * 3


def test_shell_quote_leaves_safe_words_alone() -> None:
    assert shell_quote("Qwen/Qwen3-1.7B", "plain") == "Qwen/Qwen3-1.7B"
    assert shell_quote("it's", "single") == "it'\\''s"
    assert shell_quote('a"$b`\\', "double") == 'a\\"\\$b\\`\\\\'
