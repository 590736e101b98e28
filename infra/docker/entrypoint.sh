#!/usr/bin/env bash
# The image's entry point: one role per container (infra/compose.yaml, infra/k8s/), the same commands as
# the Procfile's processes with the addresses a container needs. `entrypoint.sh help` lists the roles;
# anything else is run as given (`entrypoint.sh bash`, `entrypoint.sh python manage.py shell`).
#
# The roles that run the python tool's sandbox (worker, ray-worker, sandbox-setup) start as root: the
# sandbox runs bubblewrap as root and drops each call to a uid of its own (arpo_engine/tools/python_sandbox.py).
# They first delegate a cgroup v2 subtree to the sandbox where the container allows it, then print whether the
# sandbox can start here (arpo_engine/tools/sandbox_doctor.py) and, if not, which privilege the container lacks.
set -euo pipefail

COMMANDS="web worker migrate ray-head ray-worker sandbox-setup doctor demo help"
APP_DIR=${ARPO_APP_DIR:-/srv/arpo/app}
RAY_PORT=${ARPO_RAY_PORT:-6379}

log() { echo "entrypoint: $*" >&2; }

# Files made by root (worker, Ray) and by the web user (uid 10001) land in the shared volume, whose folders
# carry the arpo group with setgid: group-writable files let either side delete what the other made.
umask 0002
cd "$APP_DIR" 2>/dev/null || log "no $APP_DIR here: staying in $PWD"

# cgroup v2 refuses to hand controllers to a group that holds processes (sandbox_limits.py). With a private
# cgroup namespace the container's group is our root: move every process into a leaf (`service`), delegate
# memory and pids from the root, and make the sandboxes' parent beside it ($ARPO_SANDBOX_CGROUP).
delegate_cgroup() {
    local root=/sys/fs/cgroup parent=${ARPO_SANDBOX_CGROUP:-/arpo-sandbox}
    [ -f "$root/cgroup.controllers" ] || { log "cgroup v1 or none: the sandbox finds its own groups"; return 0; }
    [ "$(cat /proc/self/cgroup)" = "0::/" ] || { log "cgroup v2 without a private namespace: nothing to delegate"; return 0; }
    if [ ! -w "$root/cgroup.procs" ]; then
        # Read-only for an unprivileged container; remounting needs CAP_SYS_ADMIN and no AppArmor mount rule.
        mount -o remount,rw "$root" 2>/dev/null || { log "cgroup v2 is read-only here: sandbox calls get rlimits only"; return 0; }
    fi
    mkdir -p "$root/service" "$root${parent}"
    local pid pids
    for _ in 1 2; do # a second pass moves what forked while the first ran
        mapfile -t pids <"$root/cgroup.procs"
        for pid in "${pids[@]}"; do
            echo "$pid" >"$root/service/cgroup.procs" 2>/dev/null || true
        done
    done
    if echo "+memory +pids" >"$root/cgroup.subtree_control" 2>/dev/null; then
        log "cgroup v2: sandbox calls get their own groups under $parent"
    else
        log "cgroup v2: could not delegate memory and pids (processes left in the root group?)"
    fi
}

sandbox_setup() {
    if [ "$(id -u)" != 0 ]; then
        log "running as uid $(id -u): the python tool needs root (Docker user: root, Kubernetes runAsUser: 0)"
    else
        delegate_cgroup
    fi
    # The verdict goes to the log; a worker without the sandbox still runs every other tool, unless required.
    if ! python -m arpo_engine.tools.sandbox_doctor; then
        if [ "${ARPO_SANDBOX_REQUIRED:-0}" = 1 ]; then
            log "ARPO_SANDBOX_REQUIRED=1: stopping"
            exit 1
        fi
        log "going on without the python tool (ARPO_SANDBOX_REQUIRED=1 would stop here)"
    fi
    return 0
}

ray_head_address() {
    # RAY_ADDRESS as the service reads it (host:port, or ray:// for Ray Client); the head when unset.
    local address=${RAY_ADDRESS:-ray-head:$RAY_PORT}
    echo "${address#ray://}"
}

case "${1:-help}" in
web)
    shift
    exec uvicorn webapp.asgi:application --host "${ARPO_HOST:-0.0.0.0}" --port "${ARPO_PORT:-8000}" \
        --ws websockets-sansio --lifespan off --proxy-headers --forwarded-allow-ips "${ARPO_FORWARDED_ALLOW_IPS:-*}" "$@"
    ;;
worker)
    shift
    sandbox_setup
    if [[ "${RAY_ADDRESS:-}" != ray://* ]]; then
        # A Ray driver needs a raylet on its own host: join the cluster as a node that offers nothing, so no
        # run is ever placed here. (RAY_ADDRESS=ray://head:10001 uses Ray Client instead and skips this.)
        ray start --address="$(ray_head_address)" --num-cpus=0 --num-gpus=0 \
            --object-store-memory="${ARPO_RAY_DRIVER_OBJECT_STORE_BYTES:-268435456}" --disable-usage-stats
    fi
    exec celery -A worker.celery_app worker --queues runs,short --concurrency "${ARPO_WORKER_CONCURRENCY:-2}" \
        --loglevel INFO --without-gossip --without-mingle "$@"
    ;;
migrate)
    # A one-shot job. The deployment checks print their warnings (plain http without SECURE_SSL_REDIRECT is one
    # on purpose for a trial); errors stop it, as do prod settings without their secrets.
    python manage.py check --deploy
    exec python manage.py migrate --noinput
    ;;
ray-head)
    shift
    # Runs go to worker nodes only (--num-cpus=0): the head keeps the cluster's state and nothing else.
    exec ray start --head --block --port="$RAY_PORT" --num-cpus="${ARPO_RAY_HEAD_CPUS:-0}" --num-gpus=0 \
        --dashboard-host=0.0.0.0 --ray-client-server-port=10001 --disable-usage-stats "$@"
    ;;
ray-worker)
    shift
    sandbox_setup
    resources=()
    [ -n "${ARPO_RAY_RESOURCES:-}" ] && resources=(--resources="$ARPO_RAY_RESOURCES")
    exec ray start --address="$(ray_head_address)" --block --disable-usage-stats "${resources[@]}" "$@"
    ;;
sandbox-setup)
    # For pods whose command is generated (KubeRay runs `<command> && ray start ...`).
    sandbox_setup
    ;;
doctor)
    exec python -m arpo_engine.tools.sandbox_doctor "${@:2}"
    ;;
demo)
    # A trial deployment: the bundled model, the demo task, its SFT cold start (minutes) and the demo account.
    python -m arpo_engine.models prepare smollm2-135m
    [ -f var/demo/manifest.json ] || python -m arpo_engine.demo generate --out var/demo
    [ -f var/models/smollm2-135m-demo-sft/config.json ] ||
        python -m arpo_engine sft configs/demo_sft.yaml --out var/models/smollm2-135m-demo-sft
    exec python manage.py seed_demo
    ;;
help | --help | -h)
    echo "usage: entrypoint.sh COMMAND [ARGS...]; commands: $COMMANDS; anything else runs as given"
    ;;
*)
    exec "$@"
    ;;
esac
