#!/usr/bin/env bash
# model_recv.sh: put model files into this host's Hugging Face cache, either from a stream (a hop of a copy chain:
# MODE=stream) or from the Hub with curl (MODE=fetch). Data lands in blobs/BLOB.sparkrun-partial (an interrupted copy
# resumes from its size), is checked against the Hub's sha256 (or git blob id) and only then renamed to blobs/BLOB.
# Snapshot links and refs are made by the check that follows (model_check.sh with FIX_LINKS=1).
#
# MODE=stream: stdin is the rest of a stream from model_send.sh: the scripts of the hops after this one (SKIP_BYTES),
#   then records "F IDX OFFSET LENGTH\n" + bytes, then "E\n". With NEXT_SSH, every byte is also forwarded (tee) to the
#   next hop while it arrives, and the next hop's events come back through this script's stdout. A record for a file
#   this host does not want, or bytes it already holds, are read and dropped; a local failure (disk full) stops the
#   writing here, never the forwarding.
# MODE=fetch: curl each wanted file from FILE_URLS (resuming a partial file); stdin holds the Hub token (one line,
#   may be empty), handed to curl as a header file so it is in no process list.
# Inputs (preamble): MODE, NAME, HUB_DIR, STATE_DIR (HF_HOME/sparkrun: locks, checksum markers), REPO_FOLDER,
#   FILE_PATHS, FILE_SIZES, FILE_BLOBS, FILE_SHA256, FILE_BLOB_IDS, WANT (0/1 per file), SKIP_BYTES, NEXT_SSH (array),
#   NEXT_COMMAND, NEXT_NAME, FILE_URLS (fetch)
# Events: hop-start NAME PGID, hop-progress NAME WRITTEN RECEIVED, hop-file NAME IDX STATE (done, bad: checksum
#   mismatch, gap: the stream began after this host's partial data), hop-fail NAME STEP CAUSE, hop-next NAME NEXT
#   STATUS CAUSE, hop-end NAME WRITTEN RECEIVED
# Uses chain_lib.sh (sr_hop_start, sr_chain_forward), which render_script adds after lib.sh.
# shellcheck disable=SC2154  # inputs come from the preamble

hub=${HUB_DIR/#\~/$HOME}
state=${STATE_DIR/#\~/$HOME}
root="$hub/$REPO_FOLDER"
suffix=.sparkrun-partial
written=0 received=0 writing=1
taking=("${WANT[@]}") # what this host still takes (a file leaves it once complete)

sr_hop_start

sha256_of() {
  if sr_have openssl; then openssl dgst -sha256 -r "$1"; else sha256sum -- "$1"; fi
}

# place I: check the finished partial copy of file I and move it into blobs/ (in the background while data flows).
place() {
  local i=$1 part blob sha=${FILE_SHA256[$1]} id=${FILE_BLOB_IDS[$1]} got="" key
  blob="$root/blobs/${FILE_BLOBS[i]}"
  part=$blob$suffix
  if [ -n "$sha" ]; then
    got=$(sha256_of "$part") && got=${got%% *} && [ "$got" = "$sha" ] || got=bad
  elif [ -n "$id" ]; then
    got=$({ printf 'blob %s\0' "${FILE_SIZES[i]}"; cat -- "$part"; } | sha1sum) && got=${got%% *} &&
      [ "$got" = "$id" ] || got=bad
  fi
  if [ "$got" = bad ]; then
    rm -f -- "$part"
    sr_emit hop-file "$NAME $i bad"
    return
  fi
  mv -f -- "$part" "$blob" || { sr_emit hop-file "$NAME $i error"; return; }
  if [ -n "$got" ]; then # a checksum marker, so the next check need not hash it again (model_check.sh)
    key=$(stat -L -c '%s %.9Y %.9Z %i' -- "$blob") &&
      mkdir -p -- "$state/verified/$REPO_FOLDER" && printf '%s' "$key" >"$state/verified/$REPO_FOLDER/${FILE_BLOBS[i]}"
  fi
  sr_emit hop-file "$NAME $i done"
}

have_bytes() { stat -c %s -- "$1" 2>/dev/null || echo 0; }

# take I OFFSET LENGTH: consume one record from stdin; keep the bytes this host wants and does not hold yet.
take() {
  local i=$1 off=$2 len=$3 part have skip=0 keep
  part="$root/blobs/${FILE_BLOBS[i]}$suffix"
  if [ "${taking[i]:-0}" != 1 ] || ((writing == 0)); then
    dd bs=1M count="$len" iflag=count_bytes,fullblock status=none of=/dev/null
    return
  fi
  have=$(have_bytes "$part")
  if ((have < off)); then
    dd bs=1M count="$len" iflag=count_bytes,fullblock status=none of=/dev/null
    taking[i]=0
    sr_emit hop-file "$NAME $i gap"
    return
  fi
  ((have > off)) && skip=$((have - off < len ? have - off : len))
  keep=$((len - skip))
  ((skip > 0)) && dd bs=1M count="$skip" iflag=count_bytes,fullblock status=none of=/dev/null
  # straight from the stream into the file (one copy). A failed write leaves the stream out of step: the rest is read
  # and dropped (the next hop still gets every byte from tee) and the partial file stays for a later resume.
  if ! dd bs=1M count="$keep" iflag=count_bytes,fullblock oflag=append conv=notrunc of="$part" status=none; then
    writing=0
    sr_emit hop-fail "$NAME write cannot write $part: $(df -Ph "$root/blobs" 2>/dev/null | awk 'NR == 2 { print $4 " free" }')"
    cat >/dev/null
    return 1
  fi
  written=$((written + keep))
  if (($(have_bytes "$part") >= FILE_SIZES[i])); then
    taking[i]=0
    place "$i" &
  fi
}

receive() {
  local tag i off len ended=0
  ((SKIP_BYTES > 0)) && dd bs=1M count="$SKIP_BYTES" iflag=count_bytes,fullblock status=none of=/dev/null
  while IFS=' ' read -r tag i off len; do
    case $tag in
      F) take "$i" "$off" "$len" || { ended=1 && break; } ;;
      E) ended=1 && break ;;
      *) sr_emit hop-fail "$NAME stream unexpected record '${tag:0:20}'" && break ;;
    esac
    received=$((received + len))
    sr_emit hop-progress "$NAME $written $received"
  done
  wait # the checks of the last files
  ((ended)) || sr_emit hop-fail "$NAME stream the stream ended early (the host before this one stopped sending)"
  sr_emit hop-end "$NAME $written $received"
}

# fetch_one I: curl file I into its partial copy (resuming), with progress every second.
fetch_one() {
  local i=$1 part pid next=0 now
  part="$root/blobs/${FILE_BLOBS[i]}$suffix"
  curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 10 -C - -o "$part" -H @<(printf '%s' "$auth") \
    "${FILE_URLS[i]}" 2>"$state/curl.err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    now=${EPOCHREALTIME%.*}
    if ((now >= next)); then # progress once a second
      sr_emit hop-progress "$NAME $((written + $(have_bytes "$part"))) 0"
      next=$((now + 1))
    fi
    sleep 0.1
  done
  if ! wait "$pid"; then
    sr_emit hop-fail "$NAME fetch ${FILE_PATHS[i]}: $(tail -n 1 "$state/curl.err")"
    return 1
  fi
  written=$((written + FILE_SIZES[i]))
  place "$i"
}

fetch() {
  local token="" i
  IFS= read -r token || true
  auth=""
  [ -z "$token" ] || auth="Authorization: Bearer $token"
  unset token
  sr_have curl || { sr_emit hop-fail "$NAME fetch curl is not installed"; return 1; }
  for i in "${!taking[@]}"; do
    [ "${taking[i]}" = 1 ] || continue
    fetch_one "$i" || return 1
  done
  sr_emit hop-end "$NAME $written 0"
}

mkdir -p -- "$root/blobs" "$state/locks" || { sr_emit hop-fail "$NAME mkdir cannot create $root/blobs"; exit 1; }
exec 9>"$state/locks/$REPO_FOLDER.lock"
if ! flock -n 9; then
  writing=0 # another copy into this cache is running: take nothing, forward everything
  sr_emit hop-fail "$NAME lock another sparkrun copy of this model is writing here"
fi

if [ "$MODE" = fetch ]; then
  ((writing)) || exit 1
  fetch
  exit
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sparkrun-hop.XXXXXX") || { sr_emit hop-fail "$NAME tmp no temporary directory"; exit 1; }
trap 'rm -rf "$tmp"' EXIT
sr_chain_forward receive "$tmp"
