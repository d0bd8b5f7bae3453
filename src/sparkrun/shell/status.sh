# status.sh: every sparkrun container on this host (or one job's), one JSON object per line.
# Inputs (preamble): JOB_ID (empty: all sparkrun containers)
# Events: docker, container JSON
# shellcheck disable=SC2154  # inputs come from the preamble

sr_require_docker
sr_emit docker ok
filter="label=sparkrun.job"
[ -z "$JOB_ID" ] || filter="label=sparkrun.job=$JOB_ID"
mapfile -t ids < <(docker ps -aq --no-trunc --filter "$filter")
[ "${#ids[@]}" -gt 0 ] || exit 0
fmt='{"name":{{json .Name}},"image":{{json .Config.Image}},"labels":{{json .Config.Labels}},'
fmt+='"state":{{json .State.Status}},"exit_code":{{.State.ExitCode}},"started_at":{{json .State.StartedAt}}}'
docker inspect --format "$fmt" "${ids[@]}" 2>/dev/null | while IFS= read -r line; do
  sr_emit container "$line"
done
