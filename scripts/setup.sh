#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Prepare a Debian (bookworm or newer) machine for building and testing
# zublk, idempotently.  Run as root.
#
#   1. apt source for Debian sid (deb822, /etc/apt/sources.list.d/zublk-sid.sources)
#      pinned to priority 100 (/etc/apt/preferences.d/zublk-sid), so that
#      nothing comes from sid unless asked for explicitly
#   2. apt-get update, only if the sid lists are missing or the source changed
#      (or a package can't be found)
#   3. packages: test tools + VM harness from the default release,
#      linux-libc-dev and liburing-dev from sid (ublk UAPI header, liburing)
#   4. the newest sid kernel + modules, cached for tests/vm/vm-run
#      (scripts/fetch-kernel.sh)
#
# Prints one line per step; on failure, the failing command's output and an
# error.  Takes a couple of seconds when everything is already in place.
#
# Usage: scripts/setup.sh [--no-kernel]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# From the default release.  The last line is what tests/vm/vm-run needs.
base_pkgs=(
	fio e2fsprogs xfsprogs util-linux gnuplot-nox nbdkit qemu-utils dosfstools python3
	mdadm dmsetup jq nbd-client btrfs-progs zlib1g-dev libzstd-dev procps udev
	qemu-system-x86 busybox-static kmod cpio xz-utils coreutils debian-archive-keyring
)
# From sid (must be at least sid's version).
sid_pkgs=(linux-libc-dev liburing-dev)

sources_file=/etc/apt/sources.list.d/zublk-sid.sources
pin_file=/etc/apt/preferences.d/zublk-sid
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
sources_text="Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: $keyring
"
pin_text="Package: *
Pin: release n=sid
Pin-Priority: 100
"

fetch_kernel=1
case ${1:-} in
'') ;;
--no-kernel) fetch_kernel=0 ;;
-h | --help) sed -n '4,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
*) printf 'usage: scripts/setup.sh [--no-kernel]\n' >&2; exit 2 ;;
esac

step() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root"
command -v apt-get >/dev/null || die "needs a Debian system (apt-get)"
command -v dpkg-query >/dev/null || die "needs a Debian system (dpkg-query)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Run a command with its output captured; show it and fail if it fails.
quietly() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		die "failed: $*"
	fi
}

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	quietly apt-get install -y -q --no-install-recommends "$@"
}
apt_update() {
	quietly apt-get update -q
	updated=1
}
updated=0

# --- 1. apt source + pin ---------------------------------------------------------
need_update=0
if [[ ! -f $keyring ]]; then
	# Needed to verify sid; comes from the default release.
	apt_install debian-archive-keyring
	[[ -f $keyring ]] || die "$keyring missing (install debian-archive-keyring)"
fi
if [[ -f $sources_file ]] && cmp -s "$sources_file" <(printf '%s' "$sources_text"); then
	step "apt source $sources_file: ok"
else
	printf '%s' "$sources_text" >"$sources_file"
	need_update=1
	step "apt source $sources_file: written"
fi
if [[ -f $pin_file ]] && cmp -s "$pin_file" <(printf '%s' "$pin_text"); then
	step "apt pin $pin_file: ok"
else
	printf '%s' "$pin_text" >"$pin_file"
	step "apt pin $pin_file: written (sid at priority 100)"
fi

# --- 2. apt-get update if needed -----------------------------------------------------
if ! compgen -G '/var/lib/apt/lists/*_dists_sid_*Release' >/dev/null; then
	need_update=1
fi
if [[ $need_update == 1 ]]; then
	apt_update
	step "apt-get update: done"
else
	step "apt-get update: not needed"
fi

# --- 3. packages -------------------------------------------------------------------
installed_version() { # prints the installed version of $1, or nothing; never fails
	# dpkg-query exits 1 for a package dpkg has never heard of (pipefail).
	{ dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null || true; } |
		awk '$1 == "ii" { print $2; exit }'
}

# Newest sid stanzas of the sid packages + the kernel meta package, in one
# apt-cache call (apt-cache takes ~1.5 s per call without a pkgcache).
# Prints "package version depends" lines.
sid_info() {
	apt-cache show --no-all-versions "${sid_pkgs[@]/%//sid}" linux-image-amd64/sid 2>/dev/null |
		awk '
		/^Package: / { p = $2 }
		/^Version: / { v = $2 }
		/^Depends: / { d = substr($0, 10); gsub(/ /, "", d) }
		/^$/ { if (p != "") print p, v, (d == "" ? "-" : d); p = v = d = "" }
		END { if (p != "") print p, v, (d == "" ? "-" : d) }'
}

missing=()
for p in "${base_pkgs[@]}"; do
	[[ -n $(installed_version "$p") ]] || missing+=("$p")
done

info=$(sid_info || true)
if [[ $updated == 0 ]] && ! grep -q '^linux-image-amd64 ' <<<"$info"; then
	apt_update
	step "apt-get update: done (sid lists were stale)"
	info=$(sid_info || true)
fi
for p in "${sid_pkgs[@]}"; do
	want=$(awk -v p="$p" '$1 == p { print $2; exit }' <<<"$info")
	[[ -n $want ]] || die "apt has no $p in sid"
	have=$(installed_version "$p")
	if [[ -z $have ]] || dpkg --compare-versions "$have" lt "$want"; then
		missing+=("$p/sid")
	fi
done

if ((${#missing[@]} == 0)); then
	step "packages: all installed"
else
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
		if [[ $updated == 1 ]]; then
			cat "$log" >&2
			die "apt-get install ${missing[*]} failed"
		fi
		apt_update
		apt_install "${missing[@]}"
	fi
	step "packages: installed ${missing[*]}"
fi

# --- 4. kernel for the VM harness ------------------------------------------------------
if [[ $fetch_kernel == 1 ]]; then
	deps=$(awk '$1 == "linux-image-amd64" { print $3; exit }' <<<"$info")
	kver=$(tr ',' '\n' <<<"$deps" | sed -n 's/^linux-image-\([^(]*\).*/\1/p' | head -n1)
	[[ -n $kver ]] || die "cannot resolve the kernel version from linux-image-amd64/sid (Depends: $deps)"
	if [[ ! -f ${ZUBLK_CACHE_DIR:-/var/cache/zublk}/kernel/$kver/.complete ]]; then
		step "kernel: fetching $kver (~125 MB download)"
	fi
	if ! kdir=$("$here/fetch-kernel.sh" --quiet --version "$kver" 2>"$log"); then
		cat "$log" >&2
		die "fetching kernel $kver failed"
	fi
	step "kernel: $kver in $kdir"
fi
