#!/usr/bin/env bash
# gate.sh: the container's main process while sparkrun runs the recipe's pre_exec hooks and mods in it. It holds the
# engine until sparkrun creates /tmp/.sparkrun-go (after the last hook), then replaces itself with the engine, so the
# engine is still the container's main process and `docker logs` shows it.
# Usage (argv): bash -c "$(cat gate.sh)" sparkrun-gate ENGINE_ARGV...
while [ ! -e /tmp/.sparkrun-go ]; do
  sleep 0.2
done
exec "$@"
