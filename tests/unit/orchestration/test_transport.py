"""How sparkrun calls OpenSSH, and what a failed connection turns into."""

from __future__ import annotations

from pathlib import Path

from sparkrun.orchestration.hosts import Host, SshSettings
from sparkrun.orchestration.scripts import render_script
from sparkrun.orchestration.transport import Transport, classify_ssh_error


def test_ssh_multiplexes_in_a_private_control_dir_and_never_prompts(tmp_path: Path) -> None:
    t = Transport(control_dir=tmp_path / "cm")
    argv = t.command(Host("spark1", SshSettings(user="ops", port=2222, identity_file="/k", options=(("A", "b"),))))
    joined = " ".join(argv)
    assert argv[0] == "ssh"
    for expected in ("BatchMode=yes", "ControlMaster=auto", f"ControlPath={tmp_path}/cm/%C", "ConnectTimeout=10"):
        assert expected in joined
    assert argv[argv.index("-p") : argv.index("-p") + 2] == ["-p", "2222"]
    assert argv[argv.index("-l") : argv.index("-l") + 2] == ["-l", "ops"]
    assert "A=b" in argv
    assert argv[-3:] == ["--", "spark1", "bash -s"]
    assert "StrictHostKeyChecking" not in joined  # host-key checking is the user's to configure
    assert (tmp_path / "cm").stat().st_mode & 0o777 == 0o700


def test_connect_timeout_comes_from_the_host_settings(tmp_path: Path) -> None:
    argv = Transport(control_dir=tmp_path).command(Host("h", SshSettings(connect_timeout=3)))
    assert "ConnectTimeout=3" in argv


def test_a_local_host_runs_bash_without_ssh(tmp_path: Path) -> None:
    t = Transport(control_dir=tmp_path)
    host = Host("localhost", local=True)
    assert t.command(host) == ["bash", "-s"]
    result = t.run(host, render_script("stop", {"JOB_ID": "x", "STOP_TIMEOUT": "1", "SETTLE": "0"}))
    # This machine may have no docker daemon; either way the script reports through the protocol.
    assert result.ok or result.output.last("fail") is not None
    assert t.calls and t.calls[0][:2] == ("localhost", "stop")


def test_ssh_errors_become_one_short_cause() -> None:
    assert classify_ssh_error("ssh: connect to host x port 22: Connection timed out\r\n") == "connection timed out"
    assert classify_ssh_error("root@x: Permission denied (publickey).") == (
        "SSH authentication failed (permission denied)"
    )
    assert classify_ssh_error("Host key verification failed.") == "host key not trusted"
    assert classify_ssh_error("weird\nlast line") == "last line"
