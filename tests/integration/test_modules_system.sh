#!/bin/sh
# The life cycle of the system modules on a lab host (see cycle.py).
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 1
python3 "$top_srcdir/tests/integration/cycle.py" "$AICP" "$LAB/inventory.ini" node01 "$WORK" \
    sysctl modprobe service systemd apt mount
