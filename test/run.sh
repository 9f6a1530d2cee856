#!/usr/bin/env bash
# The project's test command (npm test): build, then every unit/integration test
# in parallel, then the tests that use the kernel's audit subsystem one at a time
# (only one process can be the audit daemon). `npm run torture` runs the long ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup-system.sh
npx tsc -p tsconfig.json
mode="${1:-test}"
if [ "$mode" = torture ]; then
  exec npx tap --jobs=1 --timeout=3600 $(find dist/test -name '*.torture.js' | sort)
fi
parallel=$(find dist/test -name '*.test.js' ! -name '*.kernel.test.js' | sort)
serial=$(find dist/test -name '*.kernel.test.js' | sort)
status=0
npx tap --jobs=2 $parallel || status=$?
if [ -n "$serial" ]; then
  npx tap --jobs=1 $serial || status=$?
fi
# Whatever touched the kernel must have put it back.
if command -v auditctl >/dev/null && [ "$(id -u)" = 0 ]; then
  pid=$(auditctl -s | sed -n 's/^pid //p')
  if [ -n "$pid" ] && [ "$pid" != 0 ] && ! ps -p "$pid" -o comm= | grep -qx auditd; then
    echo "kernel audit pid left at $pid after tests" >&2; status=1
  fi
fi
exit $status
