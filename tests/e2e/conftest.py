"""End-to-end fixtures: a real multi-host cluster on this machine (scripts/testbed.sh), stand-in engines included.

``testbed`` (session): brings up ``SPARKRUN_TESTBED_HOSTS`` (default 4) simulated DGX Spark hosts once and tears
them down at the end, checking that nothing is left behind. A testbed that was already up when the session
started is reused and left up (developers keep their cluster). Test sessions take turns on the shared cluster
(``$TB_STATE/sessions.lock``; the tests pull cables and crash hosts), and ``scripts/testbed.sh down`` refuses while
one runs. Without root the e2e tests are skipped; with ``CI=true`` they must run, and a cluster that cannot start
fails them with the failing host's log tail.

``sparkrun_env`` (function): an environment for running the ``sparkrun`` CLI as a subprocess against the testbed,
on top of the isolated HOME from ``tests/conftest.py``: the ``testbed`` cluster file in its SPARKRUN_CONFIG_DIR,
``~/.ssh/config`` with ``Include <testbed ssh_config>``, and an ``ssh`` wrapper first on PATH that passes
``-F ~/.ssh/config`` (OpenSSH reads the config of the passwd home, not of $HOME, so without it the isolated
config would be ignored).

``host_state`` (function): ``host_state(host, docker_group=False, sudo="password", password="pw", ...)`` puts a
running host into an unprepared state for real (``Testbed.set_state``; scripts/testbed/README.md "Host states");
every host it touched gets its previous state back after the test, whatever the test did on it.

``spark_cluster`` (function): the name of a cluster (``testbed-spark``) in ``sparkrun_env``'s config dir that connects
as the hosts' non-root user ``spark`` instead of root.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from sparkrun.transport.ssh import SshTransport
from testbed.harness import USER, SetState, StateValue, Testbed, find_leftovers

REQUIRED_TOOLS = (
    *("ip", "nsenter", "unshare", "dockerd", "docker", "sshd", "ssh", "ssh-keygen", "busybox", "flock"),
    *("sudo", "useradd", "docker-registry"),
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _skip_or_fail(reason: str) -> None:
    if _truthy(os.environ.get("CI")):
        pytest.fail(f"e2e (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Testbed]:
    if os.geteuid() != 0:
        _skip_or_fail("e2e tests need root (network namespaces, dockerd): run `sudo make e2e`")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        _skip_or_fail(
            f"e2e tests need {', '.join(missing)}: run scripts/install-deps.sh as root (openssh-server docker.io rsync "
            "busybox-static iproute2 iptables sudo python3-yaml docker-registry)"
        )
    n = int(os.environ.get("SPARKRUN_TESTBED_HOSTS", "4"))
    state = Path(os.environ.get("TB_STATE", "/var/lib/sparkrun-testbed"))
    # `up` writes its cluster file into the active sparkrun config dir: keep it out of the developer's own.
    config_dir = tmp_path_factory.mktemp("testbed-config")
    env = {"TB_STATE": str(state), "SPARKRUN_CONFIG_DIR": str(config_dir)}
    tb = Testbed(hosts=[], state_dir=state, ssh_config=state / "ssh_config", env=env)
    state.mkdir(parents=True, exist_ok=True)
    # One test session at a time on the shared cluster (the tests pull cables, crash hosts, shape links), and
    # `scripts/testbed.sh down` refuses while a session holds users.lock.
    session = _lock(pytestconfig, state / "sessions.lock", fcntl.LOCK_EX, "another test session is using the testbed")
    users = _lock(pytestconfig, state / "users.lock", fcntl.LOCK_SH, "a `testbed.sh down` is running")
    try:
        was_up = tb.script_run("running", check=False).stdout.split()
        t0 = time.monotonic()
        r = tb.script_run("up", str(n), check=False, timeout=900)
        if r.returncode != 0:
            pytest.fail(f"scripts/testbed.sh up {n} failed (exit {r.returncode}):\n{r.stderr[-6000:]}", pytrace=False)
        tb.hosts = (state / "hosts").read_text().split()[:n]
        tb.owned = not was_up
        how = "brought up" if tb.owned else "reused, will be left up"
        _say(pytestconfig, f"[testbed] {len(tb.hosts)} hosts ready in {time.monotonic() - t0:.1f}s ({how})")
        yield tb
        if tb.owned:
            down = tb.script_run("down", "--force", check=False, timeout=300)  # --force: users.lock is ours
            left = find_leftovers(state)
            assert down.returncode == 0 and not left, (
                f"testbed down left things behind (exit {down.returncode}):\n{down.stderr}\n" + "\n".join(left)
            )
    finally:
        users.close()
        session.close()


def _say(config: pytest.Config, line: str) -> None:
    """Print past pytest's output capture (progress the developer should see at once)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(line, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


def _lock(config: pytest.Config, path: Path, how: int, waiting_for: str) -> IO[bytes]:
    """Open `path` and flock it (`how`), waiting up to SPARKRUN_TESTBED_WAIT seconds (default 3600)."""
    f: IO[bytes] = open(path, "ab")  # noqa: SIM115 - held for the whole session
    deadline = time.monotonic() + float(os.environ.get("SPARKRUN_TESTBED_WAIT", "3600"))
    told = False
    while True:
        try:
            fcntl.flock(f, how | fcntl.LOCK_NB)
            return f
        except OSError:
            if time.monotonic() > deadline:
                f.close()
                pytest.fail(f"gave up waiting: {waiting_for} ({path})", pytrace=False)
            if not told:
                _say(config, f"[testbed] waiting: {waiting_for} ({path})")
                told = True
            time.sleep(1)


@pytest.fixture
def sparkrun_env(testbed: Testbed, isolated_home: Path) -> dict[str, str]:
    """os.environ for a `sparkrun` subprocess: isolated HOME that knows the testbed (cluster `testbed`, ssh)."""
    env = dict(os.environ)
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "config").write_text(f"Include {testbed.ssh_config}\n")
    (ssh_dir / "config").chmod(0o600)
    bin_dir = isolated_home / ".local" / "testbed-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    real_ssh = shutil.which("ssh") or "/usr/bin/ssh"
    wrapper = bin_dir / "ssh"
    wrapper.write_text(
        "#!/bin/sh\n# OpenSSH ignores $HOME; use the isolated ~/.ssh/config unless the caller chose one\n"
        'for a in "$@"; do case $a in -F|-F*) exec ' + real_ssh + ' "$@";; esac; done\n'
        "exec " + real_ssh + ' -F "$HOME/.ssh/config" "$@"\n'
    )
    wrapper.chmod(0o755)
    config_dir = Path(env["SPARKRUN_CONFIG_DIR"])
    testbed.script_run("cluster-file", str(config_dir))
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TB_STATE"] = str(testbed.state_dir)
    return env


@pytest.fixture
def host_state(testbed: Testbed) -> Iterator[SetState]:
    """host_state(host, *flags, **values) -> the host's state before; restored after the test."""
    saved: dict[str, dict[str, str]] = {}

    def set_state(host: str, *flags: str, **values: StateValue) -> dict[str, str]:
        before = testbed.set_state(host, *flags, **values)
        saved.setdefault(host, before)
        return before

    yield set_state
    for host, before in saved.items():
        testbed.restore_state(host, before)


@pytest.fixture
def spark_cluster(testbed: Testbed, sparkrun_env: dict[str, str]) -> str:
    """A cluster `testbed-spark` in sparkrun_env's config dir: the testbed's hosts, SSH user `spark`."""
    testbed.cluster_file(Path(sparkrun_env["SPARKRUN_CONFIG_DIR"]), user=USER, name="testbed-spark")
    return "testbed-spark"


@pytest.fixture
def transport(sparkrun_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[SshTransport]:
    """sparkrun's own SSH transport, set up as the CLI would be on this cluster (tests of transport operations)."""
    for key in ("PATH", "HOME"):
        monkeypatch.setenv(key, sparkrun_env[key])
    control = Path(tempfile.mkdtemp(prefix="srcm-", dir="/tmp"))  # a socket path holds at most 107 bytes
    yield SshTransport(control_dir=control)
    shutil.rmtree(control, ignore_errors=True)
