"""Root on a host: directly (the SSH user is root), `sudo -n` (passwordless), or `sudo -S` with a password.

The password is asked once per host (on a terminal, never echoed), kept in memory for this command only, and
travels as the step's stdin (`Step.stdin`), padded to a fixed size so not even its length shows in a plan or event.
`setup_host.sh` reads it into a shell variable and hands it to each `sudo -S` through a pipe from `printf` (a bash
builtin): it is never on a command line, in the script text, a log or the environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.setup.facts import HostFacts
from sparkrun.setup.options import AskPassword

PAD = 512
MODE_TEXT = {"root": "as root", "nopasswd": "with sudo", "password": "with sudo (asks for the password)"}


def root_values(facts: HostFacts, step: str) -> tuple[dict[str, str], HostError | None]:
    """The SUDO value for a step that needs root on this host, or why it cannot have root."""
    if facts.uid == 0:
        return {"SUDO": "root"}, None
    if facts.sudo in ("nopasswd", "password"):
        return {"SUDO": facts.sudo}, None
    cause = f"{facts.user} is not root and sudo is not installed" if facts.sudo == "missing" else "no way to root"
    hint = "connect as a user with sudo rights (--user), or make the change on the host by hand"
    return {}, HostError(facts.address, step, cause, hint=hint)


def root_step(
    facts: HostFacts,
    action: str,
    summary: str,
    values: Mapping[str, str | Sequence[str]],
    *,
    detail: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> Step | HostError:
    """A `setup_host.sh` step (ACTION=action) that runs as root the way this host allows, or why it cannot."""
    sudo, error = root_values(facts, action)
    if error is not None:
        return error
    all_values = {**sudo, "ACTION": action, **values}
    text = f"{summary} ({MODE_TEXT[sudo['SUDO']]})"
    return Step(facts.host, "setup_host", all_values, text, action, timeout=timeout, detail=detail)


def needs_password(plan: Plan) -> list[Step]:
    return [s for s in plan.steps if not s.noop and s.values.get("SUDO") == "password"]


def password_stdin(password: str) -> bytes:
    """The password line, padded with newlines to a multiple of PAD bytes (the script reads the first line)."""
    data = (password + "\n").encode()
    return data + b"\n" * (-len(data) % PAD)


def collect_passwords(
    steps: Iterable[Step], known: dict[str, str], ask: AskPassword | None, users: Mapping[str, str]
) -> None:
    """Ask once for each host that needs a password and has none yet; fills `known` (host -> password)."""
    for step in steps:
        host = step.host.address
        if host in known:
            continue
        user = users.get(host, "")
        answer = ask(host, user) if ask is not None else None
        if answer is None:
            raise HostError(
                host,
                "sudo",
                f"sudo needs a password for {user or 'the SSH user'}, and there is no terminal to ask on",
                hint="run the command on a terminal (sparkrun asks once per host, never echoes or stores it), "
                "or give the user passwordless sudo",
            )
        known[host] = answer


def with_passwords(plan: Plan, passwords: Mapping[str, str]) -> Plan:
    """The plan with each password-sudo step carrying its host's password on stdin."""
    steps = tuple(
        replace(s, stdin=password_stdin(passwords[s.host.address]))
        if not s.noop and s.values.get("SUDO") == "password" and s.host.address in passwords
        else s
        for s in plan.steps
    )
    return replace(plan, steps=steps)
