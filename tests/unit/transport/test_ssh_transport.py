"""How sparkrun calls OpenSSH, what a failed connection turns into, and what every process transport guarantees:
the script arrives framed so stdin stays free for data, a timeout ends the script on the host, bytes stream in and
out, and a pipe between two hosts never holds the stream in Python. Run with the local transport (real bash)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from sparkrun.hosts import Host, SshSettings
from sparkrun.shell import Script, render_script
from sparkrun.transport.base import Direct
from sparkrun.transport.local import LocalTransport
from sparkrun.transport.ssh import HOST_KEY_CHANGED, HOST_KEY_UNKNOWN, SSH_HINTS, SshTransport, classify_ssh_error

HERE = Host("localhost", local=True)


def script(name: str, body: str, stdin: bytes = b"") -> Script:
    return Script(name=name, text=f"set -uo pipefail\n{body}\n", stdin=stdin)


def test_ssh_multiplexes_in_a_private_control_dir_and_never_prompts(tmp_path: Path) -> None:
    t = SshTransport(control_dir=tmp_path / "cm")
    host = Host("spark1", SshSettings(user="ops", port=2222, identity_file="/k", options=(("A", "b"),)))
    argv = t.argv(host, "CMD")
    joined = " ".join(argv)
    assert argv[0] == "ssh"
    for expected in ("BatchMode=yes", "ControlMaster=auto", f"ControlPath={tmp_path}/cm/%C", "ConnectTimeout=10"):
        assert expected in joined
    assert argv[argv.index("-p") : argv.index("-p") + 2] == ["-p", "2222"]
    assert argv[argv.index("-l") : argv.index("-l") + 2] == ["-l", "ops"]
    assert "A=b" in argv
    assert argv[-3:] == ["--", "spark1", "CMD"]
    assert "StrictHostKeyChecking" not in joined  # host-key checking is the user's to configure
    assert (tmp_path / "cm").stat().st_mode & 0o777 == 0o700


def test_connect_timeout_comes_from_the_host_settings(tmp_path: Path) -> None:
    argv = SshTransport(control_dir=tmp_path).argv(Host("h", SshSettings(connect_timeout=3)), "x")
    assert "ConnectTimeout=3" in argv


def test_host_to_host_ssh_never_passes_a_file_of_this_machine(tmp_path: Path) -> None:
    sink = Host("b", SshSettings(user="ops", identity_file="/home/me/.ssh/key"))
    argv = SshTransport(control_dir=tmp_path).direct_ssh(Host("a"), sink, "192.168.100.2")
    assert argv[0] == "ssh" and argv[-2:] == ["--", "192.168.100.2"]
    assert "/home/me/.ssh/key" not in argv and not any("ControlPath" in a for a in argv)


def test_a_local_host_runs_bash_without_ssh(tmp_path: Path) -> None:
    t = SshTransport(control_dir=tmp_path)
    assert t.argv(HERE, "CMD") == ["bash", "-c", "CMD"]
    result = t.run(HERE, render_script("stop", {"JOB_ID": "x", "STOP_TIMEOUT": "1", "SETTLE": "0"}))
    # This machine may have no docker daemon; either way the script reports through the protocol.
    assert result.ok or result.output.last("fail") is not None
    assert t.calls and t.calls[0][:2] == ("localhost", "stop")


def test_ssh_errors_become_one_short_cause_with_a_hint() -> None:
    assert classify_ssh_error("ssh: connect to host x port 22: Connection timed out\r\n") == "SSH connection timed out"
    assert classify_ssh_error("root@x: Permission denied (publickey).") == (
        "SSH authentication failed (permission denied)"
    )
    unknown = (
        "No ED25519 host key is known for 10.0.0.1 and you have requested strict checking.\n"
        "Host key verification failed."
    )
    assert classify_ssh_error(unknown) == HOST_KEY_UNKNOWN
    changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."
    assert classify_ssh_error(changed) == HOST_KEY_CHANGED
    assert "ssh-keygen -R" in SSH_HINTS[HOST_KEY_CHANGED]
    assert classify_ssh_error("Timeout, server 10.0.0.2 not responding.") == (
        "SSH connection lost (the host or its link went down)"
    )
    assert classify_ssh_error("weird\nlast line") == "SSH failed: last line"


def test_the_script_arrives_framed_so_its_stdin_carries_data() -> None:
    data = os.urandom(50_000) + b"\n\x00tail"
    result = LocalTransport().run(HERE, script("sum", "sha256sum | cut -d' ' -f1", stdin=data))
    assert result.ok, result.stderr
    assert result.stdout.strip() == hashlib.sha256(data).hexdigest()


def test_a_command_reading_stdin_cannot_eat_the_rest_of_the_script() -> None:
    # With `bash -s` the script *is* stdin: `cat` would swallow the lines after it. Framed, it only sees the data.
    result = LocalTransport().run(HERE, script("eat", "cat >/dev/null\necho still-here"))
    assert result.ok and result.stdout.strip() == "still-here"


def test_the_script_text_never_appears_in_a_process_list() -> None:
    marker = "sparkrun-secret-marker-42"
    body = f"readonly X={marker}\nps -eo args | grep -c -- {marker[:8]}-sec || true"
    result = LocalTransport().run(HERE, script("ps", body))
    # Only the grep itself matches (its pattern is a prefix), never a process carrying the script text.
    assert result.stdout.strip() == "1", result.stdout


def test_a_timeout_names_the_step_and_ends_the_script_on_the_host(tmp_path: Path) -> None:
    flag = tmp_path / "still-running"
    body = f"sleep 30 & wait; touch {flag}"
    started = time.monotonic()
    result = LocalTransport().run(HERE, script("slow-step", body), timeout=1)
    assert time.monotonic() - started < 10
    assert not result.ok and result.timed_out == 1.0
    step, cause = result.failure()
    assert step == "slow-step" and "no answer within 1s" in cause
    time.sleep(1.5)
    assert not flag.exists()


def test_bytes_stream_out_of_and_into_a_script() -> None:
    t = LocalTransport()
    channel = t.open(HERE, script("produce", "head -c 3000000 /dev/zero | tr '\\0' 'x'"))
    channel.stdin.close()
    got = 0
    while chunk := channel.stdout.read(65536):
        got += len(chunk)
    assert got == 3_000_000 and channel.result().ok
    sink = t.open(HERE, script("consume", "wc -c"))
    for _ in range(10):
        sink.stdin.write(b"y" * 100_000)
    assert sink.result().stdout.strip() == "1000000"


def test_a_pipe_through_this_machine_delivers_every_byte(tmp_path: Path) -> None:
    src_file = tmp_path / "src.bin"
    src_file.write_bytes(os.urandom(5_000_000))
    t = LocalTransport()
    source = script("send", f"cat {src_file}")
    sink = script("receive", f"cat > {tmp_path / 'dst.bin'}; sha256sum {tmp_path / 'dst.bin'} | cut -d' ' -f1")
    result = t.pipe((HERE, source), (HERE, sink))
    assert result.ok, (result.source, result.sink)
    assert result.sink.stdout.strip() == hashlib.sha256(src_file.read_bytes()).hexdigest()


def test_a_direct_pipe_runs_the_relay_on_the_source_host(tmp_path: Path) -> None:
    src_file = tmp_path / "src.bin"
    src_file.write_bytes(os.urandom(2_000_000))
    source = script("send", f"cat {src_file}")
    sink = script("receive", "sha256sum | cut -d' ' -f1")
    result = LocalTransport().pipe((HERE, source), (HERE, sink), direct=Direct("127.0.0.1"))
    assert result.ok, (result.source, result.sink)
    assert result.sink.stdout.strip() == hashlib.sha256(src_file.read_bytes()).hexdigest()
