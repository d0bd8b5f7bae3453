"""Open MPI stand-ins as the trtllm runtime uses them: `mpirun` and TensorRT-LLM's `trtllm-llmapi-launch`.

`mpirun [options] PROGRAM [ARGS]` honours `--allow-run-as-root` (refuses root without it, like Open MPI),
`--mca plm_rsh_agent AGENT`, `--mca rmaps_ppr_n_pernode N`, `-H/--host a,b[:slots]`, `-np N`, `-x VAR[=VALUE]` and
`--oversubscribe`. It runs a wire-up hub on a free TCP port, starts rank r on its host (locally when the host is
one of this machine's addresses, else through the rsh agent as `AGENT HOST 'env' 'VAR=…' 'PROGRAM' …`, each word
quoted for the remote shell, like Open MPI's ssh launch) with OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE/
NODE_RANK and STANDIN_MPI_HNP (the hub, in place of Open MPI's HNP URI), forwards every rank's output to its own,
fails the job when a rank exits non-zero or loses the hub, and on SIGTERM tells the ranks to stop and exits 0.

`trtllm-llmapi-launch PROGRAM [ARGS]` joins the hub as its rank; rank 0 then runs PROGRAM (trtllm-serve in-process,
with the MPI world size), the other ranks wait for work from rank 0 until mpirun stops them.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

from .flags import Dialect, FlagSet, Parsed, UsageError
from .rendezvous import Rendezvous
from .runtime import Fail, Lifecycle, Log, knob_float, local_ip_towards, plain_style, split_hostport, warn_unknown

FLAGS = FlagSet.load(
    "mpirun", dialect=Dialect(equals=True, stop_at_positional=True), nargs={"--mca": "2", "--gmca": "2"}
)
VERSION = "4.1.7"
HNP_ENV = "STANDIN_MPI_HNP"


@dataclass
class Rank:
    rank: int
    host: str
    node: int  # index of the host
    local_rank: int
    local_size: int


def mca_params(p: Parsed) -> dict[str, str]:
    values = p.get_all("--mca") + p.get_all("--gmca")
    return dict(zip(values[0::2], values[1::2], strict=True))


def hosts_and_slots(p: Parsed) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for entry in ",".join(p.get_all("--host")).split(","):
        if not entry:
            continue
        name, _, slots = entry.partition(":")
        found.append((name, int(slots) if slots.isdigit() else 1))
    return found or [("localhost", 1)]


def place(p: Parsed, mca: dict[str, str]) -> list[Rank]:
    """Rank → host, like Open MPI's mappers: `ppr` N per node when set, else by slot; refuses oversubscription."""
    hosts = hosts_and_slots(p)
    per_node = int(mca.get("rmaps_ppr_n_pernode", "0") or 0)
    capacity = [per_node] * len(hosts) if per_node else [slots for _, slots in hosts]
    np_ = p.get_int("--np", sum(capacity))
    if np_ > sum(capacity) and not p.flag("--oversubscribe"):
        raise Fail(
            f"There are not enough slots available in the system to satisfy the {np_} slots that were requested "
            f"by the application: {' '.join(p.positionals[:1])}"
        )
    nodes = [n for n, cap in enumerate(capacity) for _ in range(cap)] or [0]
    nodes = [nodes[r % len(nodes)] for r in range(np_)]
    return [Rank(r, hosts[n][0], n, nodes[:r].count(n), nodes.count(n)) for r, n in enumerate(nodes)]


def is_local(host: str) -> bool:
    """True when `host` names this machine (an address we can bind, or localhost)."""
    if host in ("localhost", socket.gethostname()):
        return True
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def root_refused(p: Parsed) -> bool:
    allowed = (
        os.environ.get("OMPI_ALLOW_RUN_AS_ROOT") == "1" and os.environ.get("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM") == "1"
    )
    return os.geteuid() == 0 and not p.flag("--allow-run-as-root") and not allowed


def exports(p: Parsed) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in p.get_all("-x"):
        name, eq, value = item.partition("=")
        if eq:
            out[name] = value
        elif name in os.environ:
            out[name] = os.environ[name]
    return out


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-V"]):
        print(f"mpirun (Open MPI) {VERSION}\n\nReport bugs to http://www.open-mpi.org/community/help/")
        return 0
    try:
        p = FLAGS.parse(argv)
    except UsageError as e:
        print(f"mpirun: Error: {str(e).replace('unrecognized arguments', 'unknown option')}", file=sys.stderr)
        return 1
    if p.flag("--help"):
        print("mpirun (Open MPI) 4.1.7\n\nUsage: mpirun [OPTION]...  [PROGRAM]...")
        return 0
    if not p.positionals:
        print("No executable was specified on the mpirun command line.\n\nAborting.", file=sys.stderr)
        return 1
    if root_refused(p):
        print(
            "mpirun has detected an attempt to run as root.\n\nRunning as root is *strongly* discouraged ...\n"
            "We strongly suggest that you run mpirun as a non-root user.\n\nYou can override this protection by "
            "adding the --allow-run-as-root option to the cmd line or by setting two environment variables in the "
            "environment: OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
            file=sys.stderr,
        )
        return 1
    log = Log(plain_style)
    life = Lifecycle(log)
    life.install_signals()
    return life.run(lambda: Job(p, life, log).start())


class Job:
    def __init__(self, p: Parsed, life: Lifecycle, log: Log) -> None:
        self.p, self.life, self.log = p, life, log
        self.mca = mca_params(p)
        self.program = p.positionals
        self.procs: list[tuple[Rank, subprocess.Popen[str]]] = []
        self.tag = p.flag("--tag-output")

    def agent(self) -> list[str]:
        raw = self.mca.get("plm_rsh_agent", "ssh : rsh").split(":")[0]
        return shlex.split(raw)

    def start(self) -> None:
        warn_unknown(self.log, self.p.unknown, f"mpirun (Open MPI) {VERSION}")
        ranks = place(self.p, self.mca)
        hub = Rendezvous(
            "mpi", len(ranks), 0, "0.0.0.0", 0, self.life, self.log, "mpirun", listen=True, peer_error=lost_rank
        )
        hub.serve()
        self.life.on_stop.append(self.stop_ranks)
        for rank in ranks:
            self.launch(rank, hub.port, len(ranks))
        threading.Thread(target=self.wire_up_deadline, args=(hub,), daemon=True).start()
        threading.Thread(target=self.watch_ranks, daemon=True).start()

    def rank_env(self, rank: Rank, hub_port: int, total: int) -> dict[str, str]:
        hub = "127.0.0.1" if is_local(rank.host) else local_ip_towards(_ip_of(rank.host))
        return {
            **exports(self.p),
            "OMPI_COMM_WORLD_RANK": str(rank.rank),
            "OMPI_COMM_WORLD_SIZE": str(total),
            "OMPI_COMM_WORLD_LOCAL_RANK": str(rank.local_rank),
            "OMPI_COMM_WORLD_LOCAL_SIZE": str(rank.local_size),
            "OMPI_COMM_WORLD_NODE_RANK": str(rank.node),
            HNP_ENV: f"{hub}:{hub_port}",
        }

    def launch(self, rank: Rank, hub_port: int, total: int) -> None:
        env = self.rank_env(rank, hub_port, total)
        if is_local(rank.host):
            argv, proc_env = list(self.program), {**os.environ, **env}
        else:
            words = ["env", *(f"{k}={v}" for k, v in env.items()), *self.program]
            argv, proc_env = [*self.agent(), rank.host, *(shlex.quote(w) for w in words)], dict(os.environ)
        try:
            proc = subprocess.Popen(
                argv,
                env=proc_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except OSError as e:
            raise Fail(
                f"mpirun was unable to launch the specified application as it could not access or execute "
                f"an executable:\n\nExecutable: {argv[0]}\nNode: {rank.host}\n\nwhile attempting to start "
                f"process rank {rank.rank}. ({e.strerror})"
            ) from None
        self.procs.append((rank, proc))
        threading.Thread(target=self.forward, args=(rank, proc), daemon=True).start()

    def forward(self, rank: Rank, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        prefix = f"[1,{rank.rank}]<stdout>:" if self.tag else ""
        for line in proc.stdout:
            self.log.raw(prefix + line.rstrip("\n"))

    def watch_ranks(self) -> None:
        while not self.life.stopped.is_set():
            codes = [(rank, proc.poll()) for rank, proc in self.procs]
            for rank, code in codes:
                if code not in (None, 0):
                    self.life.fail(
                        "--------------------------------------------------------------------------\n"
                        "mpirun detected that one or more processes exited with non-zero status, thus causing\n"
                        "the job to be terminated. The first process to do so was:\n\n"
                        f"  Process name: [[4242,1],{rank.rank}]\n  Exit code:    {code}\n"
                        "--------------------------------------------------------------------------",
                        code if code > 0 else 1,
                    )
                    return
            if all(code == 0 for _, code in codes):
                self.life.stopped.set()  # every rank finished
                return
            self.life.stopped.wait(0.2)

    def wire_up_deadline(self, hub: Rendezvous) -> None:
        timeout = knob_float("STANDIN_RENDEZVOUS_TIMEOUT", 60.0)
        if hub.all_joined.wait(timeout) or self.life.stopped.is_set():
            return
        self.life.fail(
            f"ORTE was unable to reliably start one or more daemons: only {len(hub.members)} of "
            f"{hub.nnodes} processes reported back within {timeout:g}s (check the rsh agent and the remote hosts)"
        )

    def stop_ranks(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def lost_rank(who: str, detail: str) -> str:
    return (
        "--------------------------------------------------------------------------\n"
        f"mpirun lost contact with process {who} ({detail}); terminating the job\n"
        "--------------------------------------------------------------------------"
    )


def _ip_of(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


# -- trtllm-llmapi-launch ------------------------------------------------------------------------------------------
def llmapi_launch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: trtllm-llmapi-launch PROGRAM [ARGS...]")
        return 0 if argv else 2
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0") or 0)
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1)
    hnp = os.environ.get(HNP_ENV)
    serve = os.path.basename(argv[0]) == "trtllm-serve"
    if hnp is None:
        if serve:
            from .trtllm import main as trtllm_main

            return trtllm_main(argv[1:])
        os.execvp(argv[0], argv)
    from .trtllm import command_line, parse, run, style

    plan = None
    if serve and rank == 0:
        args = command_line(argv[1:])
        try:
            plan = parse(args) if isinstance(args, list) else None
        except UsageError as e:
            print(f"Error: {e}", file=sys.stderr)
            return 2
    log = Log(style)
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        try:
            addr, port = split_hostport(hnp, HNP_ENV)
        except ValueError as e:
            raise Fail(str(e)) from None
        Rendezvous("mpi", size, rank, addr, port, life, log, "mpirun", listen=False).run()
        if rank > 0:
            log.info(f"[RANK {rank}] MPI worker ready (world size {size}); waiting for tasks from rank 0")
        elif plan is not None:
            run(plan, life, log, size)
        else:
            code = subprocess.call(argv)
            if code:
                life.fail(f"{argv[0]} exited with status {code}", code)
            else:
                life.stopped.set()

    return life.run(body)
