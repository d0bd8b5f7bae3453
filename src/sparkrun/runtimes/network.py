"""The output of `sparkrun/shell/ib_detect.sh`, parsed and validated, and how it joins a rank's container env.

The script runs on each host at launch (inputs `HEAD_ADDRESS`, `IB_TOPOLOGY`, `SYSFS_ROOT` in its preamble) and
prints `KEY=VALUE` lines. `parse_ib_detect_output` accepts only the keys it knows, each with a value of the expected
shape, and rejects anything else (a host's output is never trusted into a container env unchecked). The
`SPARKRUN_*` keys are facts for the core (management interface and address, CX7 addresses for transfers); the rest
is container env. In that env a rank's own `RankSpec.env` (recipe env + per-rank variables) wins over the detected
values: `merge_container_env(detected, rank_env)`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Final

IB_DETECT_SCRIPT: Final = "ib_detect.sh"

_IFNAME = r"[A-Za-z0-9_.:@-]{1,15}"
_IFNAME_LIST = re.compile(rf"^[\^=]?{_IFNAME}(,{_IFNAME})*$")
_HCA = r"[A-Za-z0-9_.-]{1,64}(:[0-9]{1,3})?"
_HCA_LIST = re.compile(rf"^[\^=]?{_HCA}(,{_HCA})*$")
_UCX_LIST = re.compile(rf"^({_HCA}|all)(,{_HCA})*$")
_INDEX = re.compile(r"^[0-9]{1,4}$")
_BIT = re.compile(r"^[01]$")
_WORD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def _is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.match(value) is not None


_VALIDATORS: Final[Mapping[str, Callable[[str], bool]]] = {
    "NCCL_IB_DISABLE": _matches(_BIT),
    "NCCL_IB_HCA": _matches(_HCA_LIST),
    "NCCL_IB_GID_INDEX": _matches(_INDEX),
    "NCCL_SOCKET_IFNAME": _matches(_IFNAME_LIST),
    "NCCL_IB_MERGE_NICS": _matches(_BIT),
    "NCCL_IB_SUBNET_AWARE_ROUTING": _matches(_BIT),
    "NCCL_NET_PLUGIN": _matches(_WORD),
    "UCX_NET_DEVICES": _matches(_UCX_LIST),
    "GLOO_SOCKET_IFNAME": _matches(_IFNAME_LIST),
    "TP_SOCKET_IFNAME": _matches(_IFNAME_LIST),
    "OMPI_MCA_btl_tcp_if_include": _matches(_IFNAME_LIST),
    "SPARKRUN_MGMT_IFNAME": _matches(re.compile(rf"^{_IFNAME}$")),
    "SPARKRUN_MGMT_ADDRESS": _is_ipv4,
    "SPARKRUN_IB_ADDRESSES": lambda value: all(_is_ipv4(part) for part in value.split(",")),
}

FACT_PREFIX: Final = "SPARKRUN_"


def ib_detect_script() -> str:
    """The text of `sparkrun/shell/ib_detect.sh` (package data)."""
    return files("sparkrun").joinpath("shell", IB_DETECT_SCRIPT).read_text(encoding="utf-8")


def parse_ib_detect_output(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines → dict. Blank lines are skipped; an unknown key, a duplicate, or a value of the wrong shape
    raises ValueError naming the line (the core reports it as that host's ib-detect step failing)."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            raise ValueError(f"ib_detect output line {number}: not KEY=VALUE: {line!r}")
        key, value = match.groups()
        check = _VALIDATORS.get(key)
        if check is None:
            raise ValueError(f"ib_detect output line {number}: unknown key {key!r}")
        if key in found:
            raise ValueError(f"ib_detect output line {number}: {key} given twice")
        if not value or not check(value):
            raise ValueError(f"ib_detect output line {number}: bad value for {key}: {value!r}")
        found[key] = value
    return found


def ib_container_env(detected: Mapping[str, str]) -> dict[str, str]:
    """The container env part of a parsed report (without the `SPARKRUN_*` facts)."""
    return {key: value for key, value in detected.items() if not key.startswith(FACT_PREFIX)}


def ib_addresses(detected: Mapping[str, str]) -> tuple[str, ...]:
    """The host's RDMA (CX7) IPv4 addresses, for transfers over the fast network."""
    raw = detected.get("SPARKRUN_IB_ADDRESSES", "")
    return tuple(raw.split(",")) if raw else ()


def merge_container_env(detected: Mapping[str, str], rank_env: Mapping[str, str]) -> dict[str, str]:
    """Detected network env < the rank's own env (recipe env, per-rank variables): a recipe that pins
    NCCL_SOCKET_IFNAME or NCCL_IB_HCA keeps its values."""
    merged = ib_container_env(detected)
    merged.update(rank_env)
    return merged
