#!/bin/sh
# Builds the NETLINK_AUDIT addon (see ../build-addon.sh).
exec sh "$(dirname "$0")/../build-addon.sh" "$(dirname "$0")"
