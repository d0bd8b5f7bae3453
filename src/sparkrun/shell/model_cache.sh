#!/usr/bin/env bash
# model_cache.sh: what this host's Hugging Face hub cache holds (ACTION=list), or remove revisions from it
# (ACTION=delete). A revision is a snapshot (models--org--name/snapshots/COMMIT); its size is the size of the distinct
# blobs its files link to. "Last used" is when sparkrun last launched a job on it (STATE_DIR/used/FOLDER/COMMIT, one
# job per line), else the newest mtime of its blobs. Blobs no snapshot links to and unfinished copies are "orphans".
# Inputs (preamble): ACTION, HUB_DIR, STATE_DIR, TARGETS (delete: FOLDER/COMMIT, or FOLDER/orphans)
# Events (list): hub PATH, disk TOTAL_KB FREE_KB, rev FOLDER COMMIT BYTES FILES LAST_USED REFS|- JOBS|-,
#   orphans FOLDER BYTES COUNT, running JOB MODEL (a running sparkrun container)
# Events (delete): deleted FOLDER COMMIT BYTES, refused FOLDER COMMIT WHY (the job of a running container that uses
#   it, or a-copy-is-writing-it),
#   missing FOLDER COMMIT
# shellcheck disable=SC2154  # inputs come from the preamble

hub=${HUB_DIR/#\~/$HOME}
sparkrun_state=${STATE_DIR/#\~/$HOME}
shopt -s nullglob

size_of() { stat -c %s -- "$1" 2>/dev/null || echo 0; }

# blobs_of DIR: the distinct blob files DIR's links point to, one per line.
blobs_of() { find "$1" -type l -exec readlink -f -- {} + 2>/dev/null | sort -u; }

running() { # "JOB MODEL" per running sparkrun container
  sr_have docker || return 0
  docker ps --filter label=sparkrun.job --format '{{.Label "sparkrun.job"}} {{.Label "sparkrun.model"}}' 2>/dev/null
}

folder_of() { # a model label (org/name or org/name:QUANT) -> models--org--name
  local repo=${1%%:*}
  printf 'models--%s' "${repo//\//--}"
}

# in_use FOLDER COMMIT: the job of a running container that uses this revision (a job whose use of the repo is not
# recorded for any revision counts as using them all).
in_use() {
  local folder=$1 commit=$2 job model
  while read -r job model; do
    [ -n "$job" ] && [ "$(folder_of "$model")" = "$folder" ] || continue
    if grep -qxF -- "$job" "$sparkrun_state/used/$folder/$commit" 2>/dev/null ||
      ! grep -qxF -- "$job" "$sparkrun_state/used/$folder/"* 2>/dev/null; then
      printf '%s' "$job"
      return 0
    fi
  done < <(running)
  return 1
}

list_repo() {
  local dir=$1 folder commit snap bytes files last refs jobs b ref linked n orphan_bytes=0 orphans=0
  folder=${dir##*/}
  linked=$(blobs_of "$dir/snapshots")
  for snap in "$dir"/snapshots/*/; do
    snap=${snap%/} commit=${snap##*/} bytes=0 last=0 refs="" jobs=""
    files=$(find "$snap" -type l 2>/dev/null | wc -l)
    while IFS= read -r b; do
      [ -n "$b" ] || continue
      bytes=$((bytes + $(size_of "$b")))
      n=$(stat -c %Y -- "$b" 2>/dev/null || echo 0)
      ((n > last)) && last=$n
    done < <(blobs_of "$snap")
    if [ -f "$sparkrun_state/used/$folder/$commit" ]; then
      last=$(stat -c %Y -- "$sparkrun_state/used/$folder/$commit")
      jobs=$(paste -sd, "$sparkrun_state/used/$folder/$commit")
    fi
    for ref in "$dir"/refs/*; do
      [ "$(cat -- "$ref" 2>/dev/null)" = "$commit" ] && refs+="${refs:+,}${ref##*/}"
    done
    sr_emit rev "$folder $commit $bytes $files $last ${refs:--} ${jobs:--}"
  done
  for b in "$dir"/blobs/*; do
    if [[ $b == *.sparkrun-partial || $b == *.incomplete ]] || ! grep -qxF -- "$b" <<<"$linked"; then
      orphan_bytes=$((orphan_bytes + $(size_of "$b"))) orphans=$((orphans + 1))
    fi
  done
  ((orphans == 0)) || sr_emit orphans "$folder $orphan_bytes $orphans"
}

# locked FOLDER COMMIT: true when no sparkrun copy is writing into this repo (model_recv.sh holds the same lock).
locked() {
  mkdir -p -- "$sparkrun_state/locks" && exec 8>"$sparkrun_state/locks/$1.lock" && flock -n 8 && return 0
  sr_emit refused "$1 $2 a-copy-is-writing-it"
  return 1
}

delete_rev() { # FOLDER COMMIT
  local folder=$1 commit=$2 dir="$hub/$1" job b freed=0 ref
  locked "$folder" "$commit" || return
  if [ "$commit" = orphans ]; then
    delete_orphans "$folder"
    return
  fi
  [ -d "$dir/snapshots/$commit" ] || { sr_emit missing "$folder $commit"; return; }
  if job=$(in_use "$folder" "$commit"); then
    sr_emit refused "$folder $commit $job"
    return
  fi
  mapfile -t blobs < <(blobs_of "$dir/snapshots/$commit")
  rm -rf -- "$dir/snapshots/$commit" "$sparkrun_state/used/$folder/$commit"
  for ref in "$dir"/refs/*; do [ "$(cat -- "$ref" 2>/dev/null)" != "$commit" ] || rm -f -- "$ref"; done
  local still
  still=$(blobs_of "$dir/snapshots")
  for b in "${blobs[@]}"; do
    grep -qxF -- "$b" <<<"$still" && continue
    freed=$((freed + $(size_of "$b")))
    rm -f -- "$b" "$sparkrun_state/verified/$folder/${b##*/}"
  done
  sr_emit deleted "$folder $commit $freed"
  if [ -z "$(ls -A -- "$dir/snapshots" 2>/dev/null)" ]; then
    freed=0
    for b in "$dir"/blobs/*; do freed=$((freed + $(size_of "$b"))); done
    rm -rf -- "$dir" "$sparkrun_state/used/$folder" "$sparkrun_state/verified/$folder"
    ((freed == 0)) || sr_emit deleted "$folder orphans $freed"
  fi
}

delete_orphans() { # FOLDER: blobs no snapshot links to, unfinished copies
  local folder=$1 dir="$hub/$1" linked b freed=0
  linked=$(blobs_of "$dir/snapshots")
  for b in "$dir"/blobs/*; do
    if [[ $b == *.sparkrun-partial || $b == *.incomplete ]] || ! grep -qxF -- "$b" <<<"$linked"; then
      freed=$((freed + $(size_of "$b")))
      rm -f -- "$b"
    fi
  done
  sr_emit deleted "$folder orphans $freed"
}

case $ACTION in
  list)
    sr_emit hub "$hub"
    [ -d "$hub" ] && sr_emit disk "$(df -Pk -- "$hub" | awk 'NR == 2 { print $2 " " $4 }')"
    for dir in "$hub"/models--*; do
      [ -d "$dir/snapshots" ] && list_repo "$dir"
    done
    while read -r job model; do
      [ -z "$job" ] || sr_emit running "$job $model"
    done < <(running)
    ;;
  delete)
    for target in "${TARGETS[@]}"; do
      delete_rev "${target%%/*}" "${target#*/}"
      exec 8>&-
    done
    ;;
  *) sr_fail model-cache "unknown action $ACTION" ;;
esac
