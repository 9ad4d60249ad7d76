#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fetch the newest Debian sid kernel (vmlinuz + modules) for the VM test
# harness (tests/vm/vm-run) and cache it, extracted and depmod'ed, under
#
#   ${ZUBLK_CACHE_DIR:-/var/cache/zublk}/kernel/<ver>/
#       vmlinuz                   the kernel image
#       config                    the kernel's .config (if shipped)
#       lib/modules/<ver>/...     modules tree (.ko.xz) + depmod output
#       .complete                 marker written last
#   ${ZUBLK_CACHE_DIR:-/var/cache/zublk}/kernel/current -> <ver>
#
# Prints the cache directory of the kernel on stdout (nothing else on
# stdout; progress goes to stderr).
#
# Usage: scripts/fetch-kernel.sh [--cached] [--version VER] [--quiet]
#   --cached       don't consult apt: print the 'current' cached kernel if
#                  there is one, otherwise resolve/fetch as usual
#   --version VER  use kernel ABI VER (e.g. 7.2.13+deb14-amd64) instead of
#                  what linux-image-amd64/sid currently depends on
#   --quiet        no progress messages on stderr
#
# Needs: apt (with the sid source from scripts/setup.sh), dpkg-deb, kmod,
# util-linux (flock).  Writing the cache needs root (or a writable
# ZUBLK_CACHE_DIR).
set -euo pipefail

prog=fetch-kernel
cache_root=${ZUBLK_CACHE_DIR:-/var/cache/zublk}/kernel
quiet=0
cached=0
want_ver=

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
note() { [[ $quiet == 1 ]] || printf '%s: %s\n' "$prog" "$*" >&2; }

while (($#)); do
	case $1 in
	--cached) cached=1 ;;
	--quiet | -q) quiet=1 ;;
	--version) [[ $# -ge 2 ]] || die "--version needs an argument"; want_ver=$2; shift ;;
	--version=*) want_ver=${1#*=} ;;
	-h | --help) sed -n '4,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument: $1" ;;
	esac
	shift
done

is_complete() { [[ -f $1/.complete && -f $1/vmlinuz && -d $1/lib/modules ]]; }

if [[ $cached == 1 && -z $want_ver ]] && is_complete "$cache_root/current"; then
	printf '%s\n' "$(cd -P "$cache_root/current" && pwd)"
	exit 0
fi

# --- resolve the kernel ABI version -----------------------------------------
# Fields of the newest (candidate) stanza of an apt package: apt_field PKG FIELD
apt_field() {
	apt-cache show --no-all-versions "$1" 2>/dev/null |
		awk -v f="$2" '$0 == "" { exit } index($0, f ": ") == 1 { print substr($0, length(f) + 3) }'
}

if [[ -n $want_ver ]]; then
	ver=$want_ver
else
	deps=$(apt_field linux-image-amd64/sid Depends) || true
	[[ -n $deps ]] ||
		die "apt knows no linux-image-amd64 in sid; run scripts/setup.sh (adds the sid source and runs apt-get update)"
	ver=$(tr ',' '\n' <<<"$deps" | sed -n 's/^ *linux-image-\([^ ]*\).*/\1/p' | head -n1)
	[[ -n $ver ]] || die "cannot find linux-image-<ver> in Depends of linux-image-amd64/sid: $deps"
fi

dir=$cache_root/$ver

set_current() {
	# Atomically repoint 'current' at $ver (best effort, e.g. read-only cache).
	ln -sfn "$ver" "$cache_root/.current.$$" 2>/dev/null &&
		mv -Tf "$cache_root/.current.$$" "$cache_root/current" 2>/dev/null ||
		rm -f "$cache_root/.current.$$" 2>/dev/null || true
}

if is_complete "$dir"; then
	[[ "$(readlink "$cache_root/current" 2>/dev/null || true)" == "$ver" ]] || set_current
	printf '%s\n' "$dir"
	exit 0
fi

# --- download + extract ------------------------------------------------------
mkdir -p "$cache_root" 2>/dev/null || die "cannot create $cache_root (run as root, or set ZUBLK_CACHE_DIR)"
[[ -w $cache_root ]] || die "$cache_root is not writable (run as root, or set ZUBLK_CACHE_DIR)"

exec {lockfd}>"$cache_root/.lock"
flock "$lockfd"
if is_complete "$dir"; then # someone else fetched it while we waited
	set_current
	printf '%s\n' "$dir"
	exit 0
fi

tmp=$(mktemp -d "$cache_root/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The image meta package of this ABI depends on the split-out packages
# (linux-binary-*, linux-modules-*, linux-base-*); older kernels ship
# everything in linux-image-<ver> itself.
img_deps=$(apt_field "linux-image-$ver" Depends) || true
dep_names=$(tr ',' '\n' <<<"${img_deps//|/,}" | awk '{ print $1 }')
pkgs=()
for p in linux-binary linux-modules linux-base; do
	if grep -qxF "$p-$ver" <<<"$dep_names"; then pkgs+=("$p-$ver"); fi
done
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=("linux-image-$ver")

note "downloading ${pkgs[*]}"
mkdir -p "$tmp/debs"
# apt-get download drops privileges to _apt; give it a directory it can write.
if id _apt >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then chown _apt "$tmp/debs"; fi
if ! (cd "$tmp/debs" && apt-get download -q "${pkgs[@]}") >"$tmp/apt.log" 2>&1; then
	cat "$tmp/apt.log" >&2
	die "apt-get download ${pkgs[*]} failed"
fi

note "extracting"
mkdir -p "$tmp/x" "$tmp/out/lib/modules"
for deb in "$tmp"/debs/*.deb; do
	dpkg-deb -x "$deb" "$tmp/x"
done
rm -rf "$tmp/debs"

moddir=
for d in "$tmp/x/usr/lib/modules/$ver" "$tmp/x/lib/modules/$ver"; do
	[[ -d $d ]] && { moddir=$d; break; }
done
[[ -n $moddir ]] || die "no lib/modules/$ver in ${pkgs[*]}"
mv "$moddir" "$tmp/out/lib/modules/$ver"
m=$tmp/out/lib/modules/$ver

vmlinuz=
for f in "$m/vmlinuz" "$tmp/x/boot/vmlinuz-$ver"; do
	[[ -f $f ]] && { vmlinuz=$f; break; }
done
[[ -n $vmlinuz ]] || die "no vmlinuz in ${pkgs[*]}"
mv "$vmlinuz" "$tmp/out/vmlinuz"
for f in "$m/config" "$tmp/x/boot/config-$ver"; do
	[[ -f $f ]] && { cp "$f" "$tmp/out/config"; break; }
done
for f in "$m/System.map" "$tmp/x/boot/System.map-$ver"; do
	[[ -f $f && ! -f $m/System.map ]] && cp "$f" "$m/System.map"
done
rm -rf "$tmp/x"

note "depmod $ver"
depmod -b "$tmp/out" "$ver" || die "depmod failed"
for mod in ublk_drv 9p overlay; do
	modprobe -d "$tmp/out" -S "$ver" --show-depends "$mod" >/dev/null 2>&1 ||
		die "kernel $ver has no module $mod"
done

printf '%s\n' "$ver" >"$tmp/out/.complete"
rm -rf "$dir" # an incomplete leftover, if any
mv -T "$tmp/out" "$dir"
set_current
note "cached kernel $ver in $dir"
printf '%s\n' "$dir"
