"""Twenty `sparkrun` processes at once, changing the same config dir: creating clusters (some with the same name),
adding hosts to one shared cluster, setting the default cluster, adding registries (local file:// git repositories).
Afterwards every config file is valid YAML, no change is lost (every added host and registry is there), each name
was created exactly once (the others were refused with exit 3), and no process printed a traceback. Real processes
(the CLI as a user runs it), real file locks; nothing connects to a host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from reliability_report import CaseLog

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
RECIPE = "recipe_version: '2'\nmodel: org/model\nruntime: vllm\n"


def make_repo(path: Path, name: str) -> str:
    """A git repository holding one registry (`name`) with one recipe; its file:// URL."""
    (path / ".sparkrun").mkdir(parents=True)
    (path / ".sparkrun" / "registry.yaml").write_text(f"registries:\n  - name: {name}\n    recipes: recipes\n")
    (path / "recipes").mkdir()
    (path / "recipes" / f"{name}-model.yaml").write_text(RECIPE)
    env = {**os.environ, **GIT_ENV}
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True, env=env, capture_output=True)
    return f"file://{path}"


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sparkrun", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_twenty_processes_changing_the_config_at_once_lose_nothing(
    tmp_path: Path, isolated_home: Path, reliability: CaseLog
) -> None:
    config = Path(os.environ["SPARKRUN_CONFIG_DIR"])
    repos = [make_repo(tmp_path / f"repo{i}", f"reg{i}") for i in range(4)]
    assert spawn("cluster", "create", "shared", "-H", "10.9.0.1").wait(timeout=60) == 0
    jobs: list[tuple[str, subprocess.Popen[str]]] = []
    jobs += [(f"create c{i}", spawn("cluster", "create", f"c{i}", "-H", f"10.0.0.{i + 1}")) for i in range(6)]
    jobs += [(f"create dup {i}", spawn("cluster", "create", "dup", "-H", f"10.1.0.{i + 1}")) for i in range(3)]
    jobs += [(f"add 10.2.0.{i}", spawn("cluster", "update", "shared", "--add-host", f"10.2.0.{i}")) for i in range(5)]
    jobs += [(f"default c{i}", spawn("cluster", "set-default", "shared")) for i in range(2)]
    jobs += [(f"registry {i}", spawn("registry", "add", url)) for i, url in enumerate(repos)]
    assert len(jobs) == 20
    results = {name: (proc.wait(timeout=300), *proc.communicate()) for name, proc in jobs}

    traces = sum("Traceback" in err or "internal error" in err for _code, _out, err in results.values())
    files = [*config.rglob("*.yaml")]
    parsed = {p.name: yaml.safe_load(p.read_text()) for p in files}
    clusters = {p.stem for p in (config / "clusters").glob("*.yaml")}
    shared = parsed["shared.yaml"]["hosts"]
    registries = {r["name"] for r in parsed.get("registries.yaml", {}).get("registries", [])}
    dup_codes = sorted(code for name, (code, _o, _e) in results.items() if name.startswith("create dup"))
    reliability.case(
        "20 processes change the config at once",
        suite="concurrency",
        fault="6 cluster creates, 3 creates of one name, 5 `update --add-host` of one cluster, 2 set-default, "
        "4 `registry add` (file:// git repos), all at once",
        checked="every YAML file valid; no lost update; one create per name wins, the others exit 3",
        inputs=20,
        tracebacks=traces,
        cause=next((e.strip().splitlines()[0] for c, _o, e in results.values() if c not in (0, 3)), ""),
    )
    assert traces == 0, {n: r[2] for n, r in results.items() if "Traceback" in r[2]}
    assert all(isinstance(data, dict) for data in parsed.values()), parsed
    bad = {n: r for n, r in results.items() if r[0] != 0 and not n.startswith("create dup")}
    assert not bad, bad
    assert dup_codes == [0, 3, 3], results
    assert clusters == {"shared", "dup", *(f"c{i}" for i in range(6))}
    assert sorted(shared) == sorted(["10.9.0.1", *(f"10.2.0.{i}" for i in range(5))])
    assert parsed["config.yaml"]["default_cluster"] == "shared"
    assert registries >= {f"reg{i}" for i in range(4)}, registries


HOLD_LOCK = "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(60)"


def test_the_lock_of_a_killed_process_does_not_block_the_next(isolated_home: Path) -> None:
    config = Path(os.environ["SPARKRUN_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(config / ".lock")])
    try:
        holder.kill()  # a sparkrun killed in the middle of a change: the kernel drops its flock
        holder.wait(timeout=10)
        assert spawn("cluster", "create", "after", "-H", "10.0.0.1").wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
