#!/usr/bin/env bash
# Installs the real peers the tests run against (auditd, rsyslog, laurel,
# libauparse's Python binding, ruby, openssl) when they are missing. Needs root
# and Debian's apt. Installing auditd would start the system daemon and grab the
# kernel's audit socket, so policy-rc.d (exit 101) is put in place first.
set -euo pipefail
need=()
command -v auditctl >/dev/null || need+=(auditd)
command -v rsyslogd >/dev/null || need+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -n "$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null | head -1)" ] || need+=(rsyslog-gnutls)
command -v laurel >/dev/null || need+=(laurel)
/usr/bin/python3 -c 'import auparse' 2>/dev/null || need+=(python3-audit)
command -v ruby >/dev/null || need+=(ruby)
command -v openssl >/dev/null || need+=(openssl)
command -v flock >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
[ -x /usr/bin/time ] || need+=(time)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "test setup: missing ${need[*]} and cannot install them (need root and apt-get); tests that need them will skip" >&2
  exit 0
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
echo "test setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
