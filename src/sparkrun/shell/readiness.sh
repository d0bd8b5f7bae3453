#!/usr/bin/env bash
# readiness.sh: wait until the engine serves: port open -> GET /v1/models -> one streamed chat completion.
# Runs on the host of the rank that serves the API, so it works wherever SSH works (ProxyJump, firewalls).
# Inputs (preamble): CONTAINER, ADDR, PORT, PORT_TIMEOUT, HEALTH_TIMEOUT, INFERENCE (1/0), INFERENCE_TIMEOUT,
#   MODEL (the served name planned; used when the engine lists it), MODEL_JSON (array: MODEL as JSON strings, with
#   and without \u escapes, to find it in the engine's answer), PROMPT, KEY_BYTES (length of the API key at the
#   start of stdin; 0 = none), LOG_LINES
# Events: phase NAME, timing NAME SECONDS, models ID,ID..., served ID, ready SECONDS, note TEXT,
#   fail STEP CAUSE (+ block "log": the engine's log tail, or the server's answer)
# shellcheck disable=SC2154  # inputs come from the preamble

sr_have curl || sr_fail readiness "curl is not installed on this host"
base="http://$ADDR:$PORT"
t0=$(sr_now)
key=""
[ "${KEY_BYTES:-0}" -gt 0 ] && key=$(head -c "$KEY_BYTES")
body_file=$(mktemp "${TMPDIR:-/tmp}/sparkrun-ready.XXXXXX") || sr_fail readiness "cannot create a temporary file"
trap 'rm -f "$body_file"' EXIT

# request METHOD-ARGS...: curl with the API key (from a file descriptor, never the command line); prints the HTTP
# status; the body lands in $body_file.
# (The header file is a process substitution, which lives only as long as the command it appears in.)
request() {
  if [ -n "$key" ]; then
    curl -sS -o "$body_file" -w '%{http_code}' -H @<(printf 'Authorization: Bearer %s\n' "$key") "$@" 2>/dev/null ||
      printf '000'
  else
    curl -sS -o "$body_file" -w '%{http_code}' "$@" 2>/dev/null || printf '000'
  fi
}

alive_or_fail() {
  local state
  state=$(sr_state "$CONTAINER")
  if [ "$state" != running ]; then
    sr_docker_alive
    sr_log_tail "$CONTAINER" "$LOG_LINES"
    sr_fail "$1" "the engine exited ($state)"
  fi
}

# refused PHASE STATUS: a 4xx answer is the server's verdict, not "not ready yet": stop now with its message.
refused() {
  head -c 2000 "$body_file" | sr_block log
  case $2 in
    401 | 403) sr_fail "$1" "the server refused the request (HTTP $2): it needs an API key sparkrun does not have" ;;
    404) sr_fail "$1" "the server answered HTTP 404: $(head -c 300 "$body_file" | tr '\n' ' ')" ;;
    *) sr_fail "$1" "the server answered HTTP $2: $(head -c 300 "$body_file" | tr '\n' ' ')" ;;
  esac
}

# wait_for PHASE TIMEOUT CHECK...: run CHECK until it succeeds (0), the engine dies, a 4xx comes back (CHECK
# returns 2 after setting $status), or TIMEOUT seconds pass.
wait_for() {
  local phase=$1 timeout=$2 start deadline rc
  shift 2
  sr_emit phase "$phase"
  start=$(sr_now)
  deadline=$(($(date +%s) + timeout))
  while :; do
    "$@"
    rc=$?
    [ $rc -eq 0 ] && break
    [ $rc -eq 2 ] && refused "$phase" "$status"
    alive_or_fail "$phase"
    if [ "$(date +%s)" -ge "$deadline" ]; then
      sr_log_tail "$CONTAINER" "$LOG_LINES"
      sr_fail "$phase" "not ready within ${timeout}s"
    fi
    sleep 1
  done
  sr_emit timing "$phase $(sr_elapsed "$start")"
}

port_ok() { sr_port_open "$ADDR" "$PORT"; }

models_ok() {
  status=$(request --max-time 5 "$base/v1/models")
  case $status in
    200) return 0 ;;
    4??) return 2 ;;
    *) return 1 ;;
  esac
}

json_string() { # JSON-escape $1 (backslash, quote, control characters)
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

completion_ok() {
  local payload
  payload="{\"model\":$(json_string "$served"),\"messages\":[{\"role\":\"user\",\"content\":$(json_string "$PROMPT")}],"
  payload+="\"max_tokens\":16,\"stream\":true}"
  status=$(request -N --max-time "$INFERENCE_TIMEOUT" -H 'Content-Type: application/json' -d "$payload" \
    "$base/v1/chat/completions")
  case $status in
    200) grep -q 'data: \[DONE\]' "$body_file" && return 0 ;;
    4??) return 2 ;;
  esac
  sr_emit note "unexpected completion response (HTTP $status): $(head -c 200 "$body_file" | tr '\n' ' ')"
  return 1
}

wait_for port "$PORT_TIMEOUT" port_ok
wait_for models "$HEALTH_TIMEOUT" models_ok
mapfile -t ids < <(grep -o '"id"[[:space:]]*:[[:space:]]*"[^"]*"' "$body_file" | sed 's/.*:[[:space:]]*"\(.*\)"$/\1/')
sr_emit models "$(IFS=,; printf '%s' "${ids[*]}")"
served=$MODEL
if [ "${#ids[@]}" -gt 0 ]; then
  found=""
  for id in "${ids[@]}"; do [ "$id" = "$MODEL" ] && found=1; done
  # a name with quotes, backslashes or non-ASCII letters is escaped in JSON: look for its encodings as well
  for enc in "${MODEL_JSON[@]}"; do grep -qF -- "$enc" "$body_file" && found=1; done
  if [ -z "$found" ]; then
    served=${ids[0]}
    sr_emit note "the engine serves ${ids[*]}, not '$MODEL'; using '$served'"
  fi
fi
sr_emit served "$served"
if [ "$INFERENCE" = 1 ]; then
  wait_for inference "$INFERENCE_TIMEOUT" completion_ok
fi
sr_emit ready "$(sr_elapsed "$t0")"
