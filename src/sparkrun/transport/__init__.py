"""The one seam through which sparkrun affects hosts (see `base.py` for the contract).

`SshTransport` (OpenSSH with ControlMaster; local hosts through bash), `LocalTransport` (everything on this machine)
and `FakeTransport` (in memory, for tests) implement `Transport`.
"""

from sparkrun.shell import Script
from sparkrun.transport.base import Channel, Direct, PipeResult, Result, Stream, Transport

__all__ = ["Channel", "Direct", "PipeResult", "Result", "Script", "Stream", "Transport"]
