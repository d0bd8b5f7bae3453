#!/usr/bin/env bash
# model_check.sh: which files of a model manifest this host's Hugging Face cache already holds.
# Inputs (preamble): HUB_DIR (the hub cache, e.g. ~/.cache/huggingface/hub), REPO_FOLDER (models--org--name),
#   COMMIT, REF_NAME (branch/tag the recipe asked for; empty for a commit), VERIFY (1: checksum every complete file:
#   sha256 for LFS files, git blob id for the others), FIX_LINKS (1: create missing snapshot symlinks for complete
#   blobs and write refs/REF_NAME, as huggingface_hub would), and parallel arrays FILE_PATHS, FILE_SIZES, FILE_BLOBS
#   (blob names), FILE_SHA256 (empty when unknown), FILE_BLOB_IDS (empty when unknown).
#   Optional: VERIFIED_DIR (with VERIFY=1: a file whose size, mtime, ctime and inode match the marker written there
#   when it last hashed correctly is not hashed again; sparkrun's distribution keeps it in HF_HOME/sparkrun),
#   PARTIAL_SUFFIX (report blobs/BLOB+SUFFIX, an unfinished copy, as model-partial).
# Events: model-file STATE SIZE PATH (STATE: present, unlinked, missing, partial, oversize, checksum; SIZE: bytes
#   found), model-ref STATE NAME (ok, fixed, missing, stale), model-summary present=N unlinked=N missing=N corrupt=N
#   bytes_missing=B, model-partial SIZE PATH (an unfinished copy of a missing file, with PARTIAL_SUFFIX)
# shellcheck disable=SC2154  # inputs come from the preamble

hub=${HUB_DIR/#\~/$HOME}
root="$hub/$REPO_FOLDER"

# sha256_of FILE: openssl when present (several times faster than coreutils' sha256sum on big files).
sha256_of() {
  if sr_have openssl; then
    openssl dgst -sha256 -r "$1"
  else
    sha256sum -- "$1"
  fi
}

# checksum_ok FILE SIZE SHA256 BLOB_ID: true when the content matches what the Hub published (or nothing is known).
checksum_ok() {
  local file=$1 size=$2 sha=$3 blob_id=$4 got
  if [ -n "$sha" ]; then
    got=$(sha256_of "$file") || return 1
    [ "${got%% *}" = "$sha" ]
  elif [ -n "$blob_id" ]; then
    got=$({ printf 'blob %s\0' "$size"; cat -- "$file"; } | sha1sum) || return 1
    [ "${got%% *}" = "$blob_id" ]
  fi
}

verified_dir=${VERIFIED_DIR:-}
verified_dir=${verified_dir/#\~/$HOME}
partial_suffix=${PARTIAL_SUFFIX:-}

# stat_key FILE: what changes when a file's content is rewritten (size, mtime, ctime, inode).
stat_key() { stat -L -c '%s %.9Y %.9Z %i' -- "$1" 2>/dev/null; }

# verified FILE SIZE SHA256 BLOB_ID BLOB: checksum_ok, skipped while the marker of an earlier success still matches.
verified() {
  local file=$1 blob=$5 marker key
  [ -n "$verified_dir" ] || { checksum_ok "$1" "$2" "$3" "$4"; return; }
  marker="$verified_dir/$REPO_FOLDER/$blob"
  key=$(stat_key "$file")
  if [ -f "$marker" ] && [ "$(<"$marker")" = "$key" ]; then return 0; fi
  if checksum_ok "$1" "$2" "$3" "$4"; then
    mkdir -p -- "${marker%/*}" && printf '%s' "$key" >"$marker.$$" && mv -f -- "$marker.$$" "$marker"
    return 0
  fi
  rm -f -- "$marker"
  return 1
}

# link_file REL BLOB: snapshots/COMMIT/REL -> ../../blobs/BLOB (one more ../ per directory level), atomically.
link_file() {
  local rel=$1 blob=$2 pointer up=../../ tmp slashes n
  pointer="$root/snapshots/$COMMIT/$rel"
  slashes=${rel//[^\/]/}
  for ((n = 0; n < ${#slashes}; n++)); do up+=../; done
  mkdir -p -- "$(dirname -- "$pointer")" || return 1
  tmp="$pointer.sparkrun-link.$$"
  ln -sfn -- "${up}blobs/$blob" "$tmp" && mv -f -T -- "$tmp" "$pointer"
}

present=0 unlinked=0 missing=0 corrupt=0 bytes_missing=0
for i in "${!FILE_PATHS[@]}"; do
  rel=${FILE_PATHS[i]}
  want=${FILE_SIZES[i]}
  blob=${FILE_BLOBS[i]}
  pointer="$root/snapshots/$COMMIT/$rel"
  state=missing size=0 target=
  if [ -e "$pointer" ]; then
    target=$pointer state=present
  elif [ -e "$root/blobs/$blob" ]; then
    target="$root/blobs/$blob" state=unlinked
  fi
  if [ -n "$target" ]; then
    size=$(stat -L -c %s -- "$target" 2>/dev/null) || size=0
    if [ "$size" -lt "$want" ]; then
      state=partial
    elif [ "$size" -gt "$want" ]; then
      state=oversize
    elif [ "$VERIFY" = 1 ] && ! verified "$target" "$size" "${FILE_SHA256[i]}" "${FILE_BLOB_IDS[i]}" "$blob"; then
      state=checksum
    elif [ "$state" = unlinked ] && [ "$FIX_LINKS" = 1 ] && link_file "$rel" "$blob"; then
      state=present
    fi
  fi
  case $state in
    present) present=$((present + 1)) ;;
    unlinked) unlinked=$((unlinked + 1)) ;;
    missing) missing=$((missing + 1)) bytes_missing=$((bytes_missing + want)) ;;
    *) corrupt=$((corrupt + 1)) bytes_missing=$((bytes_missing + want)) ;;
  esac
  sr_emit model-file "$state $size $rel"
  if [ -n "$partial_suffix" ] && [ "$state" != present ] && [ -f "$root/blobs/$blob$partial_suffix" ]; then
    sr_emit model-partial "$(stat -c %s -- "$root/blobs/$blob$partial_suffix" 2>/dev/null || echo 0) $rel"
  fi
done

if [ -n "$REF_NAME" ]; then
  ref="$root/refs/$REF_NAME" current=
  [ -f "$ref" ] && current=$(<"$ref")
  if [ "$current" = "$COMMIT" ]; then
    sr_emit model-ref "ok $REF_NAME"
  elif [ "$FIX_LINKS" = 1 ] && mkdir -p -- "$(dirname -- "$ref")" && printf '%s' "$COMMIT" >"$ref.tmp.$$" &&
    mv -f -- "$ref.tmp.$$" "$ref"; then
    sr_emit model-ref "fixed $REF_NAME"
  elif [ -z "$current" ]; then
    sr_emit model-ref "missing $REF_NAME"
  else
    sr_emit model-ref "stale $REF_NAME"
  fi
fi
sr_emit model-summary "present=$present unlinked=$unlinked missing=$missing corrupt=$corrupt bytes_missing=$bytes_missing"
