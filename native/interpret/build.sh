#!/bin/sh
# Builds the native event interpreter (src/interpret.cc) (npm runs this as our package's `install`
# script; node-gyp is on PATH there, bundled with npm). It builds against the
# running node's own headers, so nothing is downloaded: the machines reach no
# header mirror.
set -e
cd "$(dirname "$0")"
prefix=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$prefix/include/node/node_api.h" ]; then
  set -- --nodedir="$prefix"
fi
if command -v node-gyp >/dev/null 2>&1; then
  exec node-gyp rebuild "$@"
fi
# Outside npm scripts: npm's bundled copy.
exec node "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js" rebuild "$@"
