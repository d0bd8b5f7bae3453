#!/usr/bin/env bash
# pipe_to.sh: run SOURCE_SCRIPT on this host and pipe its stdout straight into SINK_SCRIPT on another host, over SSH
# from this host (host to host: the bytes never pass through the control machine).
# Inputs (preamble): SINK_SSH (array: the command that reaches the sink, up to the remote command),
#   SINK_COMMAND (the sink's bootstrap command), SINK_SCRIPT (the sink's script text, sent ahead of the data),
#   SOURCE_SCRIPT (the source's script text; its events go to stderr). This script's stdin is the source's stdin.
# Output: the sink's stdout, then block "source" (the source's stderr) and event "pipe SOURCE_STATUS SINK_STATUS".
# shellcheck disable=SC2154  # inputs come from the preamble

src_err=$(mktemp "${TMPDIR:-/tmp}/sparkrun-pipe.XXXXXX") || sr_fail pipe "cannot create a temporary file"
{
  printf '%s' "$SINK_SCRIPT"
  bash /dev/fd/3 3<<<"$SOURCE_SCRIPT" 2>"$src_err"
} | "${SINK_SSH[@]}" "$SINK_COMMAND"
codes=("${PIPESTATUS[@]}")
sr_block source <"$src_err"
rm -f "$src_err"
sr_emit pipe "${codes[0]} ${codes[1]}"
