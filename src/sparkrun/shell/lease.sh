#!/usr/bin/env bash
# lease.sh: the launch lease of one job on this host (see sparkrun/launch/lease.py for the whole design).
# A lease lives in ~/.cache/sparkrun/lease/JOB/: token (which launch owns it), state (active | confirmed | revoked |
# expired), ttl (seconds), ports, recipe, lease (its mtime is the last renewal), launch (the launch script's process
# group), log, lock (flock for every change of state). lease_watchdog.sh removes the job's containers here when an
# active lease is not renewed within ttl seconds, or when stop.sh revokes it.
# Inputs (preamble): ACTION (start | renew | confirm), JOB_ID, LEASE_TOKEN; for start also LEASE_SECONDS, PORTS
#   (array: ports this job's container here uses), RECIPE, WATCHDOG (the text of lease_watchdog.sh)
# Events: lease STATE AGE_SECONDS (renew: always exit 0, the caller reads the state), fail lease CAUSE
# shellcheck disable=SC2154,SC2153  # inputs come from the preamble

dir=$(sr_lease_dir "$JOB_ID")
root=${dir%/*}

lease_flock() { # FD FILE: wait for the flock on FILE, open as FD (no-op where flock(1) is missing)
  if sr_have flock; then flock -w 30 "$1" || sr_fail lease "$2 stays locked by another sparkrun process"; fi
}

lock_root() { exec 8>>"$root/.lock" || sr_fail lease "cannot open $root/.lock"; lease_flock 8 "$root/.lock"; }
lock_dir() { exec 9>>"$dir/lock" || sr_fail lease "cannot open $dir/lock"; lease_flock 9 "$dir/lock"; }

lease_age() { # DIR: seconds since the last renewal (a huge number when there is none)
  local m
  m=$(stat -c %Y "$1/lease" 2>/dev/null) || m=0
  echo $(($(date +%s) - m))
}

lease_put() { # NAME VALUE: write DIR/NAME whole (readers never see half a file)
  printf '%s\n' "$2" >"$dir/.$1.tmp" && mv -f "$dir/.$1.tmp" "$dir/$1"
}

lease_state() { # the state as the watchdog sees it: "superseded" when another launch owns the lease
  if [ "$(cat "$dir/token" 2>/dev/null)" != "$LEASE_TOKEN" ]; then
    echo superseded
  else
    cat "$dir/state" 2>/dev/null || echo missing
  fi
}

forget_finished() { # leases of other jobs whose launch is over (confirmed, or stopped and swept)
  local other
  for other in "$root"/*/; do
    case $(cat "${other}state" 2>/dev/null) in
      confirmed | stopped) [ "${other%/}" = "$dir" ] || rm -rf "${other%/}" ;;
    esac
  done
}

taken_by_starting_job() { # PORT: "JOB (RECIPE, starting)" when another job's live lease here claims PORT
  local other ttl p ports=()
  for other in "$root"/*/; do
    other=${other%/}
    [ "${other##*/}" != "$JOB_ID" ] || continue
    [ "$(cat "$other/state" 2>/dev/null)" = active ] || continue
    ttl=$(cat "$other/ttl" 2>/dev/null || echo 0)
    [ "$(lease_age "$other")" -le "$ttl" ] || continue
    read -r -a ports 2>/dev/null <"$other/ports" || continue
    for p in "${ports[@]}"; do
      [ "$p" != "$1" ] || { printf '%s (%s, starting)' "${other##*/}" "$(cat "$other/recipe" 2>/dev/null)"; return 0; }
    done
  done
  return 1
}

taken_by_container() { # PORT: "JOB (RECIPE, STATE)" when another job's API container here has PORT
  local job port state role recipe
  while read -r job port state role recipe; do
    [ "$job" != "$JOB_ID" ] && [ "$port" = "$1" ] || continue
    case $role:$state in
      head:running | head:created | head:restarting | solo:running | solo:created | solo:restarting)
        printf '%s (%s, %s)' "$job" "$recipe" "$state"
        return 0
        ;;
    esac
  done < <(docker ps -a --filter label=sparkrun.job --format \
    '{{.Label "sparkrun.job"}} {{.Label "sparkrun.port"}} {{.State}} {{.Label "sparkrun.role"}} {{.Label "sparkrun.recipe"}}')
  return 1
}

start() {
  local port who
  sr_require_docker
  if ! mkdir -p "$root" 2>/dev/null || ! chmod 700 "$root"; then sr_fail lease "cannot create $root"; fi
  lock_root # host-wide: checking the ports and taking the lease are one step
  forget_finished
  for port in "${PORTS[@]}"; do
    if who=$(taken_by_starting_job "$port") || who=$(taken_by_container "$port"); then
      sr_fail lease "port $port is taken by job $who"
    fi
  done
  mkdir -p "$dir" || sr_fail lease "cannot create $dir"
  lock_dir
  # The token first: a watchdog of an earlier launch of this job sees it, and stands down before touching anything.
  lease_put token "$LEASE_TOKEN"
  lease_put ttl "$LEASE_SECONDS"
  lease_put ports "${PORTS[*]}"
  lease_put recipe "$RECIPE"
  rm -f "$dir/launch"
  touch "$dir/lease"
  lease_put state active
  printf '%s\n' "$WATCHDOG" >"$dir/watchdog.sh" || sr_fail lease "cannot write $dir/watchdog.sh"
  # Detached: its own session, no terminal, nothing of this SSH session open (it outlives the connection).
  if sr_have setsid; then
    setsid bash "$dir/watchdog.sh" "$dir" "$JOB_ID" "$LEASE_TOKEN" </dev/null >>"$dir/log" 2>&1 8>&- 9>&- &
  else
    nohup bash "$dir/watchdog.sh" "$dir" "$JOB_ID" "$LEASE_TOKEN" </dev/null >>"$dir/log" 2>&1 8>&- 9>&- &
  fi
  lease_put watchdog.pid "$!"
  sr_emit lease "active 0"
}

renew() {
  local state age
  [ -d "$dir" ] || { sr_emit lease "missing 0"; exit 0; }
  lock_dir
  state=$(lease_state)
  age=$(lease_age "$dir")
  if [ "$state" = active ] && [ "$age" -le "$(cat "$dir/ttl")" ]; then
    touch "$dir/lease"
    sr_emit lease "active $age"
  else
    [ "$state" != active ] || state=expired # past its term: the watchdog is acting on it right now
    sr_emit lease "$state $age"
  fi
}

confirm() {
  local state age
  [ -d "$dir" ] || sr_fail lease "the launch lease is gone from this host (was the job stopped?)"
  lock_dir
  state=$(lease_state)
  age=$(lease_age "$dir")
  [ "$state" != active ] || [ "$age" -le "$(cat "$dir/ttl")" ] || state=expired
  case $state in
    active)
      lease_put state confirmed
      sr_emit lease "confirmed $age"
      ;;
    expired) sr_fail lease "the launch lease expired (no renewal for ${age}s): the host's watchdog removed the job's containers" ;;
    revoked) sr_fail lease "the job was stopped on this host while it was starting (its lease was revoked)" ;;
    superseded) sr_fail lease "another launch of the same job took over this host" ;;
    *) sr_fail lease "the launch lease is in state '$state'" ;;
  esac
}

case $ACTION in
  start) start ;;
  renew) renew ;;
  confirm) confirm ;;
  *) sr_fail lease "unknown action $ACTION" ;;
esac
