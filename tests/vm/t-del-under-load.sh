# SPDX-License-Identifier: MIT
# del while fio drives iodepth 128: del returns, fio exits, the node and
# the daemon are gone.
. "$(dirname "$0")/lib.sh"
for target in null loop; do
	if [ $target = loop ]; then
		truncate -s 1G "$TMP/img"
		add -t loop -f "$TMP/img"
	else
		add -t null size=4G
	fi
	del_under_load "$target"
done
exit 0
