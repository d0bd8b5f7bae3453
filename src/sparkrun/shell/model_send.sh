#!/usr/bin/env bash
# model_send.sh: the source of a model copy. Streams files of this machine's Hugging Face cache: first the scripts of
# the hops after the first one (each hop runs its own and forwards the rest, see model_recv.sh), then one record per
# chunk of every file to send, then an end record. With NEXT_SSH the stream goes to the first hop over SSH from this
# host and the chain's events come back on stdout; without, the stream is this script's stdout (events on stderr).
# Inputs (preamble): NAME (this host, for events), HUB_DIR, REPO_FOLDER, COMMIT, FILE_PATHS, FILE_SIZES, FILE_BLOBS
#   (the manifest's file table, shared by every hop), SEND_IDX and SEND_FROM (parallel arrays: file index and first
#   byte to send), CHUNK (bytes per record), HOP_SCRIPTS (array: the texts of hops 2..N), NEXT_SSH (array: the command
#   that reaches the first hop; empty: stdout), NEXT_COMMAND, NEXT_NAME
# Stream: HOP_SCRIPTS..., then "F IDX OFFSET LENGTH\n" + LENGTH bytes per chunk, then "E\n".
# Events: send-file NAME IDX (a file starts), send-progress NAME BYTES, send-end NAME BYTES, send-fail NAME CAUSE,
#   hop-next NAME NEXT STATUS CAUSE (the first hop's connection ended badly)
# Uses chain_lib.sh (sr_chain_send), which render_script adds after lib.sh.
# shellcheck disable=SC2154  # inputs come from the preamble

hub=${HUB_DIR/#\~/$HOME}
root="$hub/$REPO_FOLDER"

# source_file I: the file to read for table entry I (the blob; the snapshot entry when blobs are elsewhere).
source_file() {
  local blob="$root/blobs/${FILE_BLOBS[$1]}"
  if [ -f "$blob" ]; then
    printf '%s' "$blob"
  else
    printf '%s' "$root/snapshots/$COMMIT/${FILE_PATHS[$1]}"
  fi
}

# emit_stream: the whole stream on stdout; events go to SR_EVENT_FD.
emit_stream() {
  local k i off size len file sent=0 found
  printf '%s' "${HOP_SCRIPTS[@]}"
  for k in "${!SEND_IDX[@]}"; do
    i=${SEND_IDX[k]} off=${SEND_FROM[k]} size=${FILE_SIZES[i]}
    file=$(source_file "$i")
    found=$(stat -L -c %s -- "$file" 2>/dev/null) || found=missing
    if [ "$found" != "$size" ]; then
      sr_emit send-fail "$NAME ${FILE_PATHS[i]}: expected $size bytes, found $found in $file"
      return 1
    fi
    sr_emit send-file "$NAME $i"
    if ((size == 0)); then printf 'F %s 0 0\n' "$i"; fi
    while ((off < size)); do
      len=$((size - off))
      ((len > CHUNK)) && len=$CHUNK
      printf 'F %s %s %s\n' "$i" "$off" "$len"
      # a failure here is the reader going away (the next hop's own report says why): the file was checked above
      dd if="$file" bs=1M skip="$off" count="$len" iflag=skip_bytes,count_bytes status=none || return 1
      off=$((off + len)) sent=$((sent + len))
      sr_emit send-progress "$NAME $sent"
    done
  done
  printf 'E\n'
  sr_emit send-end "$NAME $sent"
}

sr_chain_send emit_stream
