# Helpers shared by deploy/cluster-up.sh and deploy/failover-demo.sh (sourced, not run).
# Expects ROOT (the repository root). Works with `docker compose` (v2) or `docker-compose`
# (1.29, the Debian package).

SAE_PROJECT="${SAE_PROJECT:-sae-cluster}"
SAE_COMPOSE_FILE="$ROOT/deploy/compose.yaml"
SAE_NODE_SERVICES="sae1 sae2 sae3 sae-extra"

if docker compose version >/dev/null 2>&1; then
    SAE_COMPOSE=(docker compose)
    SAE_COMPOSE_V2=1
elif command -v docker-compose >/dev/null 2>&1; then
    SAE_COMPOSE=(docker-compose)
    SAE_COMPOSE_V2=0
else
    echo "neither \`docker compose\` nor \`docker-compose\` is installed" >&2
    exit 1
fi

# compose on the project, with the services of the active profiles only.
sae_compose() {
    "${SAE_COMPOSE[@]}" -p "$SAE_PROJECT" -f "$SAE_COMPOSE_FILE" "$@"
}

# compose on the project with every profile (logs, ps, down of the simulator and NIC too).
sae_compose_all() {
    "${SAE_COMPOSE[@]}" -p "$SAE_PROJECT" -f "$SAE_COMPOSE_FILE" --profile demo --profile nic "$@"
}

# sae_compose_up [GLOBAL OPTIONS...] -- [UP ARGS...]: `up -d` (with --wait on compose v2).
sae_compose_up() {
    local global=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        global+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    local wait=()
    [ "$SAE_COMPOSE_V2" -eq 1 ] && wait=(--wait)
    sae_compose "${global[@]}" up -d "${wait[@]}" "$@"
}

# The node services that have containers.
sae_node_services() {
    local s
    for s in $SAE_NODE_SERVICES; do
        [ -n "$(sae_compose_all ps -q "$s" 2>/dev/null)" ] && echo "$s"
    done
    return 0
}

# The container id of a service's first replica.
sae_container() {
    sae_compose_all ps -q "$1" | head -n 1
}

# sae_ctl SERVICE ARGS...: saectl inside the service's (first) container, against its node.
sae_ctl() {
    local service="$1"
    shift
    docker exec "$(sae_container "$service")" /saectl --timeout 5 "$@"
}

# Health of one container: healthy, unhealthy, starting, or the state when it has no check.
sae_health() {
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null
}

# sae_wait_healthy SECS: every container of the project healthy (or running without a check).
sae_wait_healthy() {
    local deadline=$(($(date +%s) + $1)) id state pending
    while :; do
        pending=""
        for id in $(sae_compose_all ps -q); do
            state=$(sae_health "$id")
            case "$state" in
            healthy | running) ;;
            exited | dead)
                echo "container $(docker inspect -f '{{.Name}}' "$id") $state:" >&2
                docker logs --tail 30 "$id" >&2 || true
                return 1
                ;;
            *) pending="$pending $(docker inspect -f '{{.Name}}' "$id")=$state" ;;
            esac
        done
        if [ -z "$pending" ]; then
            echo "all containers healthy"
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "timed out waiting for:$pending" >&2
            return 1
        fi
        sleep 1
    done
}

# JSON field extraction without jq: sae_json 'PYTHON EXPRESSION over j' < json
sae_json() {
    python3 -c 'import json, sys
j = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$1"
}
