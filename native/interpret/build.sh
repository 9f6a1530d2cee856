#!/bin/sh
# Builds the native interpreter and projection addon (see ../build-addon.sh).
exec sh "$(dirname "$0")/../build-addon.sh" "$(dirname "$0")"
