#!/usr/bin/env bash
# sync_reach.sh: can this host copy to the next host of a chain, and at which address (its CX7 addresses first, then
# the management address)? Each candidate is one SSH connection with BatchMode that runs `true`. Optionally: does this
# host reach the Hugging Face Hub (one ranged GET of a model file; any HTTP answer below 500 within 6 s counts).
# Inputs (preamble): ADDRESSES (array: candidate addresses, best first), ARGV (array: the SSH command for each
#   candidate, concatenated), ARGC (array: how many words of ARGV each candidate's command has), HUB_URL (empty: skip)
# Events: reach ADDRESS (the first that works), unreach CAUSE (none worked: the last error), hub CODE (000: no answer)
# shellcheck disable=SC2154  # inputs come from the preamble

start=0 cause="no address to try"
for k in "${!ADDRESSES[@]}"; do
  command=("${ARGV[@]:start:ARGC[k]}")
  start=$((start + ARGC[k]))
  if err=$("${command[@]}" true 2>&1 </dev/null); then
    sr_emit reach "${ADDRESSES[k]}"
    cause=""
    break
  fi
  cause="${ADDRESSES[k]}: $(printf '%s' "$err" | tail -n 1)"
done
[ -z "$cause" ] || sr_emit unreach "$cause"

if [ -n "$HUB_URL" ]; then
  if sr_have curl; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 3 --max-time 6 -r 0-0 "$HUB_URL" 2>/dev/null)
    sr_emit hub "${code:-000}"
  else
    sr_emit hub 000
  fi
fi
exit 0
