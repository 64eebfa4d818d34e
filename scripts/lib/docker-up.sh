#!/usr/bin/env bash
# Bring up what the docker sandbox needs, idempotently, and fast when it is all up:
#   1. dockerd installed (Debian's docker.io, plus debootstrap for the offline image build)
#   2. the daemon reachable (started in the background when not; log in $HARNESS_DOCKERD_LOG)
#   3. the sandbox image present (built with `harness image build`, offline when needed)
# Run it (`scripts/lib/docker-up.sh [IMAGE...]`, exit 1 when something is missing) or
# source it: sourcing brings it all up too but never fails the sourcing script (set
# HARNESS_DOCKER_UP_DEFINE_ONLY=1 to only define `harness_docker_up [IMAGE...]`).
# Needs root for steps 1 and 2 (and for the offline build). See sandboxes/README.md for
# what dockerd needs on our machines.
#
# Environment:
#   HARNESS_DOCKERD_LOG    dockerd's log (default /var/log/harness-dockerd.log)
#   HARNESS_DOCKERD_FLAGS  extra dockerd flags; skips the fallback ladder when set
#   HARNESS_DOCKER_WAIT    seconds to wait for each dockerd start (default 30)
#   HARNESS_IMAGES         images to make present (default: python)

_harness_say() { echo "docker-up: $*" >&2; }

_harness_repo_root() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    (cd "$here/../.." && pwd)
}

_harness_daemon_ok() {
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

_harness_install_docker() {
    local need=()
    command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    command -v docker >/dev/null 2>&1 || need+=(docker.io)
    command -v iptables >/dev/null 2>&1 || need+=(iptables)
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        _harness_say "missing ${need[*]} and not root: install them (apt-get install ${need[*]})"
        return 1
    fi
    local log=/var/log/harness-apt.log
    _harness_say "installing ${need[*]} (apt-get, log: $log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >>"$log" 2>&1 || { tail -3 "$log" >&2; _harness_say "apt-get update failed"; return 1; }
    # --no-install-recommends: no apparmor, no needrestart; nothing here uses them.
    apt-get install -y --no-install-recommends "${need[@]}" ca-certificates >>"$log" 2>&1 \
        || { tail -3 "$log" >&2; _harness_say "apt-get install ${need[*]} failed"; return 1; }
}

# Start dockerd with FLAGS; wait for the API; 0 when it answers, 1 when it died or timed out.
_harness_start_dockerd() {
    local log="$1"; shift
    local wait="${HARNESS_DOCKER_WAIT:-30}" pid i
    _harness_say "starting dockerd ${*:-(default flags)} (log: $log)"
    echo "=== $(date -u +%FT%TZ) docker-up: dockerd $*" >>"$log"
    # setsid + nohup: the daemon outlives the shell (and the CI step) that started it.
    setsid nohup dockerd "$@" >>"$log" 2>&1 </dev/null &
    pid=$!
    for ((i = 0; i < wait * 4; i++)); do
        if _harness_daemon_ok; then
            _harness_say "dockerd up (pid $pid) after $((i / 4))s"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            _harness_say "dockerd exited: $(grep -E 'level=(fatal|error)|failed to start' "$log" | tail -1 | cut -c1-200)"
            return 1
        fi
        sleep 0.25
    done
    _harness_say "dockerd did not answer within ${wait}s; stopping it"
    kill "$pid" 2>/dev/null
    sleep 1
    return 1
}

_harness_start_daemon() {
    local log="${HARNESS_DOCKERD_LOG:-/var/log/harness-dockerd.log}"
    if [ "$(id -u)" != 0 ]; then
        _harness_say "the Docker daemon is not reachable and we are not root: start dockerd, or use --sandbox local"
        return 1
    fi
    if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null 2>&1; then
        rm -f /var/run/docker.sock /var/run/docker.pid  # stale, from a daemon that died
    fi
    mkdir -p "$(dirname "$log")"
    if [ -n "${HARNESS_DOCKERD_FLAGS:-}" ]; then
        # shellcheck disable=SC2086
        _harness_start_dockerd "$log" $HARNESS_DOCKERD_FLAGS
        return
    fi
    # The ladder: defaults (overlay2, iptables) work on our Firecracker VMs; the next
    # rungs are for hosts without iptables/netfilter, then without overlayfs.
    _harness_start_dockerd "$log" && return 0
    _harness_start_dockerd "$log" --iptables=false --ip-masq=false --bridge=none && return 0
    _harness_start_dockerd "$log" --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none && return 0
    _harness_say "dockerd would not start with any flags; see $log"
    return 1
}

_harness_build_images() {
    local root name
    root="$(_harness_repo_root)"
    for name in "$@"; do
        if docker image inspect "harness/$name:latest" >/dev/null 2>&1; then
            _harness_say "image harness/$name:latest present"
            continue
        fi
        _harness_say "image harness/$name:latest absent: building it"
        if command -v harness >/dev/null 2>&1 && harness image build --help >/dev/null 2>&1; then
            harness image build "$name" >&2 || return 1
        else
            (cd "$root" && "${PYTHON:-python3}" -m harness image build "$name") >/dev/null || return 1
        fi
    done
}

harness_docker_up() {
    local images=("$@")
    [ ${#images[@]} -eq 0 ] && read -r -a images <<<"${HARNESS_IMAGES:-python}"
    _harness_install_docker || return 1
    if _harness_daemon_ok; then
        _harness_say "Docker daemon reachable"
    else
        _harness_start_daemon || return 1
    fi
    _harness_build_images "${images[@]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    harness_docker_up "$@"
elif [ "${HARNESS_DOCKER_UP_DEFINE_ONLY:-0}" != 1 ]; then
    # Sourced (scripts/test): bring it up, but never abort the sourcing script; docker
    # tests then skip, or fail under CI=true, each with the reason.
    harness_docker_up || _harness_say "the docker sandbox is unavailable; docker tests will skip (fail under CI=true)"
fi
