#!/usr/bin/env bash
# lib.sh: helpers for every sparkrun host script. Concatenated after the preamble, before the script body.
# Protocol (parsed by sparkrun/transport/protocol.py): lines "@sr KEY VALUE" on stdout are events;
# "@sr-begin NAME" ... "@sr-end NAME" wrap a block of raw lines. A script whose stdout is data (a byte stream)
# gets SR_EVENT_FD=2 in its preamble, and its events go to stderr instead.

# sr_emit KEY VALUE...: one event line (newlines in VALUE are flattened).
sr_emit() {
  local key=$1
  shift
  local value="$*"
  printf '@sr %s %s\n' "$key" "${value//$'\n'/ }" >&"${SR_EVENT_FD:-1}"
}

# sr_fail STEP CAUSE...: report the failed step and its cause, then exit 1.
sr_fail() {
  local step=$1
  shift
  sr_emit fail "$step $*"
  exit 1
}

# sr_block NAME: copy stdin into a named block.
sr_block() {
  {
    printf '@sr-begin %s\n' "$1"
    awk 1
    printf '@sr-end %s\n' "$1"
  } >&"${SR_EVENT_FD:-1}"
}

sr_have() { command -v "$1" >/dev/null 2>&1; }

# sr_require_docker: fail clearly when docker is missing or its daemon is unreachable.
sr_require_docker() {
  sr_have docker || sr_fail docker "docker is not installed"
  local err
  if ! err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then
    sr_fail docker "cannot reach the docker daemon: ${err##*$'\n'}"
  fi
}

# sr_gpu_summary: "COUNT NAME" of this host's GPUs as nvidia-smi lists them ("0 none" without nvidia-smi).
sr_gpu_summary() {
  local gpus
  if ! sr_have nvidia-smi; then
    printf '0 none'
    return
  fi
  gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sed -e 's/^ *//' -e 's/ *$//')
  printf '%s %s' "$(printf '%s\n' "$gpus" | grep -c .)" "$(printf '%s\n' "$gpus" | head -n1)"
}

# sr_docker_alive: fail clearly when the docker daemon stopped answering in the middle of a step.
sr_docker_alive() {
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    sr_fail docker "the docker daemon stopped answering (was dockerd stopped or restarted?)"
}

# sr_log_tail CONTAINER LINES: the container's last log lines as block "log".
sr_log_tail() {
  docker logs --tail "$2" "$1" 2>&1 | sr_block log
}

# sr_state CONTAINER: "running", "exited CODE", "created", ... or "missing".
sr_state() {
  local s
  s=$(docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>/dev/null) || { echo missing; return 0; }
  case $s in
    running*) echo running ;;
    *) echo "$s" ;;
  esac
}

# sr_port_open ADDR PORT: true when something accepts TCP connections on ADDR:PORT.
sr_port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# sr_now: seconds since the epoch with a fraction (for timings).
sr_now() { date +%s.%N; }

sr_elapsed() {  # sr_elapsed START
  awk -v a="$1" -v b="$(sr_now)" 'BEGIN { printf "%.1f", b - a }'
}

# sr_docker_error TEXT: the line of docker's stderr that says what went wrong. Docker puts the error first and may
# follow it with usage text ("See 'docker run --help'", "Usage: ...", "Run '... --help' for more information"),
# which says nothing: prefer a "docker: ..." / "Error ..." / "invalid ..." / "unknown ..." line, else the first line.
sr_docker_error() {
  local line first=""
  while IFS= read -r line; do
    [ -n "${line// /}" ] || continue
    case $line in
      "Run '"*"--help'"* | "See '"*"--help'"* | "Usage:"*) continue ;;
      docker:* | Error* | error* | invalid* | unknown*)
        printf '%s' "$line"
        return 0
        ;;
    esac
    [ -n "$first" ] || first=$line
  done <<<"$1"
  printf '%s' "${first:-unknown docker error}"
}

# sr_lease_dir JOB: where this host keeps the launch lease of JOB (lease.sh, lease_watchdog.sh).
sr_lease_dir() { printf '%s/.cache/sparkrun/lease/%s' "${HOME:-/tmp}" "$1"; }
