"""The Ray head wrapper is a real script: run the vllm-ray head's argv under bash with fake `ray` and `vllm` on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from runtime_cases import engine_flags, request, topology

from sparkrun.runtimes.vllm import VllmRayRuntime

FAKE_RAY = r"""#!/usr/bin/env bash
# fake ray: logs each call; `ray status` shows one more active node per call, up to $FAKE_RAY_NODES.
printf 'ray %s\n' "$*" >>"$FAKE_DIR/calls"
case $1 in
  start) exit "${FAKE_RAY_START_RC:-0}" ;;
  stop) exit 0 ;;
  status)
    printf x >>"$FAKE_DIR/status_calls"
    calls=$(wc -c <"$FAKE_DIR/status_calls")
    nodes=$(( calls < FAKE_RAY_NODES ? calls : FAKE_RAY_NODES ))
    echo "======== Autoscaler status: 2026-11-23 16:00:00 ========"
    echo "Node status"
    echo "---------------------------------------------------------------"
    echo "Active:"
    for ((i = 0; i < nodes; i++)); do echo " 1 node_0123456789abcdef$i"; done
    echo "Pending:"
    echo " (no pending nodes)"
    echo "Recent failures:"
    echo " (no failures)"
    echo ""
    echo "Resources"
    echo "Usage:"
    echo " 0.0/$nodes.0 GPU"
    ;;
  *) exit 64 ;;
esac
"""

FAKE_VLLM = r"""#!/usr/bin/env bash
printf 'vllm pid=%s args=%s\n' "$$" "$*"
"""


def _fake_bin(tmp_path: Path, *, with_ray: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"vllm": FAKE_VLLM, **({"ray": FAKE_RAY} if with_ray else {})}
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)
    return bin_dir


def _head_argv(*, fast: bool = True, **settings: object) -> tuple[str, ...]:
    """The head rank's argv exactly as built, with the poll interval shortened so the test is quick."""
    head = VllmRayRuntime().build(request(settings), topology(2))[0]
    argv = list(head.argv)
    assert argv[8] == "2"  # RAY_POLL_S: positional argument 5 after the script name
    if fast:
        argv[8] = "0.05"
    return tuple(argv)


def _run(argv: tuple[str, ...], tmp_path: Path, bin_dir: Path, nodes: int, **env: str) -> subprocess.Popen[str]:
    environ = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_DIR": str(tmp_path),
        "FAKE_RAY_NODES": str(nodes),
        "HOME": str(tmp_path),
        **env,
    }
    return subprocess.Popen(argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_starts_the_ray_head_waits_for_every_node_then_execs_the_serve_command(tmp_path: Path) -> None:
    argv = _head_argv(dashboard=True)
    proc = _run(argv, tmp_path, _fake_bin(tmp_path), nodes=2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    serve = argv[argv.index("--") + 1 :]
    # exec: the serve process took over the wrapper's PID, so it is the container's main process.
    assert out.splitlines() == [f"vllm pid={proc.pid} args={' '.join(serve[1:])}"]
    calls = _calls(tmp_path)
    start = (
        "ray start --head --port 46379 --node-ip-address 10.0.0.11 --disable-usage-stats "
        "--include-dashboard true --dashboard-host 0.0.0.0 --dashboard-port 8265"
    )
    assert calls[0] == start
    assert calls[1:] == ["ray status --address 10.0.0.11:46379"] * 2  # one node, then two
    assert "Ray cluster ready (2 node(s)); starting vllm" in err


@pytest.mark.parametrize("dashboard", [True, False])
def test_every_ray_start_flag_it_uses_is_real(tmp_path: Path, dashboard: bool) -> None:
    proc = _run(_head_argv(dashboard=dashboard), tmp_path, _fake_bin(tmp_path), nodes=2)
    proc.communicate(timeout=30)
    start = _calls(tmp_path)[0].split()[2:]
    assert {token for token in start if token.startswith("--")} <= engine_flags("ray-start")


def test_dashboard_is_off_by_default(tmp_path: Path) -> None:
    proc = _run(_head_argv(), tmp_path, _fake_bin(tmp_path), nodes=2)
    proc.communicate(timeout=30)
    assert _calls(tmp_path)[0].endswith("--disable-usage-stats --include-dashboard false")


def test_times_out_with_a_clear_error_when_workers_never_join(tmp_path: Path) -> None:
    proc = _run(_head_argv(ray_wait_timeout=1), tmp_path, _fake_bin(tmp_path), nodes=1)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    assert out == ""  # the serve command never ran
    assert (
        "the Ray cluster has 1 of 2 node(s) after 1s; check that every worker container is running and can reach "
        "10.0.0.11:46379"
    ) in err
    assert _calls(tmp_path)[-1] == "ray stop --force"


def test_fails_when_the_ray_head_does_not_start(tmp_path: Path) -> None:
    proc = _run(_head_argv(), tmp_path, _fake_bin(tmp_path), nodes=2, FAKE_RAY_START_RC="1")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert out == ""


def test_fails_clearly_without_ray_in_the_image(tmp_path: Path) -> None:
    if any((Path(d) / "ray").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("a real ray is installed on this machine")
    proc = _run(_head_argv(), tmp_path, _fake_bin(tmp_path, with_ray=False), nodes=2)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "the image has no 'ray' executable" in err


@pytest.mark.parametrize(
    "args",
    [
        ("46379", "10.0.0.11", "2", "600", "2", "8265", "vllm"),  # no "--"
        ("46379", "10.0.0.11", "two", "600", "2", "8265", "--", "vllm"),
        ("46379", "10.0.0.11", "2", "600", "soon", "8265", "--", "vllm"),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    script = _head_argv()[2]
    proc = _run(("bash", "-c", script, "sparkrun-ray-head", *args), tmp_path, _fake_bin(tmp_path), nodes=2)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith("sparkrun-ray-head: ")
    assert not os.path.exists(tmp_path / "calls")
