"""What every stand-in shares: knobs, logging, life cycle (signals, failures), GPU and model checks."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType


def knob(name: str, default: str) -> str:
    return os.environ.get(name, default)


def knob_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def version_from_list(list_name: str, pattern: str, fallback: str) -> str:
    """The engine version recorded in a flag list's header (the lists were read from that release)."""
    from .flags import FLAGS_DIR

    try:
        text = (FLAGS_DIR / f"{list_name}.txt").read_text()
    except OSError:
        return fallback
    m = re.search(pattern, text)
    return m.group(1) if m else fallback


class Log:
    """Engine-like log lines on stdout, flushed at once (container logs and `tail -f` see them live)."""

    def __init__(self, style: Callable[[str, str], str]) -> None:
        self.style = style
        self.lock = threading.Lock()

    def _emit(self, level: str, message: str) -> None:
        with self.lock:
            for line in message.splitlines() or [""]:
                sys.stdout.write(self.style(level, line) + "\n")
            sys.stdout.flush()

    def info(self, message: str) -> None:
        self._emit("INFO", message)

    def warning(self, message: str) -> None:
        self._emit("WARNING", message)

    def error(self, message: str) -> None:
        self._emit("ERROR", message)

    def raw(self, message: str) -> None:
        with self.lock:
            sys.stdout.write(message + "\n")
            sys.stdout.flush()


def vllm_style(level: str, line: str) -> str:
    return f"{level} {time.strftime('%m-%d %H:%M:%S')} [standin] {line}"


def plain_style(_level: str, line: str) -> str:
    return line


def warn_unknown(log: Log, unknown: list[str], engine: str) -> None:
    """One warning line per accepted flag that is not in the engine's list (it may belong to another version)."""
    for flag in unknown:
        log.warning(f"unrecognized argument {flag}: not in {engine}'s flag list (another version's flag?); ignored")


class Fail(Exception):
    """Raised by an engine for a failure the real engine would report; exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Stopped(Exception):
    """Unwind: the life cycle has already stopped (signal) or failed (the message is logged)."""


class Lifecycle:
    """Stop/failure bookkeeping. SIGTERM/SIGINT stop with status 0; :meth:`fail` stops with an error status."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.stopped = threading.Event()
        self.code = 0
        self.signalled = False
        self._lock = threading.Lock()
        self.on_stop: list[Callable[[], None]] = []

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopped.is_set():
            self.signalled = True
            self.log.info(f"Received {signal.Signals(signum).name}, shutting down")
        self.stopped.set()

    def fail(self, message: str, code: int = 1) -> None:
        with self._lock:
            if self.stopped.is_set():
                return
            self.code = code
            self.log.error(message)
            self.stopped.set()

    def expect(self, ok: bool) -> None:
        """Raise Stopped unless `ok` (helpers return False after calling fail() or when a signal came)."""
        if not ok:
            raise Stopped

    def run(self, body: Callable[[], None]) -> int:
        """Run the engine body, turn Fail into a logged failure, then wait until stopped; the exit status."""
        try:
            body()
        except Fail as e:
            self.fail(str(e), e.code)
        except Stopped:
            pass
        return self.wait()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when the full time passed."""
        deadline = time.monotonic() + seconds
        while not self.stopped.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self.stopped.wait(min(left, 0.2))
        return False

    def wait(self) -> int:
        while not self.stopped.is_set():
            self.stopped.wait(0.2)
        for hook in self.on_stop:
            try:
                hook()
            except Exception as e:  # a shutdown hook must not turn a clean stop into a crash
                self.log.warning(f"shutdown: {e}")
        return self.code


def startup(life: Lifecycle, engine: str) -> bool:
    """The "model loading" phase with the fault knobs applied. False when stopped or failed meanwhile."""
    seconds = max(0.0, knob_float("STANDIN_STARTUP_SECONDS", 1.0))
    if knob("STANDIN_FAIL", "") == "startup":
        if not life.sleep(seconds / 2):
            return False
        life.fail(
            f"{engine} crashed during start-up (STANDIN_FAIL=startup)\n"
            "Traceback (most recent call last):\n"
            "RuntimeError: Engine core initialization failed. See root cause above.",
            int(knob("STANDIN_FAIL_EXIT", "1")),
        )
        return False
    return life.sleep(seconds)


def arm_ready_failure(life: Lifecycle, engine: str) -> None:
    if knob("STANDIN_FAIL", "") != "ready":
        return

    def crash() -> None:
        if life.sleep(knob_float("STANDIN_FAIL_AFTER", 1.0)):
            life.fail(f"{engine} crashed after start-up (STANDIN_FAIL=ready)", int(knob("STANDIN_FAIL_EXIT", "1")))

    threading.Thread(target=crash, daemon=True).start()


# -- GPUs ------------------------------------------------------------------------------------------------------
def visible_gpus() -> int | None:
    """GPUs this process may use, from NVIDIA_VISIBLE_DEVICES (set by `docker run --gpus`); None = no check."""
    if knob("STANDIN_REQUIRE_GPU", "0") != "1":
        return None
    dev = os.environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if dev in ("", "void", "none"):
        return 0
    if dev == "all":
        return int(knob("STANDIN_GPUS", "1"))
    return len([d for d in dev.split(",") if d.strip()])


def gpus_for_ray() -> int:
    n = visible_gpus()
    return int(knob("STANDIN_GPUS", "1")) if n is None else n


# -- models ----------------------------------------------------------------------------------------------------
def hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def looks_local(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~"))


def model_problem(model: str, quant: str | None = None) -> str | None:
    """With STANDIN_CHECK_MODEL=1: why the real engine would fail to find `model` offline, else None."""
    if knob("STANDIN_CHECK_MODEL", "0") != "1":
        return None
    if looks_local(model):
        return None if Path(os.path.expanduser(model)).exists() else f"No such file or directory: '{model}'"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True", "YES", "yes"):
        return None
    repo = hf_hub_cache() / ("models--" + model.replace("/", "--"))
    snaps = [p for p in (repo / "snapshots").glob("*") if p.is_dir()] if repo.is_dir() else []
    if not snaps or not any(any(s.iterdir()) for s in snaps):
        return (
            f"OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in "
            f"the cached files (looked in {repo}). Check your internet connection or see how to run the library "
            "in offline mode at 'https://huggingface.co/docs/transformers/installation#offline-mode'."
        )
    if quant and not any(quant.lower() in f.name.lower() for s in snaps for f in s.rglob("*.gguf")):
        return f"error: no GGUF file matching '{quant}' in {repo}"
    return None


# -- networking helpers ----------------------------------------------------------------------------------------
def split_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{what} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def local_ip_towards(host: str) -> str:
    """The local address used to reach `host` (what a node advertises)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def default_node_ip() -> str:
    """This node's address when none is given: the default route's source, else what the hostname resolves to
    (/etc/hosts on a testbed host, copied into --network host containers), else loopback."""
    ip = local_ip_towards("10.255.255.255")
    if not ip.startswith("127."):
        return ip
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return ip
