"""Applying setup plans through the core's apply: sudo passwords asked once per host and sent only as a step's
stdin, `check --fix` (check, safe fixes, check again), and host keys: read over verified connections they are trusted,
scanned over the network they are recorded only after confirmation."""

from __future__ import annotations

import pytest
from setup_fakes import HOSTS, FakeHosts, make_setup, prepared, unreachable, user_key

from sparkrun.core.events import StepFinished
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.setup import Prompts, SetupOptions
from sparkrun.setup.control import fingerprint
from sparkrun.setup.sudo import PAD
from sparkrun.shell import Script
from sparkrun.transport.fake import events
from sparkrun.transport.ssh import HOST_KEY_UNKNOWN

H1, H2, H3 = HOSTS
SECRET = "s3cret pass'word"
PASSWORD_SUDO = {
    "sudo": "password sudo: a password is required",
    "docker_member": "no",
    "earlyoom": "missing inactive ",
}


class Asked:
    def __init__(self, answer: str | None = SECRET) -> None:
        self.answer = answer
        self.hosts: list[tuple[str, str]] = []

    def __call__(self, host: str, user: str) -> str | None:
        self.hosts.append((host, user))
        return self.answer


def test_a_password_is_asked_once_per_host_and_travels_only_on_the_steps_stdin() -> None:
    fake = FakeHosts(**{"10_0_0_11": PASSWORD_SUDO, "10_0_0_12": PASSWORD_SUDO})
    setup, seen = make_setup(fake)
    ask = Asked()
    options = SetupOptions()
    for action in ("docker-group", "earlyoom"):
        setup.apply(setup.plan(action, options), options, Prompts(password=ask))
    assert ask.hosts == [(H1, "spark"), (H2, "spark")]  # once per host, for both commands
    root_steps = [(h, s) for h, s in fake.transport.scripts if s.name == "setup_host"]
    assert sorted(h.address for h, _s in root_steps) == [H1, H1, H2, H2]  # a phase's hosts run in parallel
    for _host, script in root_steps:
        assert script.stdin.startswith(f"{SECRET}\n".encode()) and len(script.stdin) == PAD
        assert SECRET not in script.text  # not a value, not in the script text
        assert "readonly SUDO=password" in script.text
    shown = [e.to_json() for e in seen]
    assert SECRET not in repr(shown) and all(e.get("stdin_bytes", PAD) == PAD for e in shown if "stdin_bytes" in e)


def test_without_a_terminal_a_needed_password_fails_before_anything_runs() -> None:
    fake = FakeHosts(**{"10_0_0_12": PASSWORD_SUDO})
    setup, _seen = make_setup(fake)
    options = SetupOptions()
    with pytest.raises(HostError) as err:
        setup.apply(setup.plan("docker-group", options), options, Prompts(password=None))
    assert str(err.value) == f"{H2}: sudo: sudo needs a password for spark, and there is no terminal to ask on"
    assert "terminal" in (err.value.hint or "")
    assert fake.ran("setup_host") == []


def test_passwordless_sudo_asks_nothing() -> None:
    fake = FakeHosts(**{"10_0_0_11": {"docker_member": "no"}})
    setup, _seen = make_setup(fake)
    ask = Asked()
    setup.apply(setup.plan("docker-group", SetupOptions()), SetupOptions(), Prompts(password=ask))
    assert ask.hosts == [] and [s.stdin for s in fake.scripts("setup_host")] == [b""]


def test_check_fix_applies_the_safe_fixes_and_checks_again() -> None:
    broken = {
        "docker": "denied permission denied",
        "docker_member": "no",
        "earlyoom": "missing inactive ",
        "cache_foreign": "/home/spark/.cache/huggingface/x",
        "clock": "1.0",  # far off: not something --fix may change
    }
    fake = FakeHosts(**{"10_0_0_12": broken})

    def repaired(host: Host, script: Script) -> str:
        state = fake.states[host.address]
        assert isinstance(state, dict)
        action = script.text.split("readonly ACTION=", 1)[1].split("\n", 1)[0].strip("'")
        fixed = {
            "docker-group": {"docker_member": ["yes"], "docker": ["ok 27.5.1"]},
            "earlyoom": {"earlyoom": ["installed active -r 3600"]},
            "fix-permissions": {"cache_foreign": []},
        }[action]
        state.update(fixed)
        return events(("changed", f"{action} done"))

    fake.on("setup_host", repaired)
    setup, _seen = make_setup(fake)
    result = setup.fix(SetupOptions(), Prompts())
    assert [r.action for r in result.applied] == ["docker-group", "fix-permissions", "earlyoom"]
    assert all(r.changed_hosts == [H2] for r in result.applied)
    before = {line.check for line in result.before.failed}
    after = {line.check for line in result.after.failed}
    assert before == {"docker", "cache", "earlyoom", "clock"} and after == {"clock"}
    assert sorted(fake.ran("setup_check")) == sorted(HOSTS * 2)
    data = result.to_json()
    assert set(data) == {"ok", "before", "applied", "after"} and data["ok"] is False


def test_a_second_fix_changes_nothing() -> None:
    fake = FakeHosts()
    setup, _seen = make_setup(fake)
    result = setup.fix(SetupOptions(), Prompts())
    assert result.applied == [] and result.after.ok
    assert [s.name for _h, s in fake.transport.scripts] == ["setup_check"] * 6


def test_fix_never_records_a_host_key_scanned_over_the_network() -> None:
    fake = FakeHosts()
    fake.states[H3] = unreachable(H3, HOST_KEY_UNKNOWN)
    setup, _seen = make_setup(fake)
    result = setup.fix(SetupOptions(), Prompts(host_key=lambda host, keys: True))
    assert fake.ran("setup_control") == []  # not even scanned
    assert [line.check for line in result.after.failed] == ["ssh"]


def scan_answer(host: Host, script: Script) -> str:
    if "ACTION=scan" not in script.text:
        return events(("changed", "recorded"))
    return events(("known_hosts_file", "/root/.ssh/known_hosts"), ("name", H3), ("scanned", f"ssh-ed25519 {KEY}"))


KEY = prepared(H3)["hostkey"][0].split()[1]


def ssh_setup(confirm: bool | None, accept: tuple[str, ...] = ()) -> tuple[FakeHosts, object, list[str]]:
    fake = FakeHosts()
    fake.states[H3] = unreachable(H3, HOST_KEY_UNKNOWN)
    fake.on("setup_control", scan_answer)
    asked: list[str] = []

    def host_key(host: str, keys: object) -> bool:
        asked.append(host)
        if confirm:
            fake.states[H3] = prepared(H3)  # recorded: the next check reaches it
        return bool(confirm)

    setup, _seen = make_setup(fake)
    options = SetupOptions(accept_host_keys=accept)
    sp = setup.plan("ssh", options)
    if accept:
        fake.states[H3] = prepared(H3)
    result = setup.apply(sp, options, Prompts(host_key=host_key if confirm is not None else None))
    return fake, result, asked


def test_an_unknown_host_key_is_shown_with_its_fingerprint_and_refused_unless_confirmed() -> None:
    fake, result, asked = ssh_setup(confirm=False)
    assert asked == [H3]
    assert [str(e).split(" (")[0] for e in result.blocked] == [f"{H3}: ssh: host key not accepted"]  # type: ignore[attr-defined]
    assert fingerprint(KEY) in str(result.blocked[0])  # type: ignore[attr-defined]
    recorded = [s for s in fake.scripts("setup_control") if "ACTION=record" in s.text]
    assert recorded == []


def test_a_confirmed_host_key_is_recorded_and_the_host_then_joins_the_mesh() -> None:
    fake, result, _asked = ssh_setup(confirm=True)
    record = next(s for s in fake.scripts("setup_control") if "ACTION=record" in s.text)
    assert f"LINES=('{H3} ssh-ed25519 {KEY}')" in record.text
    assert "KNOWN_HOSTS_FILE=/root/.ssh/known_hosts" in record.text
    assert sorted(fake.ran("setup_check")) == sorted([*HOSTS, H3])  # H3 checked again once its key is known
    assert not result.blocked  # type: ignore[attr-defined]


def test_accept_host_key_records_only_the_named_key_without_a_terminal() -> None:
    fake, result, asked = ssh_setup(confirm=None, accept=(fingerprint(KEY),))
    assert asked == [] and not result.blocked  # type: ignore[attr-defined]
    assert any("ACTION=record" in s.text for s in fake.scripts("setup_control"))
    fake, result, _ = ssh_setup(confirm=None, accept=("SHA256:not-this-one",))
    assert [e.step for e in result.blocked] == ["ssh"]  # type: ignore[attr-defined]


def test_keys_made_in_the_keygen_stage_are_authorized_everywhere() -> None:
    fake = FakeHosts(**{"10_0_0_12": {"userkey": None, "mesh": [f"{H1} hostkey x", f"{H3} hostkey x"]}})
    new_key = "ssh-ed25519 AAAAnewkey spark@spark-12 (sparkrun)"

    def ssh_answer(host: Host, script: Script) -> str:
        if "ACTION=keygen" in script.text:
            return events(("userkey", new_key), ("changed", "created ~/.ssh/id_ed25519"))
        return events(("changed", "authorized"))

    fake.on("setup_ssh", ssh_answer)
    setup, seen = make_setup(fake)
    result = setup.apply(setup.plan("ssh", SetupOptions()), SetupOptions(), Prompts())
    trusts = [s for s in fake.scripts("setup_ssh") if "ACTION=trust" in s.text]
    ran = fake.ran("setup_ssh")
    assert ran[0] == H2 and sorted(ran[1:]) == list(HOSTS)  # keygen first, then trust everywhere
    assert all(new_key in s.text and user_key(H1) in s.text for s in trusts)
    assert "<the key" not in "".join(s.text for s in trusts)
    assert sorted(result.changed_hosts) == list(HOSTS)
    assert sum(isinstance(e, StepFinished) for e in seen) >= 4
