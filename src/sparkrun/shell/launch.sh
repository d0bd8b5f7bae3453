# launch.sh: start one rank's container and wait until it is up (its port listens, or it stays running).
# Inputs (preamble):
#   CONTAINER   container name            IMAGE        image to run
#   DOCKER_OPTS array: `docker run` options (labels, env, gpus, ...) without the image
#   ENTRYPOINT  the engine program; CMD  array: its arguments (the container's main process is the engine; passing
#               the program as --entrypoint keeps an image's own ENTRYPOINT from being prepended)
#   HF_CACHE    Hugging Face cache dir on this host ("~/" = this user's home), mounted at /cache/huggingface
#   MOUNTS      array of SOURCE:TARGET:ro|rw host paths to mount ("~/" = this user's home); a missing SOURCE fails
#   IB_DETECT   text of ib_detect.sh to run here for NCCL/UCX env (empty: skip); HEAD_ADDRESS for it
#   SECRET_ENV  array of KEY=VALUE passed through a private --env-file (never on a command line)
#   PULL        "missing": docker pull when the image is absent; "never": fail instead
#   WAIT_ADDR / WAIT_PORT / WAIT_TIMEOUT   after start, wait for WAIT_ADDR:WAIT_PORT (empty port: a short liveness check)
#   LOG_LINES   how many log lines to show on failure
#   GATED       1: the container starts held by gate.sh; copy COPY_TARS (base64 tar streams) to COPY_DESTS, run
#               PRE_HOOKS (with PRE_TIMEOUTS, named PRE_LABELS) via docker exec, then release the engine
# Events: ib_env, started, fail (+ block "log")
# shellcheck disable=SC2154  # inputs come from the preamble

sr_require_docker

if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
  docker rm -f "$CONTAINER" >/dev/null 2>&1 || sr_fail remove-old "cannot remove the old container $CONTAINER"
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  [ "$PULL" = missing ] || sr_fail image "image $IMAGE is not present on this host"
  if ! err=$(docker pull "$IMAGE" 2>&1 >/dev/null); then
    sr_fail pull "docker pull $IMAGE failed: ${err##*$'\n'}"
  fi
fi

hf=$HF_CACHE
case $hf in
  \~) hf=$HOME ;;
  \~/*) hf=$HOME/${hf#\~/} ;;
esac
mkdir -p "$hf" 2>/dev/null || sr_fail hf-cache "cannot create the Hugging Face cache $hf"

# Interface env detected on this host goes first, so a value the recipe or cluster pins (later -e) wins.
detected=()
if [ -n "$IB_DETECT" ]; then
  if ! ib_out=$(env HEAD_ADDRESS="$HEAD_ADDRESS" bash -c "$IB_DETECT" 2>/dev/null); then
    sr_fail network-detect "interface detection failed"
  fi
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]] || sr_fail network-detect "unexpected line: $line"
    sr_emit ib_env "$line"
    case $line in
      SPARKRUN_*) ;;  # facts for sparkrun, not container env
      *) detected+=(-e "$line") ;;
    esac
  done <<<"$ib_out"
fi
extra=(-v "$hf:/cache/huggingface")
for mount in "${MOUNTS[@]}"; do
  src=${mount%%:*}
  case $src in
    \~) src=$HOME ;;
    \~/*) src=$HOME/${src#\~/} ;;
  esac
  [ -e "$src" ] || sr_fail mount "$src does not exist on this host (needed at ${mount#*:})"
  extra+=(-v "$src:${mount#*:}")
done

envfile=""
if [ "${#SECRET_ENV[@]}" -gt 0 ]; then
  envfile=$(umask 077 && mktemp "${TMPDIR:-/tmp}/sparkrun-env.XXXXXX") || sr_fail secrets "cannot create a private env file"
  printf '%s\n' "${SECRET_ENV[@]}" >"$envfile"
  extra+=(--env-file "$envfile")
fi

run_err=$(docker run -d --name "$CONTAINER" "${detected[@]}" "${DOCKER_OPTS[@]}" "${extra[@]}" --entrypoint "$ENTRYPOINT" "$IMAGE" "${CMD[@]}" 2>&1 >/dev/null)
rc=$?
[ -z "$envfile" ] || rm -f "$envfile"
if [ $rc -ne 0 ]; then
  sr_fail "docker-run" "${run_err##*$'\n'}"
fi

if [ "$GATED" = 1 ]; then
  for i in "${!COPY_TARS[@]}"; do
    docker exec "$CONTAINER" mkdir -p "${COPY_DESTS[$i]}" >/dev/null 2>&1 ||
      sr_fail copy "cannot create ${COPY_DESTS[$i]} in the container"
    if ! err=$(base64 -d <<<"${COPY_TARS[$i]}" | docker cp - "$CONTAINER:${COPY_DESTS[$i]}" 2>&1); then
      sr_fail copy "docker cp to ${COPY_DESTS[$i]} failed: ${err##*$'\n'}"
    fi
  done
  for i in "${!PRE_HOOKS[@]}"; do
    out=$(timeout "${PRE_TIMEOUTS[$i]}" docker exec "$CONTAINER" bash -c "${PRE_HOOKS[$i]}" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
      state=$(sr_state "$CONTAINER")
      if [ "$state" != running ]; then
        sr_log_tail "$CONTAINER" "$LOG_LINES"
        sr_fail start "the container exited before its hooks finished ($state)"
      fi
      printf '%s\n' "$out" | tail -n "$LOG_LINES" | sr_block log
      [ $rc -eq 124 ] && sr_fail "${PRE_LABELS[$i]}" "timed out after ${PRE_TIMEOUTS[$i]}s"
      sr_fail "${PRE_LABELS[$i]}" "exited with status $rc"
    fi
    sr_emit hook "${PRE_LABELS[$i]}"
  done
  docker exec "$CONTAINER" touch /tmp/.sparkrun-go || sr_fail gate "cannot release the engine"
fi

start=$(sr_now)
deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
while :; do
  state=$(sr_state "$CONTAINER")
  if [ "$state" != running ]; then
    sr_log_tail "$CONTAINER" "$LOG_LINES"
    sr_fail start "the engine exited during start-up ($state)"
  fi
  if [ -z "$WAIT_PORT" ]; then
    # No port to wait for: make sure the process survives its first moment.
    sleep 0.5
    [ "$(sr_state "$CONTAINER")" = running ] && break
    continue
  fi
  sr_port_open "$WAIT_ADDR" "$WAIT_PORT" && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    sr_log_tail "$CONTAINER" "$LOG_LINES"
    sr_fail wait-port "port $WAIT_PORT did not open within ${WAIT_TIMEOUT}s"
  fi
  sleep 0.2
done
sr_emit started "$CONTAINER $(sr_elapsed "$start")"
