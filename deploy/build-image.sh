#!/usr/bin/env bash
# Builds the container image of the SAE cluster: statically linked release binaries of
# sae-node, sae-nic (the standalone NIC), saectl and sae-sim on an empty (FROM scratch) base.
#
#   bash deploy/build-image.sh              # image sae-cluster:dev
#   SAE_IMAGE=sae-cluster:test bash deploy/build-image.sh
#   bash deploy/build-image.sh --if-missing # only when the image does not exist yet
#
# Cargo rebuilds only what changed (target/x86_64-unknown-linux-gnu/release, shared with every
# other build of this kind); the binaries are copied into the build context only when they
# changed, and the docker build reuses its layer cache, so a second run takes seconds.
# `--target` is required: with crt-static and no target, proc-macros fail to build. Static
# glibc resolves names through /etc/hosts and DNS only (nsswitch.conf: files dns).
#
# Environment: SAE_IMAGE (image name, default sae-cluster:dev), CARGO_TARGET_DIR (cargo's),
# CARGO (cargo binary), DOCKER (docker binary).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SAE_IMAGE:-sae-cluster:dev}"
CARGO="${CARGO:-cargo}"
DOCKER="${DOCKER:-docker}"
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN_DIR="$TARGET_DIR/$TRIPLE/release"
CONTEXT="$TARGET_DIR/sae-image-context"
BINARIES=(sae-node sae-nic saectl sae-sim)

if [ "${1:-}" = "--if-missing" ]; then
    if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
        echo "image $IMAGE present"
        exit 0
    fi
    shift
fi
if [ $# -gt 0 ]; then
    echo "usage: $0 [--if-missing]" >&2
    exit 2
fi

started=$(date +%s)
echo "==> cargo build (static, release, $TRIPLE)"
(
    cd "$ROOT"
    # CARGO_ENCODED_RUSTFLAGS would take precedence over RUSTFLAGS.
    unset CARGO_ENCODED_RUSTFLAGS
    RUSTFLAGS="-C target-feature=+crt-static" "$CARGO" build --release --target "$TRIPLE" \
        -p sae-node -p sae-nic-server -p sae-ctl -p sae-sim --bins
)
built=$(date +%s)

echo "==> build context $CONTEXT"
mkdir -p "$CONTEXT/rootfs/etc" "$CONTEXT/rootfs/data" "$CONTEXT/rootfs/tmp"
chmod 0755 "$CONTEXT/rootfs/data"
chmod 1777 "$CONTEXT/rootfs/tmp"
printf '# No NSS modules in the image: static glibc uses /etc/hosts, then DNS.\nhosts: files dns\n' \
    >"$CONTEXT/rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/data:/sae-node\n' >"$CONTEXT/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$CONTEXT/rootfs/etc/group"
cp "$ROOT/deploy/Dockerfile" "$CONTEXT/Dockerfile"
cp "$ROOT/deploy/sae-cluster.toml" "$CONTEXT/sae-cluster.toml"
for bin in "${BINARIES[@]}"; do
    src="$BIN_DIR/$bin"
    if [ ! -x "$src" ]; then
        echo "missing $src after the build" >&2
        exit 1
    fi
    # A static binary has no NEEDED entries and no program interpreter.
    if readelf -d "$src" 2>/dev/null | grep -q '(NEEDED)' ||
        readelf -l "$src" 2>/dev/null | grep -q 'program interpreter'; then
        echo "$src is dynamically linked; it cannot run in a FROM scratch image" >&2
        exit 1
    fi
    dst="$CONTEXT/$bin"
    if [ ! -e "$dst" ] || [ "$src" -nt "$dst" ]; then
        # Without the line tables (kept in target/ for debugging); symbols stay for backtraces.
        strip --strip-debug -o "$dst.tmp" "$src" 2>/dev/null || cp "$src" "$dst.tmp"
        touch -r "$src" "$dst.tmp"
        mv "$dst.tmp" "$dst"
    fi
done

echo "==> docker build -t $IMAGE"
# The legacy builder: no BuildKit/buildx needed, and nothing is pulled for FROM scratch.
DOCKER_BUILDKIT=0 "$DOCKER" build --quiet -t "$IMAGE" "$CONTEXT" >/dev/null
done_at=$(date +%s)

size=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1024 / 1024)) MiB ($size bytes); cargo $((built - started))s, image $((done_at - built))s"
