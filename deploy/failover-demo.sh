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
# `docker kill` of the owner → wait for a new owner → wait until the new owner holds as many
# subscriber sessions as the old one did → the new owner's subscriber list → the figures.
#
# Figures, in seconds from the `docker kill` (polled every SAE_POLL_SECS, so each is late by
# at most one poll plus one `saectl` call): the owner change (another node owns the router in
# the cluster's view) and every session back (the new owner holds them all). From the
# simulator's log (docker's timestamps of its lines): the new owner's SRQ reaching the router
# and the router's last replay answered by the new owner.
#
# Environment: SAE_PROJECT (default sae-cluster), SAE_IMAGE, SAE_NET_PREFIX,
# SAE_SIM_SUBSCRIBERS (default 20), SAE_WAIT_SECS (default 120), SAE_POLL_SECS (default
# 0.2). Needs python3 (JSON) and GNU date (%N).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/compose-lib.sh
. "$ROOT/deploy/compose-lib.sh"

ROUTER=router1.example.net
SUBSCRIBERS="${SAE_SIM_SUBSCRIBERS:-20}"
export SAE_SIM_SUBSCRIBERS="$SUBSCRIBERS"
WAIT_SECS="${SAE_WAIT_SECS:-120}"
POLL_SECS="${SAE_POLL_SECS:-0.2}"
down=0
[ "${1:-}" = "--down" ] && down=1

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# Now, in seconds since the epoch with nanoseconds.
now() { date +%s.%N; }

# secs_between LATER EARLIER: seconds, two decimals.
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# until_at SECS WHAT COMMAND...: runs COMMAND every POLL_SECS until it succeeds; sets `at` to
# the time (as `now`) when it did. until_ok: the same, every second.
at=""
until_at() {
    local secs="$1" what="$2"
    local deadline=$(($(date +%s) + secs))
    shift 2
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timed out after ${secs}s waiting for $what" >&2
            return 1
        fi
        sleep "$POLL_SECS"
    done
    at=$(now)
}
until_ok() { POLL_SECS=1 until_at "$@"; }

# The JSON of `saectl cluster` asked of one node.
cluster_json() { node_ctl "$1" --json cluster 2>/dev/null; }

# owner_of SERVICE: the name of the node owning $ROUTER, as SERVICE sees it (empty: none).
owner_of() {
    cluster_json "$1" | sae_json "next((r.get('owner_name') or '') for r in j.get('routers', []) if r.get('router') == '$ROUTER')" 2>/dev/null || true
}

# The container of a node name: sae1..sae3 are their services (looked up once by
# `remember_containers`: compose is slow to ask, too slow to poll with); a sae-extra node is
# named after its container host name (the short container id).
declare -A CONTAINERS=()
remember_containers() {
    local s
    for s in sae1 sae2 sae3 sim; do
        CONTAINERS[$s]=$(sae_container "$s")
    done
}
container_of() {
    case "$1" in
    sae1 | sae2 | sae3) echo "${CONTAINERS[$1]:-$(sae_container "$1")}" ;;
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
remember_containers
sae_ctl sae1 cluster
has_owner() { owner=$(owner_of sae1); [ -n "$owner" ]; }
owner=""
until_ok "$WAIT_SECS" "an owner of $ROUTER" has_owner
before=$(sessions_on "$owner")
echo "router $ROUTER is served by $owner, which holds $before subscriber sessions"

survivor=sae1
[ "$owner" = sae1 ] && survivor=sae2

step "docker kill $owner (no graceful leave)"
killed=$(now)
docker kill "$(container_of "$owner")" >/dev/null
echo "killed at $(date -d "@$killed" '+%T.%3N')"

step "waiting for another node to take $ROUTER over (asking $survivor)"
new_owner=""
moved() { new_owner=$(owner_of "$survivor"); [ -n "$new_owner" ] && [ "$new_owner" != "$owner" ]; }
until_at "$WAIT_SECS" "a new owner of $ROUTER" moved
owner_secs=$(secs_between "$at" "$killed")
echo "$ROUTER moved from $owner to $new_owner ${owner_secs}s after the kill"

step "waiting for the $before sessions on $new_owner (rebuilt from the router's replay)"
after=0
intact() { after=$(sessions_on "$new_owner"); [ "$after" -ge "$before" ]; }
if until_at "$WAIT_SECS" "$before sessions on $new_owner" intact; then
    sessions_secs=$(secs_between "$at" "$killed")
    echo "subscriber count intact: $before before, $after after"
else
    sessions_secs="more than $WAIT_SECS"
    echo "subscriber count NOT intact: $before before, $after after" >&2
fi
node_ctl "$new_owner" subscriber list --page-size 10 || true

# The router's side, from docker's timestamps of the simulator's lines: after the kill, the
# first SRQ from the new owner and the last replay the new owner answered.
router_side=$(docker logs --timestamps "${CONTAINERS[sim]}" 2>&1 |
    python3 -c '
import datetime, json, sys
killed, host = float(sys.argv[1]), sys.argv[2].lower()
def at(stamp):
    day, frac = stamp.rstrip("Z").split(".")
    t = datetime.datetime.strptime(day, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float("0." + frac) - killed
srq, replays, last = None, 0, None
for line in sys.stdin:
    stamp, _, text = line.partition(" ")
    try:
        e = json.loads(text)
    except ValueError:
        continue
    sae = str(e.get("from") or e.get("sae") or "").lower()
    if not sae.startswith(host + ".") or at(stamp) < 0:
        continue
    if srq is None and e.get("event") == "request" and e.get("command") == "SRQ":
        srq = at(stamp)
    elif srq is not None and e.get("event") == "replayed" and e.get("result") == 2001:
        replays, last = replays + 1, at(stamp)
print("SRQ from %s reached the router %s, %d replays answered by %s" % (
    host, "after %.2fs" % srq if srq is not None else "(not seen)", replays,
    "%.2fs" % last if last is not None else "-"))
' "$killed" "$new_owner" 2>/dev/null || echo "(no simulator log)")

step "failover figures (seconds from the docker kill of $owner)"
echo "owner change ($owner -> $new_owner):        ${owner_secs}s"
echo "all $before sessions back on $new_owner:    ${sessions_secs}s"
echo "router: $router_side"

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
