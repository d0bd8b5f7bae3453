"""Host setup and checks: everything a DGX Spark needs before sparkrun can use it, checked in one read-only round
trip per host and repaired through the core's plan -> apply.

- `runner.HostSetup`: check / plan / apply / fix for a set of hosts (`sparkrun.api.Session.setup` builds one).
- `facts`: what setup_check.sh reports; `checks`: facts -> one line per host and check, each failure with its fix.
- Planners (pure, facts in, `Plan` out, no-ops with reasons): `mesh` (SSH keys and host keys between the hosts),
  `actions` (docker group, cache owner, earlyoom, page cache), `cx7` (addresses, MTU, persisted), `control` (the
  control machine's known_hosts after the user confirmed a scanned key; closing a shared SSH connection).
- `sudo`: root through `sudo -n`, or `sudo -S` with a password asked once per host and sent only as a step's stdin.
- `wizard`: the steps in order for a new or named cluster, then the check.
"""

from sparkrun.setup.checks import CHECKS, CheckLine
from sparkrun.setup.options import Limits, Origin, Prompts, SetupOptions
from sparkrun.setup.report import CheckReport, FixResult, SetupPlan, SetupResult
from sparkrun.setup.runner import ACTIONS, HostSetup
from sparkrun.setup.wizard import WizardResult, new_cluster, run_wizard

__all__ = [
    "ACTIONS",
    "CHECKS",
    "CheckLine",
    "CheckReport",
    "FixResult",
    "HostSetup",
    "Limits",
    "Origin",
    "Prompts",
    "SetupOptions",
    "SetupPlan",
    "SetupResult",
    "WizardResult",
    "new_cluster",
    "run_wizard",
]
