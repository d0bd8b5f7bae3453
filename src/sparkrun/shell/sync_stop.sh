#!/usr/bin/env bash
# sync_stop.sh: end a hop of a copy chain that lost its sender (the host before it went away, so its input never
# ends): SIGTERM to its process group, then SIGKILL after 5 s. Only a group whose leader is still a sparkrun script
# (its command line names one) is touched, so a reused process id is left alone.
# Inputs (preamble): PGID
# Events: stopped PGID | gone PGID
# shellcheck disable=SC2154  # inputs come from the preamble

leader_is_ours() { tr '\0' ' ' <"/proc/$PGID/cmdline" 2>/dev/null | grep -q 'sparkrun-'; }

if ! [[ $PGID =~ ^[0-9]+$ ]] || ((PGID <= 1)) || ! leader_is_ours; then
  sr_emit gone "$PGID"
  exit 0
fi
kill -TERM -- "-$PGID" 2>/dev/null || true
for _ in 1 2 3 4 5 6 7 8 9 10; do
  leader_is_ours || break
  sleep 0.5
done
leader_is_ours && kill -KILL -- "-$PGID" 2>/dev/null
sr_emit stopped "$PGID"
