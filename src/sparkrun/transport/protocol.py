"""How host scripts report back: plain stdout lines, of which those starting with `@sr ` are events.

    @sr KEY VALUE...          one event (VALUE is the rest of the line)
    @sr-begin NAME            a block of raw lines (e.g. a log tail) ...
    @sr-end NAME

Written by the helpers in `shell/lib.sh` (`sr_emit`, `sr_fail`, `sr_block`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVENT = "@sr "
BEGIN = "@sr-begin "
END = "@sr-end "


@dataclass
class Output:
    events: list[tuple[str, str]] = field(default_factory=list)
    blocks: dict[str, str] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)  # lines that are not protocol

    def all(self, key: str) -> list[str]:
        return [value for k, value in self.events if k == key]

    def last(self, key: str) -> str | None:
        values = self.all(key)
        return values[-1] if values else None


def parse_event(line: str) -> tuple[str, str] | None:
    if not line.startswith(EVENT):
        return None
    key, _, value = line[len(EVENT) :].partition(" ")
    return key, value


def parse_output(stdout: str) -> Output:
    out = Output()
    block: str | None = None
    buf: list[str] = []
    for line in stdout.splitlines():
        if block is not None:
            if line == END + block:
                out.blocks[block] = "\n".join(buf).rstrip("\n")
                block, buf = None, []
            else:
                buf.append(line)
            continue
        if line.startswith(BEGIN):
            block = line[len(BEGIN) :].strip()
            continue
        event = parse_event(line)
        if event is not None:
            out.events.append(event)
        else:
            out.text.append(line)
    if block is not None:  # truncated output: keep what arrived
        out.blocks[block] = "\n".join(buf)
    return out
