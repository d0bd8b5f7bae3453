# shellcheck shell=bash
# testbed lib: a real image registry for the hosts (Debian's docker-registry = the Distribution registry, v2 API)
# on the control side at $TB_REGISTRY, plain HTTP (every host's dockerd lists it in insecure-registries). Started on
# demand (`registry start`, `registry push`, TB_REGISTRY_UP=1 at `up`), stopped and emptied by `down`; its data is
# under $TB_STATE/registry. Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

reg_dir() { echo "$TB_STATE/registry"; }
registry_running() { pid_ok "$(reg_dir)/pid" "$(reg_dir)/config.yml"; }
registry_answers() { curl -sf -o /dev/null --max-time 2 "http://$TB_REGISTRY/v2/"; }

registry_start() {
  local d n
  d=$(reg_dir)
  command -v docker-registry >/dev/null || die "docker-registry not found (apt-get install docker-registry)"
  [ -e "/sys/class/net/$TB_ROOTIF" ] || die "the testbed is down: the registry listens on ${TB_REGISTRY%:*}"
  if registry_running; then return 0; fi
  mkdir -p "$d/data"
  cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
http:
  addr: $TB_REGISTRY
health:
  storagedriver:
    enabled: false
EOF
  (exec setsid docker-registry serve "$d/config.yml") </dev/null >>"$d/registry.log" 2>&1 9>&- &
  echo $! >"$d/pid"
  # Wait while the process lives (kill -0: its command line shows config.yml only once setsid has exec'd the
  # registry, so registry_running would end the wait too early on a busy machine); up to 30 s.
  for ((n = 0; n < 600; n++)); do
    registry_answers && { log "registry: http://$TB_REGISTRY (pid $(pid_of "$d/pid"), data $d/data)"; return 0; }
    kill -0 "$(pid_of "$d/pid")" 2>/dev/null || break
    sleep 0.05
  done
  die "the registry did not start: $(tail -n 3 "$d/registry.log" 2>/dev/null | tr '\n' ' ')"
}

registry_stop() { # stop it and drop its data
  kill_pidfile "$(reg_dir)/pid" "$(reg_dir)/config.yml" 5
  rm -rf "$(reg_dir)"
}

# registry_push NAME...: push the engine image as $TB_REGISTRY/NAME (e.g. nvidia/vllm:25.09-py3) from the first
# running host's dockerd; prints each full reference
registry_push() {
  local i name ref
  i=$(running_indices | head -n 1)
  [ -n "$i" ] || die "no host is running"
  registry_start
  for name in "$@"; do
    [[ $name =~ ^[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$ ]] || die "bad image name '$name'"
    [[ $name == *:* ]] || name=$name:latest
    ref=$TB_REGISTRY/$name
    hdocker "$i" tag "$TB_IMAGE" "$ref"
    hdocker "$i" push -q "$ref" >/dev/null || { hdocker "$i" rmi "$ref" >/dev/null 2>&1; die "push of $ref failed"; }
    hdocker "$i" rmi "$ref" >/dev/null # only the tag; h$i keeps $TB_IMAGE
    echo "$ref"
  done
}

cmd_registry() {
  local sub=${1:-status}
  shift || true
  need_root
  case $sub in
    start) take_lock; registry_start ;;
    stop) take_lock; registry_stop; log "registry stopped" ;;
    push) (($#)) || die "usage: registry push NAME[:TAG]..."; take_lock; registry_push "$@" ;;
    status)
      if registry_running && registry_answers; then
        echo "registry: up at http://$TB_REGISTRY (pid $(pid_of "$(reg_dir)/pid"))"
        curl -sf --max-time 5 "http://$TB_REGISTRY/v2/_catalog"
        echo
      else
        echo "registry: down"
        return 1
      fi ;;
    *) die "usage: registry start|stop|status|push NAME[:TAG]..." ;;
  esac
}
