# readiness.sh: wait until the engine serves: port open -> GET /v1/models -> one streamed chat completion.
# Runs on the host of the rank that serves the API, so it works wherever SSH works (ProxyJump, firewalls).
# Inputs (preamble): CONTAINER, ADDR, PORT, PORT_TIMEOUT, HEALTH_TIMEOUT, INFERENCE (1/0), INFERENCE_TIMEOUT,
#   BODY (JSON request body for the chat completion), LOG_LINES
# Events: phase NAME, timing NAME SECONDS, ready SECONDS, fail STEP CAUSE (+ block "log")
# shellcheck disable=SC2154  # inputs come from the preamble

sr_have curl || sr_fail readiness "curl is not installed on this host"
base="http://$ADDR:$PORT"
t0=$(sr_now)

alive_or_fail() {
  local state
  state=$(sr_state "$CONTAINER")
  if [ "$state" != running ]; then
    sr_log_tail "$CONTAINER" "$LOG_LINES"
    sr_fail "$1" "the engine exited ($state)"
  fi
}

# wait_for PHASE TIMEOUT CHECK...: run CHECK until it succeeds, the engine dies, or TIMEOUT seconds pass.
wait_for() {
  local phase=$1 timeout=$2 start deadline
  shift 2
  sr_emit phase "$phase"
  start=$(sr_now)
  deadline=$(( $(date +%s) + timeout ))
  until "$@"; do
    alive_or_fail "$phase"
    if [ "$(date +%s)" -ge "$deadline" ]; then
      sr_log_tail "$CONTAINER" "$LOG_LINES"
      sr_fail "$phase" "not ready within ${timeout}s"
    fi
    sleep 1
  done
  sr_emit timing "$phase $(sr_elapsed "$start")"
}

models_ok() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/v1/models")" = 200 ]
}

completion_ok() {
  local out
  out=$(curl -sS -N --max-time "$INFERENCE_TIMEOUT" -H 'Content-Type: application/json' \
    -d "$BODY" "$base/v1/chat/completions" 2>&1) || return 1
  case $out in
    *'data: [DONE]'*) return 0 ;;
  esac
  sr_emit note "unexpected completion response: ${out:0:200}"
  return 1
}

wait_for port "$PORT_TIMEOUT" sr_port_open "$ADDR" "$PORT"
wait_for models "$HEALTH_TIMEOUT" models_ok
if [ "$INFERENCE" = 1 ]; then
  wait_for inference "$INFERENCE_TIMEOUT" completion_ok
fi
sr_emit ready "$(sr_elapsed "$t0")"
