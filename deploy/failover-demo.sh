#!/usr/bin/env bash
# Failover demo: a three-node cluster and a simulated router logging subscribers in; the node
# that owns the router is killed (docker kill: no graceful leave) and another takes the router
# over, rebuilding the sessions from the router's replay (SRQ).
#
#   bash deploy/failover-demo.sh            # leaves the cluster running afterwards
#   bash deploy/failover-demo.sh --down     # and removes it (down -v) at the end
#
# Steps: image (built if missing) → `compose --profile demo up` → wait for the simulator's
# logins → `saectl cluster`: the owner of router1.example.net → its subscriber count →
# `docker kill` of the owner → wait for a new owner → the new owner's subscriber list.
#
# Environment: SAE_PROJECT (default sae-cluster), SAE_IMAGE, SAE_NET_PREFIX,
# SAE_SIM_SUBSCRIBERS (default 20), SAE_WAIT_SECS (default 120). Needs python3 (JSON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/compose-lib.sh
. "$ROOT/deploy/compose-lib.sh"

ROUTER=router1.example.net
SUBSCRIBERS="${SAE_SIM_SUBSCRIBERS:-20}"
export SAE_SIM_SUBSCRIBERS="$SUBSCRIBERS"
WAIT_SECS="${SAE_WAIT_SECS:-120}"
down=0
[ "${1:-}" = "--down" ] && down=1

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# until_ok SECS WHAT COMMAND...: runs COMMAND every second until it succeeds.
until_ok() {
    local deadline=$(($(date +%s) + $1)) what="$2"
    shift 2
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timed out after ${WAIT_SECS}s waiting for $what" >&2
            return 1
        fi
        sleep 1
    done
}

# The JSON of `saectl cluster` asked of one service.
cluster_json() { sae_ctl "$1" --json cluster 2>/dev/null; }

# owner_of SERVICE: the name of the node owning $ROUTER, as SERVICE sees it (empty: none).
owner_of() {
    cluster_json "$1" | sae_json "next((r.get('owner_name') or '') for r in j.get('routers', []) if r.get('router') == '$ROUTER')" 2>/dev/null || true
}

# The container of a node name: sae1..sae3 are their services; a sae-extra node is named
# after its container host name (the short container id).
container_of() {
    case "$1" in
    sae1 | sae2 | sae3) sae_container "$1" ;;
    *) echo "$1" ;;
    esac
}

# node_ctl NODE ARGS...: saectl inside that node's container.
node_ctl() {
    local node="$1"
    shift
    docker exec "$(container_of "$node")" /saectl --timeout 5 "$@"
}

# The subscriber sessions a node holds.
sessions_on() {
    node_ctl "$1" --json subscriber list --page-size 1 2>/dev/null | sae_json "j.get('total', 0)" 2>/dev/null || echo 0
}

step "image"
bash "$ROOT/deploy/build-image.sh" --if-missing

step "cluster and simulated router up (project $SAE_PROJECT)"
sae_compose_up --profile demo --
sae_wait_healthy "$WAIT_SECS"

step "waiting for the router's $SUBSCRIBERS logins"
logins_done() { sae_compose_all logs --no-color sim 2>/dev/null | grep -q '"event":"logins-done"'; }
until_ok "$WAIT_SECS" "the simulator's logins-done event" logins_done
sae_compose_all logs --no-color sim | grep '"event":"logins-done"' | tail -n 1

step "saectl cluster"
sae_ctl sae1 cluster
has_owner() { owner=$(owner_of sae1); [ -n "$owner" ]; }
owner=""
until_ok "$WAIT_SECS" "an owner of $ROUTER" has_owner
before=$(sessions_on "$owner")
echo "router $ROUTER is served by $owner, which holds $before subscriber sessions"

survivor=sae1
[ "$owner" = sae1 ] && survivor=sae2

step "docker kill $owner (no graceful leave)"
docker kill "$(container_of "$owner")" >/dev/null
started=$(date +%s)

step "waiting for another node to take $ROUTER over (asking $survivor)"
new_owner=""
moved() { new_owner=$(owner_of "$survivor"); [ -n "$new_owner" ] && [ "$new_owner" != "$owner" ]; }
until_ok "$WAIT_SECS" "a new owner of $ROUTER" moved
echo "$ROUTER moved from $owner to $new_owner after $(($(date +%s) - started))s"

step "subscribers on $new_owner (rebuilt from the router's replay)"
after=0
intact() { after=$(sessions_on "$new_owner"); [ "$after" -ge "$before" ]; }
if until_ok "$WAIT_SECS" "$before sessions on $new_owner" intact; then
    echo "subscriber count intact: $before before, $after after"
else
    echo "subscriber count NOT intact: $before before, $after after" >&2
fi
node_ctl "$new_owner" subscriber list --page-size 10 || true

step "saectl cluster (asked of $survivor)"
sae_ctl "$survivor" cluster || true

if [ "$down" -eq 1 ]; then
    step "down -v"
    sae_compose_all down -v --remove-orphans
else
    echo
    echo "The cluster keeps running; \`docker compose -p $SAE_PROJECT -f deploy/compose.yaml start $owner\`"
    echo "brings the killed node back, \`... --profile demo down -v\` removes everything."
fi
