// Native twin of src/audit/interpret.ts + JSON.stringify, for the coalesce
// workers: records of a batch of events in (the flat array packEvents makes),
// their JSON lines out, written straight into the caller's buffer.
//
// Why: in JavaScript each event costs ~9 µs to interpret and ~8 µs to
// stringify; that was most of a replay's CPU (docs/architecture.md).
//
// Contract: for every event this code either writes exactly the line
// JSON.stringify(interpret(records)) would give, byte for byte, or writes
// nothing and marks the event for the JavaScript path. It bails out on
// anything unusual (a malformed field, invalid UTF-8 after hex decoding, a
// duplicate or integer-like field name, a number JavaScript would read in its
// own way, split EXECVE arguments, …), so the rare cases keep one
// implementation, and problems are reported by the JavaScript path only.
// test/audit/native-interpret.test.ts holds the two to the same bytes over
// every committed corpus and a generated torture log.

#include <node_api.h>

#include "napi_util.h"

#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using sv = std::string_view;
using skafe::fail;
using skafe::getString;

// Equality for the short names compared everywhere here: inline, no library call.
inline bool eq(sv a, sv b) {
  size_t n = a.size();
  if (n != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return false;
  return true;
}


// ---------------------------------------------------------------- tables

struct Arch {
  std::string hex;
  std::string name;
  std::vector<std::string> syscalls;  // "" where the table has no entry
  std::vector<bool> has;
};
struct Record;

// Per thread (each worker has its own env and instance data): the coalesce
// workers run in parallel, so nothing here is shared between them.
struct State {
  std::vector<Arch> arches;
  std::unordered_map<int64_t, std::string> users;
  std::unordered_map<int64_t, std::string> groups;
  std::vector<Record>* recs = nullptr;
  std::deque<std::string> arena;
  // record type name → number (record-types.ts), for the line scanner
  std::unordered_map<sv, int> types;
  std::deque<std::string> typeNames;  // owns the keys of `types`
};
thread_local State* t_state = nullptr;  // the calling thread's, set on entry

const Arch* archFromHex(sv hex) {
  for (const Arch& a : t_state->arches)
    if (a.hex == hex) return &a;
  // ARCHES.get(hex.toLowerCase())
  std::string lower(hex);
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  for (const Arch& a : t_state->arches)
    if (a.hex == lower) return &a;
  return nullptr;
}

// A fixed set of names, bucketed by length: a lookup compares only names of
// the right length (this runs for every field of every record).
class NameSet {
 public:
  explicit NameSet(const char* const* names) {
    for (const char* const* p = names; *p; p++) {
      sv n(*p);
      if (n.size() < kMax) buckets_[n.size()].push_back(n);
    }
  }
  bool has(sv s) const {
    if (s.size() >= kMax) return false;
    for (sv n : buckets_[s.size()])
      if (n[0] == s[0] && eq(n, s)) return true;
    return false;
  }

 private:
  static constexpr size_t kMax = 24;
  std::vector<sv> buckets_[kMax];
};

const char* const HEX_FIELDS_LIST[] = {
    "path", "comm", "exe", "file", "name", "watch", "cwd", "cmd", "acct", "dir", "key", "vm",
    "old-chardev", "new-chardev", "old-disk", "new-disk", "old-fs", "new-fs", "old-net", "new-net",
    "device", "cgroup", "apparmor", "operation", "denied_mask", "info", "profile", "requested_mask",
    "old-rng", "new-rng", "ocomm", "grp", "new_group", "invalid_context", "sw", "root_dir",
    "proctitle", "data", "old-vcpu", "new-vcpu", "old-mem", "new-mem", "vm-ctx", "img-ctx", nullptr};
const NameSet HEX_FIELDS(HEX_FIELDS_LIST);

const char* const SYSCALL_MAPPED_LIST[] = {
    "arch", "syscall", "pid", "ppid", "auid", "uid", "gid", "euid", "suid", "fsuid", "egid", "sgid", "fsgid",
    "ses", "comm", "exe", "key",
    "ARCH", "SYSCALL", "AUID", "UID", "GID", "EUID", "SUID", "FSUID", "EGID", "SGID", "FSGID", nullptr};
const NameSet SYSCALL_MAPPED(SYSCALL_MAPPED_LIST);

const char* const OTHER_MAPPED_LIST[] = {"pid", "ppid", "uid", "auid", "ses", "comm", "exe", "res", "AUID", "UID", nullptr};
const NameSet OTHER_MAPPED(OTHER_MAPPED_LIST);

const char* const DESTINATION_SYSCALLS_LIST[] = {"connect", "sendto", "sendmsg", "sendmmsg", nullptr};
const NameSet DESTINATION_SYSCALLS(DESTINATION_SYSCALLS_LIST);
const char* const SOURCE_SYSCALLS_LIST[] = {"bind", "accept", "accept4", "recvfrom", "recvmsg", "recvmmsg", nullptr};
const NameSet SOURCE_SYSCALLS(SOURCE_SYSCALLS_LIST);

// Names a plain JavaScript object already has (Object.prototype): the
// JavaScript scanner stores such a field under another name.
const char* const PROTO_NAMES_LIST[] = {
    "__proto__", "constructor", "__defineGetter__", "__defineSetter__", "hasOwnProperty", "__lookupGetter__",
    "__lookupSetter__", "isPrototypeOf", "propertyIsEnumerable", "toString", "valueOf", "toLocaleString", nullptr};
const NameSet PROTO_NAMES(PROTO_NAMES_LIST);

// Thrown (as a plain value, caught per event) to hand an event to JavaScript.
struct Bail {};

// ---------------------------------------------------------------- helpers

bool isHex(sv s) {
  if (s.empty() || (s.size() & 1)) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

int hexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

void hexDecode(sv s, std::string& out) {
  out.resize(s.size() / 2);
  for (size_t i = 0; i < out.size(); i++) out[i] = char((hexVal(s[2 * i]) << 4) | hexVal(s[2 * i + 1]));
}

// Strict UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF): what decodes in
// JavaScript without a U+FFFD replacement.
bool validUtf8(sv s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // audit text is nearly all ASCII: eight bytes at a time while it is
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    i += len;
  }
  return true;
}

// Decimal text JavaScript's Number() reads as the same integer and
// JSON.stringify writes back unchanged: digits, no leading zero, < 2^53.
bool canonicalDecimal(sv s, int64_t* v = nullptr) {
  if (s.empty() || s.size() > 15) return false;
  if (s[0] == '0' && s.size() > 1) return false;
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  if (v) *v = n;
  return true;
}

// Non-empty and every character a digit up to `last` ('9': decimal, '7': octal).
bool allDigits(sv s, char last = '9') {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > last) return false;
  return true;
}

// ---------------------------------------------------------------- output

struct Out {
  uint8_t* p;
  size_t cap;
  size_t n;
  bool full = false;
  void raw(const char* s, size_t len) {
    if (n + len > cap) {
      full = true;
      throw Bail();
    }
    memcpy(p + n, s, len);
    n += len;
  }
  void raw(sv s) { raw(s.data(), s.size()); }
  void lit(const char* s) { raw(s, strlen(s)); }
  void ch(char c) { raw(&c, 1); }
  // A JSON string as JSON.stringify writes it (input is valid UTF-8).
  void str(sv s) {
    // worst case 6 bytes per byte, plus quotes
    if (n + 6 * s.size() + 2 > cap) {
      full = true;
      throw Bail();
    }
    uint8_t* o = p + n;
    *o++ = '"';
    const unsigned char* in = reinterpret_cast<const unsigned char*>(s.data());
    size_t len = s.size(), i = 0;
    for (;;) {
      // Runs of bytes that need no escape, eight at a time: no byte below
      // 0x20, no '"', no '\\' (the usual bit tricks for "some byte is zero").
      while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, in + i, 8);
        const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t special = ((w - ones * 0x20) | ((q - ones) & ~q) | ((b - ones) & ~b)) & ~w & highs;
        if (special) break;
        memcpy(o, in + i, 8);
        o += 8;
        i += 8;
      }
      if (i >= len) break;
      unsigned char c = in[i++];
      if (c >= 0x20 && c != '"' && c != '\\') {
        *o++ = c;
        continue;
      }
      *o++ = '\\';
      switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: {
          static const char hex[] = "0123456789abcdef";
          *o++ = 'u';
          *o++ = '0';
          *o++ = '0';
          *o++ = hex[c >> 4];
          *o++ = hex[c & 15];
        }
      }
    }
    *o++ = '"';
    n = o - p;
  }
  void key(const char* k) {  // "k":
    ch('"');
    lit(k);
    raw("\":", 2);
  }
  void num(int64_t v) {
    char b[24];
    char* e = b + sizeof b;
    char* q = e;
    uint64_t u = v < 0 ? 0 - uint64_t(v) : uint64_t(v);
    do {
      *--q = char('0' + u % 10);
      u /= 10;
    } while (u);
    if (v < 0) *--q = '-';
    raw(q, size_t(e - q));
  }
};

// ---------------------------------------------------------------- fields

struct Field {
  sv name;
  sv value;
};

// One record's fields in scan order. Values point into the record's text or
// into the event's arena (decoded hex, joined bare words).
struct Fields {
  std::vector<Field> list;
  const sv* get(sv name) const {
    for (const Field& f : list)
      if (f.name.size() == name.size() && f.name[0] == name[0] && eq(f.name, name)) return &f.value;
    return nullptr;
  }
};

struct Record {
  std::string type, node, id, body, enriched;
  bool hasNode = false, hasEnriched = false;
  int64_t sec = 0, msec = 0, serial = 0;
  double secD = 0, msecD = 0, serialD = 0;
  Fields fields;
};

struct Scanner {
  std::deque<std::string>* arena;
  Fields* out;

  sv keep(std::string&& s) {
    arena->push_back(std::move(s));
    return sv(arena->back());
  }

  static bool isHexField(sv name, bool execve) {
    if (HEX_FIELDS.has(name)) return true;
    if (execve && name.size() >= 2 && name[0] == 'a' && name[1] >= '0' && name[1] <= '9') return name.find('_') == sv::npos;
    return false;
  }

  size_t emit(sv name, sv value) {
    out->list.push_back({name, value});
    return out->list.size() - 1;
  }

  // fields.ts scan(): the same walk over bytes (every delimiter is ASCII).
  void scan(sv body, bool execve, size_t from, size_t to) {
    size_t pos = from;
    long lastField = -1, unparsedField = -1;
    while (pos < to) {
      while (pos < to && body[pos] == ' ') pos++;
      if (pos >= to) break;
      size_t i = pos;
      char c = 0;
      while (i < to) {
        c = body[i];
        if (c == '=' || c == ' ') break;
        i++;
      }
      if (i >= to || c == ' ') {
        sv word = body.substr(pos, i - pos);
        long target = lastField >= 0 ? lastField : unparsedField;
        if (target >= 0) {
          std::string joined(out->list[target].value);
          joined += ' ';
          joined += word;
          out->list[target].value = keep(std::move(joined));
        } else {
          unparsedField = long(emit("unparsed", word));
        }
        pos = i + 1;
        continue;
      }
      sv name = body.substr(pos, i - pos);
      bool hex = isHexField(name, execve);
      bool binary = !hex && name == "saddr";
      size_t vs = i + 1;
      int first = vs < to ? (unsigned char)body[vs] : -1;
      lastField = -1;
      if (first == '"') {
        size_t end = body.find('"', vs + 1);
        if (end == sv::npos || end >= to) throw Bail();  // unterminated: a problem to report
        emit(name, body.substr(vs + 1, end - vs - 1));
        pos = end + 1;
      } else if (first == '\'') {
        size_t end = body.find('\'', vs + 1);
        if (end == sv::npos || end >= to) throw Bail();
        if (name == "msg") scan(body, false, vs + 1, end);
        else emit(name, body.substr(vs + 1, end - vs - 1));
        pos = end + 1;
      } else if (first == '{') {
        size_t end = body.find('}', vs + 1);
        if (end == sv::npos || end >= to) throw Bail();
        emit(name, body.substr(vs, end + 1 - vs));
        pos = end + 1;
      } else {
        size_t end = body.find(' ', vs);
        if (end == sv::npos || end > to) end = to;
        sv v = body.substr(vs, end - vs);
        if (hex) {
          if (isHex(v)) {
            std::string d;
            hexDecode(v, d);
            if (!validUtf8(d)) throw Bail();  // JavaScript writes U+FFFD there
            emit(name, keep(std::move(d)));
          } else if (v.empty() || v[0] == '(' || v == "?") {
            emit(name, v);
          } else {
            throw Bail();  // not hex: a problem to report
          }
        } else {
          size_t k = emit(name, v);
          if (!binary) lastField = long(k);
        }
        pos = end + 1;
      }
    }
  }
};

// What the JavaScript object would do differently from a plain list: a
// repeated name (stored as name_2), an inherited name, an integer-like name
// (sorted first by the engine), an empty name.
void checkNames(const Fields& f) {
  const auto& l = f.list;
  // A repeat is looked for only among names with the same small hash.
  uint64_t seen[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < l.size(); i++) {
    sv n = l[i].name;
    if (n.empty() || allDigits(n) || PROTO_NAMES.has(n)) throw Bail();
    unsigned h = (unsigned(n.size()) * 31u + (unsigned char)n[0] * 7u + (unsigned char)n.back() * 3u + (unsigned char)n[n.size() >> 1]) & 255u;
    uint64_t bit = uint64_t(1) << (h & 63);
    if (seen[h >> 6] & bit) {
      for (size_t k = 0; k < i; k++)
        if (eq(l[k].name, n)) throw Bail();
    }
    seen[h >> 6] |= bit;
  }
}

void writeFields(Out& o, const Fields& f) {
  o.ch('{');
  bool firstOne = true;
  for (const Field& x : f.list) {
    if (!firstOne) o.ch(',');
    firstOne = false;
    o.str(x.name);
    o.ch(':');
    o.str(x.value);
  }
  o.ch('}');
}

// ---------------------------------------------------------------- interpret

// Days from 1970-01-01 to y-m-d (Howard Hinnant's algorithm) and back.
void civilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += (m <= 2);
}

void writeTimestamp(Out& o, int64_t sec, int64_t msec) {
  // beyond year 9999 (or a 4-digit msec) JavaScript's Date writes another form
  if (msec > 999 || sec >= 253402300800LL) throw Bail();
  // Events come in time order: the date part is formatted once per second.
  thread_local int64_t lastSec = -1;
  thread_local char prefix[32];
  thread_local int prefixLen = 0;
  if (sec != lastSec) {
    int64_t days = sec / 86400, rem = sec % 86400;
    int64_t y;
    unsigned m, d;
    civilFromDays(days, y, m, d);
    prefixLen = snprintf(prefix, sizeof prefix, "\"%04lld-%02u-%02uT%02lld:%02lld:%02lld.", static_cast<long long>(y), m, d,
                         static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
    lastSec = sec;
  }
  char b[40];
  memcpy(b, prefix, prefixLen);
  b[prefixLen] = char('0' + msec / 100);
  b[prefixLen + 1] = char('0' + msec / 10 % 10);
  b[prefixLen + 2] = char('0' + msec % 10);
  b[prefixLen + 3] = 'Z';
  b[prefixLen + 4] = '"';
  o.raw(b, size_t(prefixLen + 5));
}

bool startsWith(sv s, const char* p) { return s.substr(0, strlen(p)) == p; }

// named(): { id, name? }; `enriched` is auditd's ENRICHED name when present.
void writeNamedBody(Out& o, sv id, const sv* enriched, bool group) {
  o.key("id");
  o.str(id);
  if (enriched) {
    if (!startsWith(*enriched, "unknown(")) {
      o.raw(",\"name\":", 8);
      o.str(*enriched);
    }
    return;
  }
  if (id == "4294967295") {
    o.lit(",\"name\":\"unset\"");
    return;
  }
  int64_t n;
  if (!canonicalDecimal(id, &n)) throw Bail();
  const auto& db = group ? t_state->groups : t_state->users;
  auto it = db.find(n);
  if (it != db.end()) {
    o.raw(",\"name\":", 8);
    o.str(it->second);
  }
}

const char* resultOutcome(const sv* res) {
  if (!res) return "unknown";
  sv r = *res;
  if (r == "success" || r == "yes" || r == "1") return "success";
  if (r == "failed" || r == "fail" || r == "failure" || r == "no" || r == "0") return "failure";
  return "unknown";
}

// posix.join(cwd, name) for an absolute cwd: normalize(cwd + "/" + name).
std::string joinPath(sv cwd, sv name) {
  std::string joined(cwd);
  if (!name.empty()) {
    joined += '/';
    joined += name;
  }
  bool trailing = !joined.empty() && joined.back() == '/';
  std::vector<sv> segs;
  sv j(joined);
  size_t i = 0;
  while (i <= j.size()) {
    size_t e = j.find('/', i);
    if (e == sv::npos) e = j.size();
    sv seg = j.substr(i, e - i);
    if (seg.empty() || seg == ".") {
    } else if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else {
      segs.push_back(seg);
    }
    i = e + 1;
  }
  std::string r;
  for (size_t k = 0; k < segs.size(); k++) {
    if (k) r += '/';
    r += segs[k];
  }
  if (r.empty()) return "/";
  if (trailing) r += '/';
  return "/" + r;
}

struct Sock {
  std::string family;
  bool hasAddr = false, hasPort = false, hasPath = false, hasPid = false;
  std::string addr, path;
  int64_t port = 0, pid = 0;
};

std::string ipv6ToText(const uint8_t* b) {
  int w[8];
  for (int i = 0; i < 8; i++) w[i] = (b[2 * i] << 8) | b[2 * i + 1];
  int bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
  for (int i = 0; i < 8; i++) {
    if (w[i] == 0) {
      if (curBase < 0) curBase = i, curLen = 1;
      else curLen++;
    } else if (curBase >= 0) {
      if (curLen > bestLen) bestBase = curBase, bestLen = curLen;
      curBase = -1;
    }
  }
  if (curBase >= 0 && curLen > bestLen) bestBase = curBase, bestLen = curLen;
  if (bestLen < 2) bestBase = -1;
  std::string out;
  char t[16];
  for (int i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i == bestBase) out += ':';
      continue;
    }
    if (i != 0) out += ':';
    if (i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff))) {
      snprintf(t, sizeof t, "%d.%d.%d.%d", b[12], b[13], b[14], b[15]);
      out += t;
      return out;
    }
    snprintf(t, sizeof t, "%x", w[i]);
    out += t;
  }
  if (bestBase >= 0 && bestBase + bestLen == 8) out += ':';
  return out;
}

// sockaddr.ts decodeSockaddr; false where JavaScript reports a problem.
bool decodeSockaddr(sv hex, Sock& s) {
  if (!isHex(hex) || hex.size() < 4) return false;
  std::string raw;
  hexDecode(hex, raw);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(raw.data());
  size_t n = raw.size();
  int family = b[0] | (b[1] << 8);
  char t[40];
  switch (family) {
    case 1: {
      s.family = "unix";
      s.hasPath = true;
      if (n <= 2) return true;
      if (b[2] == 0) {
        if (n == 3) return true;
        size_t end = n;
        while (end > 3 && b[end - 1] == 0) end--;
        s.path = "@" + raw.substr(3, end - 3);
      } else {
        size_t end = raw.find('\0', 2);
        if (end == std::string::npos) end = n;
        s.path = raw.substr(2, end - 2);
      }
      if (!validUtf8(s.path)) throw Bail();
      return true;
    }
    case 2:
      if (n < 8) return false;
      s.family = "ipv4";
      snprintf(t, sizeof t, "%d.%d.%d.%d", b[4], b[5], b[6], b[7]);
      s.addr = t;
      s.hasAddr = s.hasPort = true;
      s.port = (b[2] << 8) | b[3];
      return true;
    case 10:
      if (n < 24) return false;
      s.family = "ipv6";
      s.addr = ipv6ToText(b + 8);
      s.hasAddr = s.hasPort = true;
      s.port = (b[2] << 8) | b[3];
      return true;
    case 16:
      s.family = "netlink";
      if (n >= 8) {
        s.hasPid = true;
        s.pid = int64_t(uint32_t(b[4]) | (uint32_t(b[5]) << 8) | (uint32_t(b[6]) << 16) | (uint32_t(b[7]) << 24));
      }
      return true;
    case 0:
      s.family = "unspec";
      return true;
    default:
      s.family = std::to_string(family);
      return true;
  }
}

void writeNumberField(Out& o, const char* k, sv text) {
  int64_t v;
  if (!canonicalDecimal(text, &v)) throw Bail();
  o.key(k);
  o.num(v);
}

void interpretEvent(std::vector<Record>& recs, size_t count, std::deque<std::string>& arena, Out& o) {
  Record& firstRec = recs[0];
  if (firstRec.type == "SKAFE_KERNEL_LOSS") throw Bail();
  const Fields* syscall = nullptr;
  std::vector<size_t> execves;
  const Fields* proctitle = nullptr;
  const Fields* cwd = nullptr;
  const Fields* sockaddr = nullptr;
  std::vector<const Fields*> paths;
  const std::string* node = nullptr;
  for (size_t i = 0; i < count; i++) {
    Record& r = recs[i];
    Scanner sc{&arena, &r.fields};
    bool execve = r.type == "EXECVE";
    sc.scan(r.body, execve, 0, r.body.size());
    if (r.hasEnriched) sc.scan(r.enriched, false, 0, r.enriched.size());
    checkNames(r.fields);
    if (!node && r.hasNode) node = &r.node;
    if (r.type == "SYSCALL") {
      if (!syscall) syscall = &r.fields;
    } else if (execve) {
      if (r.body.find("_len=") != std::string::npos) throw Bail();  // long arguments: the JavaScript path joins them
      execves.push_back(i);
    } else if (r.type == "PROCTITLE") {
      if (!proctitle) proctitle = &r.fields;
    } else if (r.type == "CWD") {
      if (!cwd) cwd = &r.fields;
    } else if (r.type == "SOCKADDR") {
      if (!sockaddr) sockaddr = &r.fields;
    } else if (r.type == "PATH") {
      paths.push_back(&r.fields);
    }
  }
  // The header's numbers as JavaScript holds them (doubles): exact integers only.
  if (firstRec.serialD > 9007199254740991.0 || firstRec.secD * 1000 + firstRec.msecD > 8.64e15) throw Bail();

  // Everything that can still bail is decided before writing, except the
  // buffer running full (the caller then retries with a larger one).
  const sv* ses = nullptr;
  sv syscallName;
  bool hasSyscallName = false;
  const Arch* arch = nullptr;
  const Fields* primary = syscall ? syscall : &recs[0].fields;
  if (syscall) {
    const Fields& s = *syscall;
    if (const sv* a = s.get("arch")) arch = archFromHex(*a);
    if (const sv* sc = s.get("syscall")) {
      hasSyscallName = true;
      if (const sv* e = s.get("SYSCALL")) syscallName = *e;
      else {
        int64_t n;
        if (arch && canonicalDecimal(*sc, &n)) {
          if (n >= 0 && size_t(n) < arch->syscalls.size() && arch->has[n]) syscallName = arch->syscalls[n];
          else syscallName = *sc;
        } else if (arch) {
          throw Bail();  // Number() of a non-canonical text: leave it to JavaScript
        } else {
          syscallName = *sc;
        }
      }
    }
  }
  ses = primary->get("ses");

  o.ch('{');
  o.key("@timestamp");
  writeTimestamp(o, firstRec.sec, firstRec.msec);
  o.lit(",\"event\":{\"id\":");
  o.str(firstRec.id);
  o.lit(",\"kind\":\"event\",\"module\":\"auditd\",\"outcome\":");
  if (syscall) {
    const sv* success = syscall->get("success");
    o.lit(success && *success == "yes" ? "\"success\"" : success && *success == "no" ? "\"failure\"" : "\"unknown\"");
  } else {
    o.ch('"');
    o.lit(resultOutcome(recs[0].fields.get("res")));
    o.ch('"');
  }
  o.ch('}');
  if (node) {
    o.lit(",\"host\":{\"name\":");
    o.str(*node);
    o.ch('}');
  }

  const Fields& p = *primary;
  if (syscall) {
    const Fields& s = p;
    o.lit(",\"user\":{");
    bool any = false;
    auto sep = [&]() {
      if (any) o.ch(',');
      any = true;
    };
    if (const sv* uid = s.get("uid")) {
      sep();
      writeNamedBody(o, *uid, s.get("UID"), false);
    }
    if (const sv* gid = s.get("gid")) {
      sep();
      o.lit("\"group\":{");
      writeNamedBody(o, *gid, s.get("GID"), true);
      o.ch('}');
    }
    const char* kinds[3][5] = {{"effective", "euid", "EUID", "egid", "EGID"}, {"saved", "suid", "SUID", "sgid", "SGID"}, {"filesystem", "fsuid", "FSUID", "fsgid", "FSGID"}};
    for (auto& k : kinds) {
      const sv* u = s.get(k[1]);
      const sv* g = s.get(k[3]);
      if (!u && !g) continue;
      sep();
      o.ch('"');
      o.lit(k[0]);
      o.lit("\":{");
      if (u) writeNamedBody(o, *u, s.get(k[2]), false);
      if (g) {
        if (u) o.ch(',');
        o.lit("\"group\":{");
        writeNamedBody(o, *g, s.get(k[4]), true);
        o.ch('}');
      }
      o.ch('}');
    }
    if (const sv* auid = s.get("auid")) {
      sep();
      o.lit("\"audit\":{");
      writeNamedBody(o, *auid, s.get("AUID"), false);
      o.ch('}');
    }
    o.ch('}');
    const sv* key = s.get("key");
    if (key && *key != "(null)") {
      o.lit(",\"tags\":[");
      size_t i = 0;
      bool firstTag = true;
      while (true) {
        size_t e = key->find('\x01', i);
        if (!firstTag) o.ch(',');
        firstTag = false;
        o.str(key->substr(i, e == sv::npos ? sv::npos : e - i));
        if (e == sv::npos) break;
        i = e + 1;
      }
      o.ch(']');
    }
  } else {
    const sv* uid = p.get("uid");
    const sv* auid = p.get("auid");
    if (uid || auid) {
      o.lit(",\"user\":{");
      if (uid) writeNamedBody(o, *uid, p.get("UID"), false);
      if (auid) {
        if (uid) o.ch(',');
        o.lit("\"audit\":{");
        writeNamedBody(o, *auid, p.get("AUID"), false);
        o.ch('}');
      }
      o.ch('}');
    }
  }

  // process
  {
    size_t mark = o.n;
    o.lit(",\"process\":{");
    size_t bodyStart = o.n;
    auto sep = [&]() {
      if (o.n != bodyStart) o.ch(',');
    };
    if (const sv* pid = p.get("pid")) {
      sep();
      writeNumberField(o, "pid", *pid);
    }
    if (const sv* ppid = p.get("ppid")) {
      sep();
      o.lit("\"parent\":{");
      writeNumberField(o, "pid", *ppid);
      o.ch('}');
    }
    if (const sv* comm = p.get("comm")) {
      sep();
      o.key("name");
      o.str(*comm);
    }
    if (const sv* exe = p.get("exe")) {
      sep();
      o.key("executable");
      o.str(*exe);
    }
    if (!execves.empty()) {
      const sv* argcText = nullptr;
      for (size_t i : execves)
        if ((argcText = recs[i].fields.get("argc"))) break;
      std::vector<sv> args;
      char nm[24];
      for (int n = 0;; n++) {
        nm[0] = 'a';
        char* nmEnd = std::to_chars(nm + 1, nm + sizeof nm, n).ptr;
        const sv* v = nullptr;
        for (size_t i : execves)
          if ((v = recs[i].fields.get(sv(nm, size_t(nmEnd - nm))))) break;
        if (!v) break;
        args.push_back(*v);
      }
      sep();
      o.lit("\"args\":[");
      for (size_t i = 0; i < args.size(); i++) {
        if (i) o.ch(',');
        o.str(args[i]);
      }
      o.lit("],\"args_count\":");
      if (argcText) {
        int64_t argc;
        if (!canonicalDecimal(*argcText, &argc)) throw Bail();
        o.num(argc);
      } else {
        o.num(int64_t(args.size()));
      }
      o.lit(",\"command_line\":");
      std::string line;
      for (size_t i = 0; i < args.size(); i++) {
        if (i) line += ' ';
        line += args[i];
      }
      o.str(line);
    }
    if (proctitle) {
      if (const sv* t = proctitle->get("proctitle")) {
        std::string title(*t);
        std::replace(title.begin(), title.end(), '\0', ' ');
        sep();
        o.key("title");
        o.str(title);
      }
    }
    const sv* cwdText = cwd ? cwd->get("cwd") : nullptr;
    if (cwdText) {
      sep();
      o.key("working_directory");
      o.str(*cwdText);
    }
    if (o.n == bodyStart) o.n = mark;  // no process fields: no process object
    else o.ch('}');

    // file, from the PATH records (item order)
    std::vector<const Fields*> sorted = paths;
    if (sorted.size() > 1) {
      std::vector<int64_t> items;
      for (const Fields* f : sorted) {
        const sv* it = f->get("item");
        int64_t v;
        if (!it || !canonicalDecimal(*it, &v)) throw Bail();
      }
      std::stable_sort(sorted.begin(), sorted.end(), [](const Fields* a, const Fields* b) {
        int64_t x, y;
        canonicalDecimal(*a->get("item"), &x);
        canonicalDecimal(*b->get("item"), &y);
        return x < y;
      });
    }
    if (!sorted.empty()) {
      const Fields* f = sorted[0];
      for (const Fields* q : sorted) {
        const sv* nt = q->get("nametype");
        if (!nt || *nt != "PARENT") {
          f = q;
          break;
        }
      }
      const sv* name = f->get("name");
      if (name && *name != "(null)") {
        o.lit(",\"file\":{\"path\":");
        if ((name->empty() || (*name)[0] != '/') && cwdText && !cwdText->empty() && (*cwdText)[0] == '/') o.str(joinPath(*cwdText, *name));
        else o.str(*name);
        if (const sv* v = f->get("inode")) o.lit(",\"inode\":"), o.str(*v);
        if (const sv* v = f->get("dev")) o.lit(",\"device\":"), o.str(*v);
        if (const sv* v = f->get("mode")) {
          if (allDigits(*v, '7')) {
            if (v->size() > 15) throw Bail();
            long long m = strtoll(std::string(*v).c_str(), nullptr, 8) & 07777;
            char b[16];
            snprintf(b, sizeof b, "\"%04llo\"", m);
            o.lit(",\"mode\":");
            o.lit(b);
          }
        }
        const char* owners[2][5] = {{"ouid", "uid", "OUID", "owner", "u"}, {"ogid", "gid", "OGID", "group", "g"}};
        for (auto& k : owners) {
          const sv* id = f->get(k[0]);
          if (!id) continue;
          o.lit(",\"");
          o.lit(k[1]);
          o.lit("\":");
          o.str(*id);
          const sv* enriched = f->get(k[2]);
          if (enriched) {
            if (!startsWith(*enriched, "unknown(")) {
              o.lit(",\"");
              o.lit(k[3]);
              o.lit("\":");
              o.str(*enriched);
            }
          } else if (*id == "4294967295") {
            o.lit(",\"");
            o.lit(k[3]);
            o.lit("\":\"unset\"");
          } else {
            int64_t n;
            if (!canonicalDecimal(*id, &n)) throw Bail();
            const auto& db = k[4][0] == 'u' ? t_state->users : t_state->groups;
            auto it = db.find(n);
            if (it != db.end()) {
              o.lit(",\"");
              o.lit(k[3]);
              o.lit("\":");
              o.str(it->second);
            }
          }
        }
        o.ch('}');
      }
    }
    paths.swap(sorted);
  }

  // socket address
  Sock sock;
  bool hasSock = false;
  const sv* saddr = sockaddr ? sockaddr->get("saddr") : nullptr;
  if (saddr) {
    if (!decodeSockaddr(*saddr, sock)) throw Bail();  // a problem to report
    hasSock = true;
    if (hasSyscallName && (sock.hasAddr || (sock.hasPath && !sock.path.empty()))) {
      const char* dir = DESTINATION_SYSCALLS.has(syscallName) ? "destination" : SOURCE_SYSCALLS.has(syscallName) ? "source" : nullptr;
      if (dir) {
        o.lit(",\"");
        o.lit(dir);
        o.lit("\":{\"address\":");
        if (sock.hasAddr) {
          o.str(sock.addr);
          o.lit(",\"ip\":");
          o.str(sock.addr);
          if (sock.hasPort) o.lit(",\"port\":"), o.num(sock.port);
        } else {
          o.str(sock.path);
        }
        o.ch('}');
      }
    }
  }

  // auditd
  o.lit(",\"auditd\":{\"sequence\":");
  o.num(firstRec.serial);
  if (ses) {
    o.lit(",\"session\":");
    if (*ses == "4294967295") o.lit("\"unset\"");
    else o.str(*ses);
  }
  if (!paths.empty()) {
    o.lit(",\"paths\":[");
    for (size_t i = 0; i < paths.size(); i++) {
      if (i) o.ch(',');
      writeFields(o, *paths[i]);
    }
    o.ch(']');
  }
  o.lit(",\"data\":{");
  {
    size_t bodyStart = o.n;
    auto sep = [&]() {
      if (o.n != bodyStart) o.ch(',');
    };
    if (syscall) {
      const Fields& s = *syscall;
      const sv* archEnriched = s.get("ARCH");
      const sv* archRaw = s.get("arch");
      if (archEnriched) o.key("arch"), o.str(*archEnriched);
      else if (arch) o.key("arch"), o.str(arch->name);
      else if (archRaw) o.key("arch"), o.str(*archRaw);
      if (hasSyscallName) sep(), o.key("syscall"), o.str(syscallName);
      for (const Field& f : s.list) {
        if (SYSCALL_MAPPED.has(f.name)) continue;
        sep();
        o.str(f.name);
        o.ch(':');
        o.str(f.value);
      }
    } else {
      for (const Field& f : p.list) {
        if (OTHER_MAPPED.has(f.name)) continue;
        sep();
        o.str(f.name);
        o.ch(':');
        o.str(f.value);
      }
    }
    if (hasSock) {
      sep();
      o.lit("\"socket\":{\"family\":");
      o.str(sock.family);
      if (sock.hasAddr) o.lit(",\"addr\":"), o.str(sock.addr);
      if (sock.hasPort) o.lit(",\"port\":"), o.num(sock.port);
      if (sock.hasPath) o.lit(",\"path\":"), o.str(sock.path);
      if (sock.hasPid) o.lit(",\"pid\":"), o.num(sock.pid);
      o.lit(",\"saddr\":");
      o.str(*saddr);
      o.ch('}');
    }
  }
  o.lit("},\"records\":[");
  for (size_t i = 0; i < count; i++) {
    if (i) o.ch(',');
    o.lit("{\"type\":");
    o.str(recs[i].type);
    o.lit(",\"fields\":");
    writeFields(o, recs[i].fields);
    o.ch('}');
  }
  o.lit("]}}\n");
}

// ---------------------------------------------------------------- N-API

State* stateOf(napi_env env) {
  void* d = nullptr;
  napi_get_instance_data(env, &d);
  if (d == nullptr) {
    State* s = new State();
    s->recs = new std::vector<Record>();
    napi_set_instance_data(
        env, s,
        [](napi_env, void* data, void*) {
          State* st = static_cast<State*>(data);
          delete st->recs;
          delete st;
        },
        nullptr);
    d = s;
  }
  t_state = static_cast<State*>(d);
  return t_state;
}

bool getNumber(napi_env env, napi_value v, double& out) { return napi_get_value_double(env, v, &out) == napi_ok; }

// One event of a batch into `o`, its line's end into marks (-1: left to
// JavaScript). False when `o` ran full: nothing of it is kept, and `state`
// says to start again from this event with a larger buffer.
bool writeEvent(std::vector<Record>& recs, uint32_t n, bool clean, std::deque<std::string>& arena, Out& o, int32_t* marks, int32_t ev, size_t start, int32_t* state) {
  size_t before = o.n;
  marks[2 * ev] = int32_t(start);
  marks[2 * ev + 1] = -1;
  if (clean && n > 0) {
    try {
      interpretEvent(recs, n, arena, o);
      marks[2 * ev + 1] = int32_t(o.n);
    } catch (Bail&) {
      o.n = before;
      if (o.full) {
        arena.clear();
        state[0] = int32_t(start);
        state[1] = int32_t(before);
        state[2] = ev;
        return false;
      }
    }
  }
  arena.clear();
  return true;
}

napi_value int32Value(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

// setArches([[hex, name, [syscall names, undefined for gaps]], …])
napi_value SetArches(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[0], &n));
  std::vector<Arch> arches;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e, hex, name, list;
    CHECK(napi_get_element(env, argv[0], i, &e));
    CHECK(napi_get_element(env, e, 0, &hex));
    CHECK(napi_get_element(env, e, 1, &name));
    CHECK(napi_get_element(env, e, 2, &list));
    Arch a;
    if (!getString(env, hex, a.hex) || !getString(env, name, a.name)) return fail(env, "arch names");
    uint32_t m;
    CHECK(napi_get_array_length(env, list, &m));
    a.syscalls.resize(m);
    a.has.resize(m);
    for (uint32_t k = 0; k < m; k++) {
      napi_value s;
      napi_valuetype t;
      CHECK(napi_get_element(env, list, k, &s));
      CHECK(napi_typeof(env, s, &t));
      if (t == napi_string) {
        if (!getString(env, s, a.syscalls[k])) return fail(env, "syscall name");
        a.has[k] = true;
      }
    }
    arches.push_back(std::move(a));
  }
  stateOf(env)->arches.swap(arches);
  return nullptr;
}

// setNames(group: boolean, ids: number[], names: string[])
napi_value SetNames(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool group;
  CHECK(napi_get_value_bool(env, argv[0], &group));
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[1], &n));
  std::unordered_map<int64_t, std::string> db;
  db.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value idv, namev;
    CHECK(napi_get_element(env, argv[1], i, &idv));
    CHECK(napi_get_element(env, argv[2], i, &namev));
    double id;
    std::string name;
    if (!getNumber(env, idv, id) || !getString(env, namev, name)) return fail(env, "user names");
    // only ids a canonical decimal can name (the others fall to JavaScript anyway)
    if (id >= 0 && id <= 9007199254740991.0) db.emplace(int64_t(id), std::move(name));
  }
  State* st = stateOf(env);
  (group ? st->groups : st->users).swap(db);
  return nullptr;
}

// interpretBatch(flat, state: Int32Array [flatPos, outPos, event], out: Uint8Array, marks: Int32Array)
// → 0 when every event is done, 1 when `out` ran full (state says where to go on).
// marks[2*e] = flat index of event e's record count; marks[2*e+1] = end of
// its line in out, or -1: the JavaScript path must write this event.
napi_value InterpretBatch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  uint32_t flatLen;
  CHECK(napi_get_array_length(env, argv[0], &flatLen));
  int32_t* state;
  uint8_t* outData;
  int32_t* marks;
  size_t len, outLen, marksLen;
  CHECK(skafe::typedArray(env, argv[1], &state, &len));
  CHECK(skafe::typedArray(env, argv[2], &outData, &outLen));
  CHECK(skafe::typedArray(env, argv[3], &marks, &marksLen));
  Out o{outData, outLen, size_t(state[1])};

  State* st = stateOf(env);
  std::vector<Record>& recs = *st->recs;
  std::deque<std::string>& arena = st->arena;
  uint32_t pos = uint32_t(state[0]);
  int32_t ev = state[2];
  napi_value v;
  while (pos < flatLen) {
    double nd;
    CHECK(napi_get_element(env, argv[0], pos, &v));
    if (!getNumber(env, v, nd)) return fail(env, "record count");
    uint32_t n = uint32_t(nd);
    if (size_t(2 * ev + 1) >= marksLen) return fail(env, "marks too short");
    uint32_t start = pos;
    pos++;
    if (recs.size() < n) recs.resize(n);
    for (uint32_t k = 0; k < n; k++, pos += 9) {
      Record& r = recs[k];
      napi_value e;
      CHECK(napi_get_element(env, argv[0], pos, &e));
      if (!getString(env, e, r.type)) return fail(env, "type");
      CHECK(napi_get_element(env, argv[0], pos + 2, &e));
      if (!getString(env, e, r.node)) return fail(env, "node");
      r.hasNode = !(r.node.size() == 1 && r.node[0] == '\0');
      CHECK(napi_get_element(env, argv[0], pos + 3, &e));
      if (!getNumber(env, e, r.secD)) return fail(env, "sec");
      CHECK(napi_get_element(env, argv[0], pos + 4, &e));
      if (!getNumber(env, e, r.msecD)) return fail(env, "msec");
      CHECK(napi_get_element(env, argv[0], pos + 5, &e));
      if (!getNumber(env, e, r.serialD)) return fail(env, "serial");
      r.sec = int64_t(r.secD);
      r.msec = int64_t(r.msecD);
      r.serial = int64_t(r.serialD);
      CHECK(napi_get_element(env, argv[0], pos + 6, &e));
      if (!getString(env, e, r.id)) return fail(env, "id");
      CHECK(napi_get_element(env, argv[0], pos + 7, &e));
      if (!getString(env, e, r.body)) return fail(env, "body");
      CHECK(napi_get_element(env, argv[0], pos + 8, &e));
      if (!getString(env, e, r.enriched)) return fail(env, "enriched");
      r.hasEnriched = !(r.enriched.size() == 1 && r.enriched[0] == '\0');
      r.fields.list.clear();
    }
    if (!writeEvent(recs, n, true, arena, o, marks, ev, start, state)) return int32Value(env, 1);
    ev++;
  }
  state[0] = int32_t(pos);
  state[1] = int32_t(o.n);
  state[2] = ev;
  return int32Value(env, 0);
}

// ---------------------------------------------------------------- raw lines

// Where the parts of one `[node=N ]type=T msg=audit(S.M:N): body[\x1denriched]`
// line are. Only the form record.ts parseRecordLine reads without surprises:
// a known type name, header numbers of at most 15 digits, valid UTF-8. Every
// other line is parsed (and reported when malformed) by JavaScript.
struct LineParts {
  sv node, type, id, body, enriched;
  bool hasNode = false, hasEnriched = false;
  int typeNum = 0;
  int64_t sec = 0, msec = 0, serial = 0;
};

bool digits15(sv s, int64_t& v) {
  if (s.empty() || s.size() > 15) return false;
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  v = n;
  return true;
}

bool parseLine(sv line, LineParts& lp, bool validate) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t pos = 0;
  if (line.substr(0, 5) == "node=") {
    size_t sp = line.find(' ', 5);
    if (sp == sv::npos) return false;
    lp.node = line.substr(5, sp - 5);
    lp.hasNode = true;
    pos = sp + 1;
  }
  if (line.substr(pos, 5) != "type=") return false;
  size_t sp = line.find(' ', pos + 5);
  if (sp == sv::npos) return false;
  lp.type = line.substr(pos + 5, sp - pos - 5);
  pos = sp + 1;
  if (line.substr(pos, 10) != "msg=audit(") return false;
  size_t auditAt = pos + 10;
  size_t close = line.find(')', auditAt);
  if (close == sv::npos || close - auditAt > 40) return false;
  size_t dot = line.find('.', auditAt), colon = line.find(':', auditAt);
  if (dot == sv::npos || colon == sv::npos || !(dot < colon && colon < close)) return false;
  if (!digits15(line.substr(auditAt, dot - auditAt), lp.sec) || !digits15(line.substr(dot + 1, colon - dot - 1), lp.msec) ||
      !digits15(line.substr(colon + 1, close - colon - 1), lp.serial))
    return false;
  lp.id = line.substr(auditAt, close - auditAt);
  auto t = t_state->types.find(lp.type);
  if (t == t_state->types.end()) return false;
  lp.typeNum = t->second;
  size_t bodyStart = close + 1;
  if (bodyStart < line.size() && line[bodyStart] == ':') bodyStart++;
  if (bodyStart < line.size() && line[bodyStart] == ' ') bodyStart++;
  size_t gs = line.find('\x1d', bodyStart);
  if (gs != sv::npos) {
    lp.body = line.substr(bodyStart, gs - bodyStart);
    lp.enriched = line.substr(gs + 1);
    lp.hasEnriched = true;
  } else {
    lp.body = line.substr(bodyStart);
  }
  return !validate || validUtf8(line);
}

// setRecordTypes(names: string[], numbers: number[])
napi_value SetRecordTypes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[0], &n));
  State* st = stateOf(env);
  st->types.clear();
  st->typeNames.clear();
  for (uint32_t i = 0; i < n; i++) {
    napi_value namev, numv;
    CHECK(napi_get_element(env, argv[0], i, &namev));
    CHECK(napi_get_element(env, argv[1], i, &numv));
    std::string name;
    double num;
    if (!getString(env, namev, name) || !getNumber(env, numv, num)) return fail(env, "record types");
    st->typeNames.push_back(std::move(name));
    st->types.emplace(sv(st->typeNames.back()), int(num));
  }
  return nullptr;
}

// Fields per line in scanLines' output.
constexpr int kScanSlots = 11;

// scanLines(data: Uint8Array, from: number, out: Float64Array) → lines: the
// complete lines of data[from…] (each ended by \n), as many as out holds, each
// as [start, end, status, typeNum, sec, msec, serial, idStart, idEnd,
// nodeStart, nodeEnd]; status 0: a record parsed here, 1: empty, 2: for
// JavaScript (anything else). Offsets are into data; end excludes the \n.
napi_value ScanLines(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const char* base;
  double* out;
  size_t len, outLen;
  CHECK(skafe::typedArray(env, argv[0], &base, &len));
  uint32_t from;
  CHECK(napi_get_value_uint32(env, argv[1], &from));
  CHECK(skafe::typedArray(env, argv[2], &out, &outLen));
  stateOf(env);
  size_t maxLines = outLen / kScanSlots;
  size_t lines = 0;
  size_t pos = from;
  while (lines < maxLines && pos < len) {
    const void* nl = memchr(base + pos, '\n', len - pos);
    if (!nl) break;
    size_t end = static_cast<const char*>(nl) - base;
    sv line(base + pos, end - pos);
    double* o = out + lines * kScanSlots;
    o[0] = double(pos);
    o[1] = double(end);
    LineParts lp;
    if (line.empty() || (line.size() == 1 && line[0] == '\r')) {
      o[2] = 1;
    } else if (parseLine(line, lp, true)) {
      o[2] = 0;
      o[3] = lp.typeNum;
      o[4] = double(lp.sec);
      o[5] = double(lp.msec);
      o[6] = double(lp.serial);
      o[7] = double(lp.id.data() - base);
      o[8] = double(lp.id.data() + lp.id.size() - base);
      o[9] = lp.hasNode ? double(lp.node.data() - base) : -1;
      o[10] = lp.hasNode ? double(lp.node.data() + lp.node.size() - base) : -1;
    } else {
      o[2] = 2;
    }
    lines++;
    pos = end + 1;
  }
  napi_value r;
  napi_create_uint32(env, uint32_t(lines), &r);
  return r;
}

// interpretRaw(bytes: Uint8Array, index: Int32Array, state: Int32Array [indexPos, outPos, event],
//              out: Uint8Array, marks: Int32Array) → 0 done, 1 out ran full.
// index: per event its record count, then each record line's start and end in bytes.
// marks as interpretBatch's, with index positions instead of flat ones.
napi_value InterpretRaw(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const char* bytes;
  const int32_t* index;
  int32_t* state;
  uint8_t* outData;
  int32_t* marks;
  size_t len, indexLen, stLen, outLen, marksLen;
  CHECK(skafe::typedArray(env, argv[0], &bytes, &len));
  CHECK(skafe::typedArray(env, argv[1], &index, &indexLen));
  CHECK(skafe::typedArray(env, argv[2], &state, &stLen));
  CHECK(skafe::typedArray(env, argv[3], &outData, &outLen));
  CHECK(skafe::typedArray(env, argv[4], &marks, &marksLen));
  Out o{outData, outLen, size_t(state[1])};
  State* st = stateOf(env);
  std::vector<Record>& recs = *st->recs;
  std::deque<std::string>& arena = st->arena;
  size_t pos = size_t(state[0]);
  int32_t ev = state[2];
  while (pos < indexLen) {
    uint32_t n = uint32_t(index[pos]);
    if (size_t(2 * ev + 1) >= marksLen || pos + 1 + 2 * size_t(n) > indexLen) return fail(env, "index or marks too short");
    size_t start = pos;
    if (recs.size() < n) recs.resize(n);
    bool clean = true;
    for (uint32_t k = 0; k < n; k++) {
      int32_t a = index[pos + 1 + 2 * k], b = index[pos + 2 + 2 * k];
      if (a < 0 || b < a || size_t(b) > len) return fail(env, "record outside the bytes");
      LineParts lp;
      Record& r = recs[k];
      r.fields.list.clear();
      // the main thread's scanLines checked these lines, UTF-8 included
      if (!parseLine(sv(bytes + a, size_t(b - a)), lp, false)) {
        clean = false;
        continue;
      }
      r.type.assign(lp.type);
      r.hasNode = lp.hasNode;
      r.node.assign(lp.node);
      r.id.assign(lp.id);
      r.body.assign(lp.body);
      r.hasEnriched = lp.hasEnriched;
      r.enriched.assign(lp.enriched);
      r.sec = lp.sec;
      r.msec = lp.msec;
      r.serial = lp.serial;
      r.secD = double(lp.sec);
      r.msecD = double(lp.msec);
      r.serialD = double(lp.serial);
    }
    pos += 1 + 2 * size_t(n);
    if (!writeEvent(recs, n, clean, arena, o, marks, ev, start, state)) return int32Value(env, 1);
    ev++;
  }
  state[0] = int32_t(pos);
  state[1] = int32_t(o.n);
  state[2] = ev;
  return int32Value(env, 0);
}

}  // namespace

void RegisterProjection(napi_env env, napi_value exports);  // project.cc
void RegisterLineCheck(napi_env env, napi_value exports);  // check-lines.cc

namespace {

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setArches", nullptr, SetArches, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setNames", nullptr, SetNames, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"interpretBatch", nullptr, InterpretBatch, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setRecordTypes", nullptr, SetRecordTypes, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scanLines", nullptr, ScanLines, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"interpretRaw", nullptr, InterpretRaw, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  RegisterProjection(env, exports);
  RegisterLineCheck(env, exports);
  return exports;
}

}  // namespace

NAPI_MODULE_INIT() { return Init(env, exports); }
