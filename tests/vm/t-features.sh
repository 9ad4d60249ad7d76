# SPDX-License-Identifier: MIT
# `zublk features` names every bit the kernel reports; nothing is "unknown".
. "$(dirname "$0")/lib.sh"
out=$("$Z" features) || fail "zublk features failed"
mask=$(sed -n 's/^ublk driver features 0x\([0-9a-f]*\):$/\1/p' <<<"$out")
[ -n "$mask" ] || fail "no feature mask in: $out"
named=$(grep -c '^  [A-Z_]' <<<"$out")
bits=$(python3 -c "print(bin(0x$mask).count('1'))")
note "mask 0x$mask: $bits bits, $named named"
[ "$named" -eq "$bits" ] || fail "$bits bits set but $named named"
grep -qi unknown <<<"$out" && fail "unknown feature: $out"
grep -q '^default mode: auto-zero-copy$' <<<"$out" || fail "best mode on 7.x should be auto-zero-copy: $out"
exit 0
