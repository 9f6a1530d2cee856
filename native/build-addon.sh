#!/bin/sh
# Builds the N-API addon in directory $1 (native/netlink, native/interpret; npm
# runs this for both as our package's `install` script, where node-gyp is on
# PATH, bundled with npm). It builds against the running node's own headers,
# so nothing is downloaded: the machines reach no header mirror.
set -e
cd "$1"
prefix=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$prefix/include/node/node_api.h" ]; then
  set -- --nodedir="$prefix"
else
  set --
fi
if command -v node-gyp >/dev/null 2>&1; then
  exec node-gyp rebuild "$@"
fi
# Outside npm scripts: npm's bundled copy.
exec node "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js" rebuild "$@"
