#!/usr/bin/env bash
# sync_probe.sh: what this host holds of what a job needs, in one round trip: the model's files in its Hugging Face
# cache (model_check.sh, run here with VERIFY/FIX_LINKS: checksums where the Hub gives them, skipped for files whose
# marker still matches; links and refs repaired for complete blobs; unfinished copies reported), the images' ids,
# free space, curl, and the host's RDMA (CX7) addresses for copies between hosts. When the model is complete and
# JOB_ID is set, records that job as the model revision's user (STATE_DIR/used/REPO_FOLDER/COMMIT: one job per
# line; its mtime is the revision's "last used").
# Inputs (preamble): MODEL_CHECK (the text of model_check.sh; empty: no model) and its inputs (HUB_DIR, REPO_FOLDER,
#   COMMIT, REF_NAME, VERIFY, FIX_LINKS, FILE_*, VERIFIED_DIR, PARTIAL_SUFFIX), STATE_DIR, JOB_ID, IMAGES (array),
#   IB_DETECT (the text of ib_detect.sh; empty: skip), HEAD_ADDRESS
# Events: model-file/model-partial/model-ref/model-summary (model_check.sh), used JOB, free_kb KB (at the hub cache),
#   curl yes|no, docker ok|missing|unreachable, image NAME ID|- SIZE DIGESTS|-, ib_env KEY=VALUE
# shellcheck disable=SC2154  # inputs come from the preamble

sparkrun_state=${STATE_DIR/#\~/$HOME}

if [ -n "$MODEL_CHECK" ]; then
  eval "$MODEL_CHECK"
  # model_check.sh leaves its counts in the shell
  if [ -n "$JOB_ID" ] && [ "${missing:-1}" = 0 ] && [ "${corrupt:-1}" = 0 ] && [ "${unlinked:-1}" = 0 ]; then
    used="$sparkrun_state/used/$REPO_FOLDER/$COMMIT"
    if mkdir -p -- "${used%/*}" && { grep -qxF -- "$JOB_ID" "$used" 2>/dev/null || echo "$JOB_ID" >>"$used"; }; then
      touch -- "$used"
      sr_emit used "$JOB_ID"
    fi
  fi
  probe_dir=${HUB_DIR/#\~/$HOME}
  while [ ! -d "$probe_dir" ] && [ "$probe_dir" != / ]; do probe_dir=$(dirname -- "$probe_dir"); done
  sr_emit free_kb "$(df -Pk -- "$probe_dir" 2>/dev/null | awk 'NR == 2 { print $4 }')"
fi

if sr_have curl; then sr_emit curl yes; else sr_emit curl no; fi

if ((${#IMAGES[@]})); then
  if ! sr_have docker; then
    sr_emit docker missing
  elif ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    sr_emit docker unreachable
  else
    sr_emit docker ok
    for image in "${IMAGES[@]}"; do
      found=$(docker image inspect --format '{{.Id}} {{.Size}} {{range .RepoDigests}}{{.}},{{end}}' "$image" 2>/dev/null) ||
        found="- 0"
      read -r id size digests <<<"$found"
      digests=${digests%,}
      sr_emit image "$image $id $size ${digests:--}"
    done
  fi
fi

if [ -n "$IB_DETECT" ]; then
  ib_out=$(env HEAD_ADDRESS="$HEAD_ADDRESS" bash -c "$IB_DETECT" 2>/dev/null) || ib_out=""
  while IFS= read -r line; do
    [ -z "$line" ] || sr_emit ib_env "$line"
  done <<<"$ib_out"
fi
exit 0
