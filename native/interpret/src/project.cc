// Native twin of src/rules/projection.ts projectJson, for the rule engine's
// match workers: it walks each event's JSON bytes for the keys the rule tree
// asks for and writes what it found as a list of operations (open object,
// open array, value at [start, end), close) in document order. The worker
// replays them into the same objects projectJson would build
// (src/rules/native-projection.ts). A line it cannot walk exactly as
// projectJson does (an escaped key, anything not laid out as JSON.stringify
// writes) is marked and left to projectJson. The same walk finds where the
// line takes event.kind, so spliceLines can copy the output lines straight
// from the input bytes. test/rules/encoded.test.ts holds both to the
// JavaScript path.

#include <node_api.h>

#include "napi_util.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using sv = std::string_view;
using skafe::getString;

struct Child {
  std::string key;  // UTF-8
  int keyId;        // index into the JavaScript side's key table
  int node;
};

struct Node {
  bool full = false;
  bool indexed = false;
  std::vector<Child> children;
};

// What a rule generation's output lines end with: per rule node, its
// `,"rule":{…}}\n` bytes and which logs it writes to (1: event log, 2: alert log).
struct Tails {
  std::string bytes;
  std::vector<uint32_t> offsets;  // node i's tail is bytes[offsets[i], offsets[i + 1])
  std::vector<uint8_t> logs;
};

struct Spec {
  std::vector<Node> nodes;
  Tails tails;
};

// Projections by id, per thread (each match worker has its own).
thread_local std::unordered_map<int, Spec>* t_specs = nullptr;

// How event.kind goes into a line (as output.ts kindSplice): replace the value
// at [start, end), insert after the event object's other keys, insert into `{}`.
constexpr int32_t KIND_REPLACE = 0;
constexpr int32_t KIND_APPEND = 1;
constexpr int32_t KIND_ONLY = 2;
constexpr int32_t NO_SPLICE = -1;
const sv KIND_TEXT[3][2] = {
    {"\"event\"", "\"alert\""},
    {",\"kind\":\"event\"", ",\"kind\":\"alert\""},
    {"\"kind\":\"event\"", "\"kind\":\"alert\""},
};

// Byte classes for skipping values: what ends a run of ordinary bytes.
enum : uint8_t { PLAIN = 0, QUOTE = 1, OPEN = 2, CLOSE = 3, BACKSLASH = 4, STOP = 5 };
struct ByteClasses {
  uint8_t inValue[256];   // inside an object or array being skipped
  uint8_t inString[256];  // inside a string
  uint8_t scalar[256];    // a number or literal runs until one of , } ]
  constexpr ByteClasses() : inValue(), inString(), scalar() {
    inValue[uint8_t('"')] = QUOTE;
    inValue[uint8_t('{')] = OPEN;
    inValue[uint8_t('[')] = OPEN;
    inValue[uint8_t('}')] = CLOSE;
    inValue[uint8_t(']')] = CLOSE;
    inString[uint8_t('"')] = QUOTE;
    inString[uint8_t('\\')] = BACKSLASH;
    scalar[uint8_t(',')] = STOP;
    scalar[uint8_t('}')] = STOP;
    scalar[uint8_t(']')] = STOP;
  }
};
constexpr ByteClasses kClasses;

// Operations, four int32 each.
constexpr int32_t OP_OBJECT = 1;  // key, -, -: a new object under key (or pushed: key -1)
constexpr int32_t OP_ARRAY = 2;   // key, -, -: a new array
constexpr int32_t OP_END = 3;     // the innermost open object or array is complete
constexpr int32_t OP_VALUE = 4;   // key, start, end (in the line): the value there, whole
// OP_VALUE carries flags above bit 4: 1 = a string without escapes (take the
// text between the quotes), 2 = ASCII only.

struct Bail {};

#if defined(__SSE2__)
// Skipping a whole object or array (auditd.records, most of an event's bytes)
// 64 bytes at a time, as simdjson finds structure: masks of quotes,
// backslashes and brackets, escaped quotes removed, the inside of strings
// found by a prefix XOR of the quotes, and only the brackets outside strings
// looked at one by one. A byte-at-a-time loop spends most of its time on
// mispredicted branches: event text has a quote every six bytes or so.
struct Block {
  uint64_t quote, backslash, open, close;
};

inline uint64_t mask16(__m128i v, __m128i c) { return uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(v, c))); }

inline Block classify(const uint8_t* p) {
  const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), o = _mm_set1_epi8('{'), c = _mm_set1_epi8('}'), lower = _mm_set1_epi8(0x20);
  Block r{0, 0, 0, 0};
  for (int i = 0; i < 4; i++) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    // '[' | 0x20 == '{' and ']' | 0x20 == '}'
    __m128i folded = _mm_or_si128(v, lower);
    r.quote |= mask16(v, q) << (16 * i);
    r.backslash |= mask16(v, b) << (16 * i);
    r.open |= mask16(folded, o) << (16 * i);
    r.close |= mask16(folded, c) << (16 * i);
  }
  return r;
}

inline uint64_t prefixXor(uint64_t x) {
  x ^= x << 1;
  x ^= x << 2;
  x ^= x << 4;
  x ^= x << 8;
  x ^= x << 16;
  x ^= x << 32;
  return x;
}

// The bytes escaped by a backslash (simdjson's find_escaped): a run of
// backslashes escapes the byte after it when the run is odd. `carry`: the
// previous block's last byte was an escaping backslash.
inline uint64_t escapedBytes(uint64_t backslash, uint64_t& carry) {
  if (backslash == 0) {
    uint64_t e = carry;
    carry = 0;
    return e;
  }
  backslash &= ~carry;
  uint64_t followsEscape = backslash << 1 | carry;
  const uint64_t even = 0x5555555555555555ULL;
  uint64_t oddStarts = backslash & ~even & ~followsEscape;
  uint64_t evenStarts;
  carry = __builtin_add_overflow(oddStarts, backslash, &evenStarts) ? 1 : 0;
  uint64_t invert = evenStarts << 1;
  return (even ^ invert) & followsEscape;
}

// s[pos] opens an object or array: the index after its closing bracket, or -1.
inline long skipContainer(const uint8_t* s, size_t n, size_t pos) {
  uint64_t escCarry = 0, inString = 0;
  long depth = 0;
  uint8_t pad[64];
  for (size_t at = pos; at < n; at += 64) {
    const uint8_t* p = s + at;
    if (n - at < 64) {
      memset(pad, ' ', sizeof pad);
      memcpy(pad, p, n - at);
      p = pad;
    }
    Block b = classify(p);
    uint64_t quotes = b.quote & ~escapedBytes(b.backslash, escCarry);
    uint64_t strings = prefixXor(quotes) ^ inString;
    inString = uint64_t(int64_t(strings) >> 63);
    uint64_t open = b.open & ~strings, close = b.close & ~strings;
    for (uint64_t m = open | close; m != 0; m &= m - 1) {
      int i = __builtin_ctzll(m);
      if ((open >> i) & 1) depth++;
      else if (--depth == 0) return long(at + i + 1);
    }
  }
  return -1;
}
#endif

struct Walker {
  const uint8_t* s;
  size_t n;
  size_t pos = 0;
  const std::vector<Node>& nodes;
  std::vector<int32_t>& ops;
  bool escaped = false;
  // Top-level keys the output cares about: where the (first) `event` value
  // starts, how many `event` keys, and whether there is a `rule`.
  size_t eventAt = 0;
  int events = 0;
  bool hasRule = false;

  void op(int32_t a, int32_t b, int32_t c, int32_t d) {
    ops.push_back(a);
    ops.push_back(b);
    ops.push_back(c);
    ops.push_back(d);
  }

  // pos at a quote → pos after the closing quote; `escaped`: a backslash inside.
  // Strings here are mostly a few bytes long: a table-driven loop beats a
  // memchr call per string.
  void skipString() {
    size_t j = pos + 1;
    escaped = false;
    for (;;) {
#if defined(__SSE2__)
      // 16 bytes at a time: most strings end within the first load, so the loop rarely branches wrong
      const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');
      while (j + 16 <= n) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j));
        unsigned m = unsigned(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, b))));
        if (m != 0) {
          j += unsigned(__builtin_ctz(m));
          break;
        }
        j += 16;
      }
#endif
      while (j < n && kClasses.inString[s[j]] == PLAIN) j++;
      if (j >= n) throw Bail();
      if (s[j] == '"') {
        pos = j + 1;
        return;
      }
      escaped = true;
      j += 2;  // the backslash and the byte it escapes
    }
  }

  void skipValue() {
    if (pos >= n) throw Bail();
    uint8_t c = s[pos];
    if (c == '"') return skipString();
    if (c == '{' || c == '[') {
#if defined(__SSE2__)
      long end = skipContainer(s, n, pos);
      if (end < 0) throw Bail();
      pos = size_t(end);
      return;
#endif
      int depth = 0;
      for (;;) {
        while (pos < n && kClasses.inValue[s[pos]] == PLAIN) pos++;
        if (pos >= n) throw Bail();
        switch (kClasses.inValue[s[pos]]) {
          case QUOTE:
            skipString();
            break;
          case OPEN:
            depth++;
            pos++;
            break;
          default:  // CLOSE
            pos++;
            if (--depth == 0) return;
        }
      }
    }
    size_t from = pos;
    while (pos < n && kClasses.scalar[s[pos]] != STOP) pos++;
    if (pos == from) throw Bail();
  }

  bool ascii(size_t a, size_t b) const {
    for (size_t i = a; i < b; i++)
      if (s[i] & 0x80) return false;
    return true;
  }

  // takeValue: the value at pos, whole.
  void take(int32_t key) {
    size_t from = pos;
    bool str = s[pos] == '"';
    skipValue();
    int32_t flags = (str && !escaped ? 1 : 0) | (ascii(from, pos) ? 2 : 0);
    op(OP_VALUE | (flags << 4), key, int32_t(from), int32_t(pos));
  }

  void value(int node, int32_t key) {
    const Node& p = nodes[node];
    if (pos >= n) throw Bail();
    if (p.full) return take(key);
    uint8_t c = s[pos];
    if (c == '{') return object(node, key);
    if (c == '[') {
      if (p.indexed) return take(key);
      op(OP_ARRAY, key, 0, 0);
      pos++;
      if (pos < n && s[pos] == ']') {
        pos++;
        op(OP_END, 0, 0, 0);
        return;
      }
      for (;;) {
        value(node, -1);
        if (pos >= n) throw Bail();
        uint8_t d = s[pos++];
        if (d == ']') {
          op(OP_END, 0, 0, 0);
          return;
        }
        if (d != ',') throw Bail();
      }
    }
    take(key);
  }

  void object(int node, int32_t key) {
    const Node& p = nodes[node];
    op(OP_OBJECT, key, 0, 0);
    pos++;
    if (pos < n && s[pos] == '}') {
      pos++;
      op(OP_END, 0, 0, 0);
      return;
    }
    for (;;) {
      if (pos >= n || s[pos] != '"') throw Bail();
      size_t kFrom = pos;
      skipString();
      if (escaped) throw Bail();  // projectJson compares the unescaped key: left to it
      sv k(reinterpret_cast<const char*>(s) + kFrom + 1, pos - kFrom - 2);
      const Child* hit = nullptr;
      for (const Child& ch : p.children) {
        if (ch.key.size() == k.size() && memcmp(ch.key.data(), k.data(), k.size()) == 0) {
          hit = &ch;
          break;
        }
      }
      if (pos >= n || s[pos++] != ':') throw Bail();
      if (node == 0) {
        if (k == "event" && events++ == 0) eventAt = pos;
        else if (k == "rule") hasRule = true;
      }
      if (hit == nullptr) skipValue();
      else value(hit->node, hit->keyId);
      if (pos >= n) throw Bail();
      uint8_t d = s[pos++];
      if (d == '}') {
        op(OP_END, 0, 0, 0);
        return;
      }
      if (d != ',') throw Bail();
    }
  }

  // Where the line takes event.kind (output.ts kindSplice, on a line the walk
  // has read whole): how, and [start, end) in the line; how NO_SPLICE when the
  // line has a `rule` of its own or an `event` that is not one object.
  void kindSplice(int32_t* out) {
    out[0] = out[1] = 0;
    out[2] = NO_SPLICE;
    if (events != 1 || hasRule || s[eventAt] != '{') return;
    pos = eventAt + 1;
    // the walk read the whole line, so the event object closes before its end; checked all the same
    auto at = [this](size_t i) { return i < n ? s[i] : 0; };
    if (at(pos) == '}') {
      out[0] = out[1] = int32_t(pos);
      out[2] = KIND_ONLY;
      return;
    }
    for (;;) {
      if (at(pos) != '"') return;
      size_t kFrom = pos;
      skipString();
      if (escaped || at(pos) != ':') return;
      bool kind = pos - kFrom == 6 && memcmp(s + kFrom, "\"kind\"", 6) == 0;
      size_t vFrom = ++pos;
      skipValue();
      if (kind) {
        out[0] = int32_t(vFrom);
        out[1] = int32_t(pos);
        out[2] = KIND_REPLACE;
        return;
      }
      if (at(pos) == '}') {
        out[0] = out[1] = int32_t(pos);
        out[2] = KIND_APPEND;
        return;
      }
      if (at(pos) != ',') return;
      pos++;
    }
  }
};

// setProjection(id, nodes: Array<[full, indexed, keys: string[], keyIds: number[], children: number[]]>)
// (node 0 is the root); setProjection(id, null) forgets it.
napi_value SetProjection(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[0], &id));
  if (!t_specs) t_specs = new std::unordered_map<int, Spec>();
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[1], &t));
  if (t != napi_object) {
    t_specs->erase(id);
    return nullptr;
  }
  uint32_t count;
  CHECK(napi_get_array_length(env, argv[1], &count));
  std::vector<Node> nodes(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value e, full, indexed, keys, keyIds, children;
    CHECK(napi_get_element(env, argv[1], i, &e));
    CHECK(napi_get_element(env, e, 0, &full));
    CHECK(napi_get_element(env, e, 1, &indexed));
    CHECK(napi_get_element(env, e, 2, &keys));
    CHECK(napi_get_element(env, e, 3, &keyIds));
    CHECK(napi_get_element(env, e, 4, &children));
    CHECK(napi_get_value_bool(env, full, &nodes[i].full));
    CHECK(napi_get_value_bool(env, indexed, &nodes[i].indexed));
    uint32_t m;
    CHECK(napi_get_array_length(env, keys, &m));
    for (uint32_t k = 0; k < m; k++) {
      napi_value kv, idv, cv;
      CHECK(napi_get_element(env, keys, k, &kv));
      CHECK(napi_get_element(env, keyIds, k, &idv));
      CHECK(napi_get_element(env, children, k, &cv));
      Child ch;
      if (!getString(env, kv, ch.key)) return nullptr;
      CHECK(napi_get_value_int32(env, idv, &ch.keyId));
      CHECK(napi_get_value_int32(env, cv, &ch.node));
      if (ch.node < 0 || uint32_t(ch.node) >= count) {
        napi_throw_error(env, nullptr, "skafe_interpret: projection child out of range");
        return nullptr;
      }
      nodes[i].children.push_back(std::move(ch));
    }
  }
  (*t_specs)[id].nodes = std::move(nodes);
  return nullptr;
}

// projectLines(id, bytes: Uint8Array, length) → Int32Array: per line, its
// start, end (before the \n), where its operations are ([first op index, op
// count], or count -1: left to projectJson), and where it takes event.kind
// (start, end, how: see kindSplice; how -1 when the walk did not finish or the
// line cannot be spliced). Returns it all as one Int32Array: lineCount, then
// LINE_INTS ints a line, then the operations.
constexpr size_t LINE_INTS = 7;

Spec* findSpec(napi_env env, int32_t id) {
  if (t_specs) {
    auto it = t_specs->find(id);
    if (it != t_specs->end()) return &it->second;
  }
  napi_throw_error(env, nullptr, "skafe_interpret: no such projection");
  return nullptr;
}

napi_value ProjectLines(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[0], &id));
  const uint8_t* bytes;
  size_t len;
  CHECK(skafe::typedArray(env, argv[1], &bytes, &len));
  uint32_t length;
  CHECK(napi_get_value_uint32(env, argv[2], &length));
  if (length > len) length = uint32_t(len);
  Spec* spec = findSpec(env, id);
  if (!spec) return nullptr;
  const std::vector<Node>& nodes = spec->nodes;
  thread_local std::vector<int32_t> lines;
  thread_local std::vector<int32_t> ops;
  lines.clear();
  ops.clear();
  size_t from = 0;
  while (from < length) {
    const void* nl = memchr(bytes + from, '\n', length - from);
    size_t end = nl ? static_cast<const uint8_t*>(nl) - bytes : length;
    size_t opsBefore = ops.size();
    int32_t count = -1;
    int32_t splice[3] = {0, 0, NO_SPLICE};
    Walker w{bytes + from, end - from, 0, nodes, ops};
    try {
      if (w.n == 0 || w.s[0] != '{') throw Bail();
      w.object(0, -1);
      if (w.pos != w.n) throw Bail();
      count = int32_t((ops.size() - opsBefore) / 4);
      w.kindSplice(splice);
    } catch (Bail&) {
      if (count < 0) ops.resize(opsBefore);
      splice[2] = NO_SPLICE;
    }
    // positions in ops and the splice are relative to the line's start
    lines.push_back(int32_t(from));
    lines.push_back(int32_t(end));
    lines.push_back(int32_t(opsBefore / 4));
    lines.push_back(count);
    lines.push_back(splice[0]);
    lines.push_back(splice[1]);
    lines.push_back(splice[2]);
    from = end + 1;
  }
  size_t total = 1 + lines.size() + ops.size();
  napi_value buf, arr;
  void* out;
  CHECK(napi_create_arraybuffer(env, total * 4, &out, &buf));
  int32_t* o = static_cast<int32_t*>(out);
  o[0] = int32_t(lines.size() / LINE_INTS);
  memcpy(o + 1, lines.data(), lines.size() * 4);
  memcpy(o + 1 + lines.size(), ops.data(), ops.size() * 4);
  CHECK(napi_create_typedarray(env, napi_int32_array, total, buf, 0, &arr));
  return arr;
}

// setTails(id, bytes: Uint8Array, offsets: Int32Array, logs: Uint8Array): the
// rule nodes' line ends for spliceLines (node i: bytes[offsets[i],
// offsets[i + 1]), written to the logs in logs[i]).
napi_value SetTails(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[0], &id));
  Spec* spec = findSpec(env, id);
  if (!spec) return nullptr;
  const uint8_t* bytes;
  const int32_t* offsets;
  const uint8_t* logs;
  size_t nBytes, nOffsets, nLogs;
  CHECK(skafe::typedArray(env, argv[1], &bytes, &nBytes));
  CHECK(skafe::typedArray(env, argv[2], &offsets, &nOffsets));
  CHECK(skafe::typedArray(env, argv[3], &logs, &nLogs));
  if (nOffsets != nLogs + 1 || nLogs == 0 || size_t(offsets[nLogs]) != nBytes) {
    napi_throw_error(env, nullptr, "skafe_interpret: setTails: offsets do not fit");
    return nullptr;
  }
  Tails& t = spec->tails;
  t.bytes.assign(reinterpret_cast<const char*>(bytes), nBytes);
  t.offsets.assign(offsets, offsets + nOffsets);
  t.logs.assign(logs, logs + nLogs);
  for (size_t i = 0; i < nLogs; i++)
    if (t.offsets[i] > t.offsets[i + 1]) {
      napi_throw_error(env, nullptr, "skafe_interpret: setTails: offsets out of order");
      return nullptr;
    }
  return nullptr;
}

// spliceLines(id, input: Uint8Array, lines: Int32Array (projectLines' result),
// plan: Int32Array, planLength, out: Uint8Array, at) → the offset after the
// last byte written. The plan is, per event, [line, hits, node…]: for each
// node and each log it writes to, the line with event.kind spliced in and the
// node's tail in place of its closing brace; the lines are copied from the
// input bytes, never decoded. The caller has made room (it knows every size);
// running out is an error, not a truncation.
napi_value SpliceLines(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[0], &id));
  Spec* spec = findSpec(env, id);
  if (!spec) return nullptr;
  const uint8_t* input;
  const int32_t* lines;
  const int32_t* plan;
  uint8_t* out;
  size_t nInput, nLines, nPlan, nOut;
  CHECK(skafe::typedArray(env, argv[1], &input, &nInput));
  CHECK(skafe::typedArray(env, argv[2], &lines, &nLines));
  CHECK(skafe::typedArray(env, argv[3], &plan, &nPlan));
  uint32_t planLength, at;
  CHECK(napi_get_value_uint32(env, argv[4], &planLength));
  CHECK(skafe::typedArray(env, argv[5], &out, &nOut));
  CHECK(napi_get_value_uint32(env, argv[6], &at));
  if (planLength > nPlan) planLength = uint32_t(nPlan);
  const Tails& t = spec->tails;
  size_t nodes = t.logs.size();
  size_t lineCount = nLines > 0 ? size_t(lines[0]) : 0;
  size_t o = at;
  auto bad = [&](const char* why) {
    napi_throw_error(env, nullptr, (std::string("skafe_interpret: spliceLines: ") + why).c_str());
    return nullptr;
  };
  for (size_t i = 0; i + 2 <= planLength;) {
    size_t line = size_t(plan[i++]);
    size_t hits = size_t(plan[i++]);
    if (line >= lineCount || 1 + (line + 1) * LINE_INTS > nLines || i + hits > planLength) return bad("plan out of range");
    const int32_t* L = lines + 1 + line * LINE_INTS;
    size_t start = size_t(L[0]), end = size_t(L[1]);
    int32_t how = L[6];
    size_t kStart = size_t(L[4]), kEnd = size_t(L[5]);
    if (how < 0 || how > 2 || end > nInput || start >= end || kStart > kEnd || start + kEnd > end - 1) return bad("line cannot be spliced");
    const uint8_t* head = input + start;
    size_t headLen = kStart;
    const uint8_t* mid = input + start + kEnd;
    size_t midLen = end - 1 - (start + kEnd);  // up to the line's closing brace
    for (size_t h = 0; h < hits; h++) {
      size_t node = size_t(plan[i++]);
      if (node >= nodes) return bad("no such rule node");
      const char* tail = t.bytes.data() + t.offsets[node];
      size_t tailLen = t.offsets[node + 1] - t.offsets[node];
      for (int log = 0; log < 2; log++) {
        if (!(t.logs[node] & (1 << log))) continue;
        sv kind = KIND_TEXT[how][log];
        size_t need = headLen + kind.size() + midLen + tailLen;
        if (o + need > nOut) return bad("output buffer too small");
        memcpy(out + o, head, headLen);
        o += headLen;
        memcpy(out + o, kind.data(), kind.size());
        o += kind.size();
        memcpy(out + o, mid, midLen);
        o += midLen;
        memcpy(out + o, tail, tailLen);
        o += tailLen;
      }
    }
  }
  napi_value r;
  CHECK(napi_create_uint32(env, uint32_t(o), &r));
  return r;
}

}  // namespace

void RegisterProjection(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setProjection", nullptr, SetProjection, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"projectLines", nullptr, ProjectLines, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setTails", nullptr, SetTails, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"spliceLines", nullptr, SpliceLines, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
