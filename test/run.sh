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
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
npx tap --jobs=2 $parallel | tee -a "$summary" || status=$?
if [ -n "$serial" ]; then
  npx tap --jobs=1 $serial | tee -a "$summary" || status=$?
fi
# Whatever touched the kernel must have put it back.
if command -v auditctl >/dev/null && [ "$(id -u)" = 0 ]; then
  pid=$(auditctl -s | sed -n 's/^pid //p')
  if [ -n "$pid" ] && [ "$pid" != 0 ] && ! ps -p "$pid" -o comm= | grep -qx auditd; then
    echo "kernel audit pid left at $pid after tests" >&2; status=1
  fi
fi
# One plain closing line for whoever reads the log: tap's own summaries, added up.
pass=0; fail=0; skip=0
while read -r line; do
  p=$(sed -n 's/.*pass: \([0-9]*\).*/\1/p' <<<"$line"); f=$(sed -n 's/.*fail: \([0-9]*\).*/\1/p' <<<"$line"); k=$(sed -n 's/.*skip: \([0-9]*\).*/\1/p' <<<"$line")
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${k:-0}))
done < <(grep -E '^# \{ total: ' "$summary")
if [ "$status" != 0 ] && [ "$fail" = 0 ]; then fail=1; fi
echo "tests: $pass passed, $fail failed, $skip skipped"
exit $status
