#!/usr/bin/env bash
# Builds the local test image `homelab-test/busybox:latest` with `docker import` of a tarball
# holding /bin/busybox and its applet links. No registry is needed or used.
set -euo pipefail
IMAGE=${TEST_IMAGE:-homelab-test/busybox:latest}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/etc" "$work/rootfs/sbin" "$work/rootfs/usr/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf /bin/busybox "$work/rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -c . | docker import - "$IMAGE" >/dev/null
echo "test-image: built $IMAGE"
