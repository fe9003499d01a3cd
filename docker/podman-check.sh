#!/usr/bin/env bash
# Prove that docker/Dockerfile builds and that its container runs the CI
# (.ci/run) green, with podman instead of a Docker engine, on a machine that
# reaches Debian's archive and the Go module proxy but no container registry.
#
#   sudo docker/podman-check.sh [REPO]      # REPO: default, this script's repo
#
# Run as root on Debian 12.  Builds the committed state (HEAD) of REPO, as CI
# sees it.  Output: $WORK/build.log, $WORK/ci.log, and $WORK/fuzz after a
# failed run; the exit code is the build's or the CI's.  Removes what it made
# except the base image, which later runs reuse.  One run at a time.
#   WORK=/tmp/podman-check  IMAGE=ngx_wgconn-check-<pid>  CI_TIMEOUT=3600 (s)
#   MIRROR=http://deb.debian.org/debian  KEEP_IMAGE=1 keeps the built image
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "${1:-$here}" && pwd)
work=${WORK:-/tmp/podman-check}
# a name of its own: another user's build must not retag our image
image=${IMAGE:-ngx_wgconn-check-$$}
mirror=${MIRROR:-http://deb.debian.org/debian}
ci_timeout=${CI_TIMEOUT:-3600}
base=docker.io/library/debian:bookworm
ctr=ngx_wgconn-ci-$$

[ "$(id -u)" = 0 ] || { echo "podman-check: run as root" >&2; exit 1; }

# Two CI runs at once on a small machine make the timing-sensitive tests
# fail for both, and two base-image builds would race.
lock=/run/lock/ngx_wgconn-podman-check.lock
exec 9>"$lock"
flock -n 9 || { echo "podman-check: another run holds $lock" >&2; exit 1; }

# runc, not podman's default crun: crun refuses a hybrid cgroup v1/v2 host
# whose cgroup2 tree has controllers ("cgroups in hybrid mode not supported");
# runc works there and on plain cgroup v2.
need=(podman runc debootstrap git ca-certificates)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
rt=(--runtime runc)

rm -rf "$work/src" "$work/rootfs"
mkdir -p "$work"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    podman rm -f -t 0 "$ctr" >/dev/null 2>&1 || true
    # never rmi -f: it would kill any container still using the image
    [ -n "${KEEP_IMAGE:-}" ] || podman rmi "$image" >/dev/null 2>&1 || true
    rm -rf "$work/src" "$work/rootfs"
}
trap cleanup EXIT

# A clone, not the work tree: the build context must not carry build/ or
# other local leftovers (the Dockerfile copies the whole context).
git clone -q "$repo" "$work/src"
echo "podman-check: $(git -C "$work/src" log --oneline -1)"

# No registry: make debian:bookworm locally, set up like Docker Hub's image
# (debuerreotype's minimizing config): deb822 sources with updates and
# security, no service starts during installs, no apt caches.
if ! podman image exists "$base"; then
    r=$work/rootfs
    debootstrap --variant=minbase bookworm "$r" "$mirror" \
        >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; exit 1; }
    rm -f "$r/etc/apt/sources.list"
    sec=${mirror%/debian}/debian-security
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    clean='"rm -f /var/cache/apt/archives/*.deb'
    clean+=' /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<EOF
DPkg::Post-Invoke { $clean };
APT::Update::Post-Invoke { $clean };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    a=$r/etc/apt/apt.conf.d
    echo 'Acquire::GzipIndexes "true";' >"$a/docker-gzip-indexes"
    echo 'Acquire::Languages "none";' >"$a/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' \
        >"$a/docker-autoremove-suggests"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin \
           "$r"/var/cache/apt/archives/*.deb
    : >"$r/etc/resolv.conf"
    tar -C "$r" -c . | podman import -q - "$base" >/dev/null
    rm -rf "$r"
fi

t0=$(date +%s)
podman build "${rt[@]}" --pull=never --network=host \
    -f "$work/src/docker/Dockerfile" -t "$image" "$work/src" \
    >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
t1=$(date +%s)
echo "podman-check: image built in $((t1 - t0)) s"

run=("${rt[@]}" --privileged -e CI=true)
# Debian's podman 4.3 asks the runtime for nofile/nproc limits of 1048576,
# which only a process with CAP_SYS_RESOURCE may set; without it (a sandboxed
# root), pass limits it can grant.  Podman lowers its own nproc to 32768.
if ! (ulimit -Hn $(( $(ulimit -Hn) + 1 ))) 2>/dev/null; then
    nproc=$(ulimit -Hu)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
    nofile=$(ulimit -Hn)
    run+=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
fi
# The CI fetches wireguard-go from the Go module proxy over HTTPS: trust what
# the host trusts, so that a TLS-intercepting proxy's CA (added on the host
# with update-ca-certificates) works inside too.  Go reads SSL_CERT_FILE.
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    run+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro
          -e SSL_CERT_FILE=/etc/ssl/host-ca.crt)
fi
# wireguard-go needs TUN; --privileged passes the host's /dev, so the host
# must have the device.
[ -c /dev/net/tun ] || modprobe tun
# The container keeps podman's default network (its own namespace behind
# NAT): the tests' namespaces and veth pairs live inside it and cannot clash
# with anything on the host; apt and the Go proxy are reached through NAT.
rc=0
timeout "$ci_timeout" podman run --name "$ctr" "${run[@]}" "$image" \
    >"$work/ci.log" 2>&1 || rc=$?
t2=$(date +%s)
# a failed run's fuzz findings (crash-* inputs, and the binaries that
# symbolize their stacks) would go with the container
if [ "$rc" != 0 ]; then
    rm -rf "$work/fuzz"
    podman cp "$ctr:/src/fuzz" "$work/fuzz" 2>/dev/null \
        && echo "podman-check: the container's fuzz/ is in $work/fuzz"
fi
tail -30 "$work/ci.log"
echo "podman-check: CI exit $rc in $((t2 - t1)) s" \
     "(build $((t1 - t0)) s); log $work/ci.log"
exit "$rc"
