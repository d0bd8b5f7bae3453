#!/usr/bin/env bash
# lease_watchdog.sh DIR JOB TOKEN: guards one launch of JOB on this host; started detached by `lease.sh start`.
# Each second it reads the lease in DIR (files: see lease.sh):
#   confirmed (the launch succeeded)                  -> exit
#   another token (a newer launch of JOB took over)   -> exit, touching nothing
#   active, renewed within ttl seconds                -> keep watching
#   active, not renewed for longer than ttl (the control machine died, slept or was cut off), or revoked (stop.sh):
#     end the launch script's process group, remove every container of JOB here, and keep sweeping until none has
#     been seen for SETTLE seconds (a `docker run` in flight may still create one); while dockerd is unreachable,
#     retry (for up to a day) instead of giving up. Then exit.
# Plain bash + docker + coreutils (no lib.sh: this is not a rendered script); flock(1) when present.
set -u
dir=$1 job=$2 token=$3
readonly SETTLE=${SPARKRUN_LEASE_SETTLE:-5} GIVE_UP_AFTER=86400 # (the variable: for tests)
ttl=$(cat "$dir/ttl" 2>/dev/null || echo 20)

log() { printf '%s watchdog[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
exec 9>>"$dir/lock" || exit 1
lock() { if have flock; then flock 9; fi; }
unlock() { if have flock; then flock -u 9; fi; }
mine() { [ "$(cat "$dir/token" 2>/dev/null)" = "$token" ]; }
age() {
  local m
  m=$(stat -c %Y "$dir/lease" 2>/dev/null) || m=0
  echo $(($(date +%s) - m))
}
set_state() { printf '%s\n' "$1" >"$dir/.state.tmp" && mv -f "$dir/.state.tmp" "$dir/state"; }

proc_start() { # PID: its start time (field 22 of /proc/PID/stat), empty when it is gone
  local s f
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  read -r -a f <<<"${s##*) }"
  printf '%s' "${f[19]}"
}

end_launch() { # the launch script of this lease, if it still runs (pull, rendezvous wait, hooks): end it first
  local pgid start i
  read -r pgid start 2>/dev/null <"$dir/launch" || return 0
  [ -n "$pgid" ] && [ "$(proc_start "$pgid")" = "$start" ] || return 0 # gone, or the number was reused
  log "ending the launch script (process group $pgid)"
  kill -TERM -- "-$pgid" 2>/dev/null
  for ((i = 0; i < 20; i++)); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null
}

remove_containers() { # 0: none left; 1: removed some (look again); 2: dockerd unreachable
  local ids=()
  mapfile -t ids < <(docker ps -aq --filter "label=sparkrun.job=$job" 2>/dev/null; echo "rc=$?")
  [ "${ids[-1]}" = rc=0 ] || return 2
  unset 'ids[-1]'
  [ -n "${ids[*]}" ] || return 0
  docker rm -f "${ids[@]}" >/dev/null 2>&1
  log "removed ${#ids[@]} container(s) of job $job"
  return 1
}

sweep() { # REASON
  local rc clean_since=0 now told="" give_up
  give_up=$(($(date +%s) + GIVE_UP_AFTER))
  log "$1: removing the containers of job $job"
  end_launch
  while :; do
    lock
    if ! mine; then
      unlock
      log "a newer launch of job $job took over: stopping"
      exit 0
    fi
    remove_containers
    rc=$?
    unlock
    now=$(date +%s)
    if [ "$rc" -eq 0 ]; then
      [ "$clean_since" -gt 0 ] || clean_since=$now
      [ $((now - clean_since)) -lt "$SETTLE" ] || break
    else
      clean_since=0
      if [ "$rc" -eq 2 ] && [ -z "$told" ]; then
        log "the docker daemon does not answer: retrying until it does"
        told=1
      fi
      [ "$now" -lt "$give_up" ] || { log "gave up after ${GIVE_UP_AFTER}s"; exit 1; }
    fi
    sleep 1
  done
  log "no container of job $job is left"
}

log "watching the launch of job $job (lease ${ttl}s)"
while :; do
  lock
  if ! mine; then
    unlock
    log "a newer launch of job $job took over"
    exit 0
  fi
  state=$(cat "$dir/state" 2>/dev/null || echo missing)
  if [ "$state" = active ] && [ "$(age)" -gt "$ttl" ]; then
    reason="lease expired (no renewal for $(age)s)"
    set_state expired
    unlock
    sweep "$reason"
    exit 0
  fi
  unlock
  case $state in
    active) ;;
    confirmed)
      log "the launch was confirmed"
      exit 0
      ;;
    revoked)
      sweep "the job was stopped"
      lock
      if mine; then set_state stopped; fi
      unlock
      exit 0
      ;;
    *)
      log "lease state '$state': nothing to guard"
      exit 0
      ;;
  esac
  sleep 1
done
