"""sparkrun's real readiness.sh against stand-in engines on this machine (local bash, no SSH, no containers): it asks
the server which names it serves, uses the API key the recipe sets (never on a command line), and stops at once on a
4xx answer."""

from __future__ import annotations

import time

from sparkrun.hosts import Host
from sparkrun.launch.steps import json_forms
from sparkrun.shell import render_script
from sparkrun.transport.local import LocalTransport
from testbed.standin_harness import Runner, free_port
from testbed.test_standin_engines import wait_ok

HERE = Host("localhost", local=True)


def readiness(port: int, model: str, key: str = "", timeout: int = 20) -> dict[str, list[str]]:
    values = {
        "CONTAINER": "not-a-container",
        "ADDR": "127.0.0.1",
        "PORT": str(port),
        "PORT_TIMEOUT": str(timeout),
        "HEALTH_TIMEOUT": str(timeout),
        "INFERENCE": True,
        "INFERENCE_TIMEOUT": str(timeout),
        "MODEL": model,
        "MODEL_JSON": json_forms(model),
        "PROMPT": "Reply with exactly: ok",
        "KEY_BYTES": str(len(key.encode())),
        "LOG_LINES": "5",
    }
    result = LocalTransport().run(HERE, render_script("readiness", values, stdin=key.encode()), timeout=timeout * 4)
    events: dict[str, list[str]] = {}
    for k, v in result.output.events:
        events.setdefault(k, []).append(v)
    return events


def test_readiness_completes_with_a_name_the_engine_lists_and_uses_the_api_key(engine: Runner) -> None:
    port = free_port()
    engine(
        "vllm",
        "serve",
        "m",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        "a",
        "b",
        "--api-key",
        "k-123",
    )
    wait_ok(f"http://127.0.0.1:{port}/health")  # (no container here for readiness to watch while it waits)
    events = readiness(port, "guessed-name", key="k-123")
    assert events["models"] == ["a,b"] and events["served"] == ["a"]
    assert "ready" in events, events


def test_the_model_path_the_engine_lists_as_root_is_not_taken_for_a_served_name(engine: Runner) -> None:
    # vLLM lists every served name with "root": <model path>; readiness planned the path as the name (a recipe
    # naming its served model only in its command text): it must use the listed id, not match the root.
    port = free_port()
    engine("vllm", "serve", "org/model", "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "alias")
    wait_ok(f"http://127.0.0.1:{port}/health")
    events = readiness(port, "org/model")
    assert events["models"] == ["alias"] and events["served"] == ["alias"]
    assert "ready" in events, events


def test_a_missing_api_key_ends_readiness_at_once_with_the_servers_answer(engine: Runner) -> None:
    port = free_port()
    engine("vllm", "serve", "m", "--host", "127.0.0.1", "--port", str(port), "--api-key", "k-123")
    wait_ok(f"http://127.0.0.1:{port}/health")
    started = time.monotonic()
    events = readiness(port, "m", timeout=120)
    assert time.monotonic() - started < 30
    assert events["fail"] and events["fail"][0].startswith("models ") and "HTTP 401" in events["fail"][0]
