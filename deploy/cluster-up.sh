#!/usr/bin/env bash
# Brings the SAE cluster of deploy/compose.yaml up and prints its state.
#
#   bash deploy/cluster-up.sh                   # sae1, sae2, sae3
#   bash deploy/cluster-up.sh --demo            # + the simulated router (profile demo)
#   bash deploy/cluster-up.sh --nic             # + a standalone NIC the nodes resolve at
#   bash deploy/cluster-up.sh --scale sae-extra=2   # + two nodes that join by themselves
#   bash deploy/cluster-up.sh --build           # rebuild the image first (else only if missing)
#
# Other arguments go to `compose up`. The image is built (deploy/build-image.sh) when it does
# not exist yet. Waits until every node is healthy, then prints `saectl cluster` (members,
# roles, leader, term, router owners) and `saectl status` of each node, run inside the node
# containers (the image has saectl; no host port is needed).
#
# Environment: SAE_PROJECT (compose project, default sae-cluster), SAE_IMAGE, SAE_NET_PREFIX,
# SAE_WAIT_SECS (default 180).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/compose-lib.sh
. "$ROOT/deploy/compose-lib.sh"

build=0
profile=()
up_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --demo) profile+=(--profile demo) ;;
    --nic)
        profile+=(--profile nic)
        export SAE_NIC_ENDPOINTS=nic:50070
        ;;
    --build) build=1 ;;
    -h | --help)
        sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) up_args+=("$1") ;;
    esac
    shift
done

if [ "$build" -eq 1 ]; then
    bash "$ROOT/deploy/build-image.sh"
else
    bash "$ROOT/deploy/build-image.sh" --if-missing
fi

echo "==> compose up (project $SAE_PROJECT)"
sae_compose_up "${profile[@]}" -- "${up_args[@]}"
sae_wait_healthy "${SAE_WAIT_SECS:-180}"

echo
echo "==> saectl cluster (asked of sae1)"
sae_ctl sae1 cluster || echo "(saectl cluster failed: is the cluster subcommand in this build?)"
for service in $(sae_node_services); do
    for id in $(sae_compose ps -q "$service"); do
        name=$(docker inspect -f '{{.Config.Hostname}}' "$id")
        echo
        echo "==> saectl status ($service, $name)"
        docker exec "$id" /saectl --timeout 5 status || true
    done
done
echo
echo "Management API of sae1 on the host: $(sae_compose port sae1 50051)"
if [ -n "${SAE_NIC_ENDPOINTS:-}" ]; then
    echo "Standalone NIC on the host: $(sae_compose "${profile[@]}" port nic 50070)"
fi
echo "  saectl --server http://$(sae_compose port sae1 50051) cluster"
echo "Stop: docker compose -p $SAE_PROJECT -f deploy/compose.yaml down -v"
