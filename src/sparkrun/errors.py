"""The one error hierarchy. Every failure a user can cause or meet is a `SparkrunError`.

The CLI prints `str(error)` as one line (plus the hint on a second line) and exits with `exit_code`;
a traceback appears only with `-vv`. The exit codes are part of the public interface (README, "Exit codes").
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in sparkrun: please report it
    USAGE = 2  # bad command-line usage (Click's own code)
    INPUT = 3  # invalid or missing input: recipe, config, cluster, plugin
    HOST = 4  # a host could not be reached or lacks something (ssh, docker, image)
    WORKLOAD = 5  # the workload failed: engine exited, readiness timed out
    PARTIAL = 6  # the operation succeeded on some hosts and failed on others
    REFUSED = 7  # refused for safety: untrusted recipe needs --trust
    WARNINGS = 8  # `recipe validate --strict` found warnings
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


class SparkrunError(Exception):
    """Base class. `message` is one line; `hint` says what to do about it."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail  # extra lines (e.g. a log tail) shown under the message

    def __str__(self) -> str:
        return self.message


class UsageError(SparkrunError):
    exit_code = ExitCode.USAGE


class InputError(SparkrunError):
    """Bad input: a recipe, config file, cluster definition or option value."""

    exit_code = ExitCode.INPUT


class ConfigError(InputError):
    pass


class RecipeError(InputError):
    pass


class PluginError(InputError):
    pass


class HostError(SparkrunError):
    """A step on a host failed. The message always names the host and the step."""

    exit_code = ExitCode.HOST

    def __init__(self, host: str, step: str, cause: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(f"{host}: {step}: {cause}", hint=hint, detail=detail)
        self.host = host
        self.step = step
        self.cause = cause


class WorkloadError(HostError):
    """The engine itself failed (exited, never became ready)."""

    exit_code = ExitCode.WORKLOAD


class PartialFailure(SparkrunError):
    exit_code = ExitCode.PARTIAL


class TrustError(SparkrunError):
    exit_code = ExitCode.REFUSED


class Refused(SparkrunError):
    """Refused for safety (e.g. a plan whose memory estimate does not fit; `--force` overrides)."""

    exit_code = ExitCode.REFUSED


class StrictWarnings(SparkrunError):
    exit_code = ExitCode.WARNINGS


class Interrupted(SparkrunError):
    exit_code = ExitCode.INTERRUPTED
