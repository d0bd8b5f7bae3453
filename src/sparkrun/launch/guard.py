"""The last check before anything reaches a host: every value a launch would send (argv, env, labels, mounts, hooks,
secrets, served name, image, SSH settings) either passes through literally or is refused here, with one line naming
the value, before any connection.

Values travel safely by construction (a quoted preamble, argv arrays, a private env file on stdin), so this module
only refuses what no construction can carry faithfully:
- a NUL character (no argv or environment can hold one), text that is not valid Unicode, or a value over 64 KiB
  (an argv entry is limited by the kernel);
- a newline in a secret (the private env file is one `KEY=VALUE` per line: a newline would add a variable);
- names that are not names: environment keys, label keys, SSH option keys and users;
- an image reference that is not one (it could start with `-` and be read by docker as an option);
- a `:` in a mount's host path (`docker run -v SRC:DST` would split it);
- control characters in the served model name and the readiness prompt (readiness puts them in JSON);
- a `--label` that would replace one of sparkrun's own (`sparkrun.job`, ...), which `status` and `stop` rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from sparkrun.errors import InputError
from sparkrun.hosts import Host
from sparkrun.jobs.identity import LABEL
from sparkrun.launch.container import ContainerSpec, docker_run_argv
from sparkrun.launch.planner import JobPlan, RankPlan

MAX_VALUE_BYTES = 64 * 1024
MAX_ARGV_BYTES = 1024 * 1024
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
SSH_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
SSH_OPTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# registry[:port]/path[:tag][@digest], lower-case path components (docker's reference grammar, a little looser)
IMAGE_RE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?$"
)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
SPARKRUN_LABELS = frozenset(
    {"job", "rank", "role", "recipe", "runtime", "model", "served_model_name", "port", "head", "hosts", "cluster"}
    | {"version"}
)


def _refuse(where: str, problem: str, hint: str | None = None) -> InputError:
    return InputError(f"{where}: {problem}", hint=hint or "change the value; sparkrun sends values only as given")


def check_text(where: str, value: str, *, limit: int = MAX_VALUE_BYTES) -> None:
    """Any value that reaches a host: no NUL, valid Unicode, at most `limit` bytes."""
    if "\x00" in value:
        raise _refuse(where, "contains a NUL character, which no command line or environment can carry")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refuse(where, "is not valid text (undecodable bytes)") from None
    if size > limit:
        raise _refuse(where, f"is {size} bytes long; at most {limit} can be passed")


def check_printable(where: str, value: str) -> None:
    check_text(where, value)
    if CONTROL_RE.search(value):
        raise _refuse(where, f"contains a control character ({_first_control(value)})")


def _first_control(value: str) -> str:
    found = CONTROL_RE.search(value)
    return repr(found.group(0)) if found else ""


def check_image(where: str, image: str) -> None:
    check_text(where, image)
    if not IMAGE_RE.match(image):
        raise _refuse(where, f"{image!r} is not an image reference", hint="e.g. vllm/vllm-openai:v0.11.0")


def _env(spec: ContainerSpec, rank: RankPlan) -> Iterator[tuple[str, str]]:
    yield from ((f"env {k}", v) for k, v in spec.env)
    yield from ((f"label {k}", v) for k, v in spec.labels)
    yield from ((f"mount {m.arg()!r}", m.source) for m in spec.mounts)
    yield from ((f"pre hook {h.label}", h.command) for h in rank.pre_hooks)


def _check_names(where: str, rank: RankPlan) -> None:
    spec = rank.container
    for what, key, pattern in (
        *(("environment variable", k, ENV_KEY_RE) for k, _v in spec.env),
        *(("secret", k, ENV_KEY_RE) for k in rank.secrets),
        *(("label", k, LABEL_KEY_RE) for k, _v in spec.labels),
    ):
        if not pattern.match(key):
            raise _refuse(f"{where}: {what} {key!r}", f"is not a {what.split()[-1]} name")


def _check_secrets(where: str, rank: RankPlan) -> None:
    for key, value in rank.secrets.items():
        check_text(f"{where}: secret {key}", value)
        if "\n" in value or "\r" in value:
            raise _refuse(f"{where}: secret {key}", "contains a line break (the private env file has one per line)")


def check_rank(rank: RankPlan) -> None:
    spec = rank.container
    where = f"rank {rank.rank} ({rank.host.address})"
    check_image(f"{where}: image", spec.image)
    for index, arg in enumerate(spec.argv):
        check_text(f"{where}: serve argument {index} ({arg[:40]!r})", arg)
    for index, arg in enumerate(spec.extra_args):
        check_text(f"{where}: cluster docker argument {index}", arg)
    _check_names(where, rank)
    _check_secrets(where, rank)
    for mount in spec.mounts:
        if ":" in mount.source or "\n" in mount.source:
            raise _refuse(f"{where}: mount source {mount.source!r}", "contains ':' or a line break")
    for what, value in _env(spec, rank):
        check_text(f"{where}: {what}", value)
    argv_bytes = sum(len(a.encode("utf-8")) + 1 for a in docker_run_argv(spec))
    if argv_bytes > MAX_ARGV_BYTES:
        raise _refuse(where, f"the docker command line would be {argv_bytes} bytes; at most {MAX_ARGV_BYTES}")


def check_host(host: Host) -> None:
    ssh = host.ssh
    if ssh.user is not None and not SSH_USER_RE.match(ssh.user):
        raise _refuse(f"{host.address}: SSH user {ssh.user!r}", "is not a user name", hint="give the login name only")
    if ssh.identity_file is not None:
        check_printable(f"{host.address}: SSH identity file", ssh.identity_file)
    for key, value in ssh.options:
        if not SSH_OPTION_RE.match(key):
            raise _refuse(f"{host.address}: SSH option {key!r}", "is not an OpenSSH option name")
        check_printable(f"{host.address}: SSH option {key}", value)


def check_labels(extra: Iterable[str]) -> None:
    for key in extra:
        if key in SPARKRUN_LABELS:
            raise _refuse(f"--label {key}", f"is sparkrun's own label ({LABEL}.{key}), which status and stop rely on")


def check_job(job: JobPlan, extra_labels: Iterable[str] = ()) -> JobPlan:
    """Refuse a planned job whose values cannot reach its hosts literally (see the module doc); returns it."""
    check_labels(extra_labels)
    check_image("image", job.image)
    check_printable(f"{job.recipe_source}: model", job.model)
    check_printable("served model name", job.served_model_name)
    check_printable(
        f"{job.recipe_source}: readiness.prompt", job.readiness.prompt.replace("\n", " ").replace("\t", " ")
    )
    check_text("Hugging Face cache path", job.hf_cache)
    for rank in job.ranks:
        check_host(rank.host)
        check_rank(rank)
    for hook in (*job.post_exec, *job.post_commands):
        check_text(f"hook {hook.label}", hook.command)
    for copy in job.copies:
        check_printable(f"{copy.label}: destination", copy.dest)
    return job
