// Native twin of src/rules/projection.ts projectJson, for the rule engine's
// match workers: it walks each event's JSON bytes for the keys the rule tree
// asks for and writes what it found as a list of operations (open object,
// open array, value at [start, end), close) in document order. The worker
// replays them into the same objects projectJson would build (projection-ops.ts).
// A line it cannot walk exactly as projectJson does (an escaped key, anything
// not laid out as JSON.stringify writes) is marked and left to projectJson.
// test/rules/native-projection.test.ts holds the two to the same result.

#include <node_api.h>

#include "napi_util.h"

#include <stdint.h>
#include <string.h>

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

// Projections by id, per thread (each match worker has its own).
thread_local std::unordered_map<int, std::vector<Node>>* t_specs = nullptr;

// Operations, four int32 each.
constexpr int32_t OP_OBJECT = 1;  // key, -, -: a new object under key (or pushed: key -1)
constexpr int32_t OP_ARRAY = 2;   // key, -, -: a new array
constexpr int32_t OP_END = 3;     // the innermost open object or array is complete
constexpr int32_t OP_VALUE = 4;   // key, start, end (in the line): the value there, whole
// OP_VALUE carries flags above bit 4: 1 = a string without escapes (take the
// text between the quotes), 2 = ASCII only.

struct Bail {};

struct Walker {
  const uint8_t* s;
  size_t n;
  size_t pos = 0;
  const std::vector<Node>& nodes;
  std::vector<int32_t>& ops;
  bool escaped = false;

  void op(int32_t a, int32_t b, int32_t c, int32_t d) {
    ops.push_back(a);
    ops.push_back(b);
    ops.push_back(c);
    ops.push_back(d);
  }

  // pos at a quote → pos after the closing quote; `escaped`: a backslash inside.
  void skipString() {
    size_t j = pos + 1;
    escaped = false;
    for (;;) {
      const void* q = memchr(s + j, '"', n - j);
      if (!q) throw Bail();
      size_t at = static_cast<const uint8_t*>(q) - s;
      size_t k = at;
      while (k > pos + 1 && s[k - 1] == '\\') k--;
      if (k < at) escaped = true;
      if (((at - k) & 1) == 0) {
        pos = at + 1;
        return;
      }
      j = at + 1;
    }
  }

  void skipValue() {
    if (pos >= n) throw Bail();
    uint8_t c = s[pos];
    if (c == '"') return skipString();
    if (c == '{' || c == '[') {
      int depth = 0;
      while (pos < n) {
        uint8_t d = s[pos];
        if (d == '"') {
          skipString();
        } else if (d == '{' || d == '[') {
          depth++;
          pos++;
        } else if (d == '}' || d == ']') {
          pos++;
          if (--depth == 0) return;
        } else {
          pos++;
        }
      }
      throw Bail();
    }
    size_t from = pos;
    while (pos < n) {
      uint8_t d = s[pos];
      if (d == ',' || d == '}' || d == ']') break;
      pos++;
    }
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
};

// setProjection(id, nodes: Array<[full, indexed, keys: string[], keyIds: number[], children: number[]]>)
// (node 0 is the root); setProjection(id, null) forgets it.
napi_value SetProjection(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t id;
  CHECK(napi_get_value_int32(env, argv[0], &id));
  if (!t_specs) t_specs = new std::unordered_map<int, std::vector<Node>>();
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
  (*t_specs)[id] = std::move(nodes);
  return nullptr;
}

// projectLines(id, bytes: Uint8Array, length) → Int32Array: per line, its
// start, end (before the \n), and where its operations are
// ([first op index, op count], or count -1: left to projectJson), then the
// operations. Returns [lines, ops…] as one Int32Array: lineCount, then
// 4 ints a line, then the operations.
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
  if (!t_specs || t_specs->find(id) == t_specs->end()) {
    napi_throw_error(env, nullptr, "skafe_interpret: no such projection");
    return nullptr;
  }
  const std::vector<Node>& nodes = (*t_specs)[id];
  std::vector<int32_t> lines;
  std::vector<int32_t> ops;
  ops.reserve(4096);
  size_t from = 0;
  while (from < length) {
    const void* nl = memchr(bytes + from, '\n', length - from);
    size_t end = nl ? static_cast<const uint8_t*>(nl) - bytes : length;
    size_t opsBefore = ops.size();
    int32_t count = -1;
    Walker w{bytes + from, end - from, 0, nodes, ops};
    try {
      if (w.n == 0 || w.s[0] != '{') throw Bail();
      w.object(0, -1);
      if (w.pos != w.n) throw Bail();
      count = int32_t((ops.size() - opsBefore) / 4);
    } catch (Bail&) {
      ops.resize(opsBefore);
    }
    // positions in ops are relative to the line's start; the replay adds it
    lines.push_back(int32_t(from));
    lines.push_back(int32_t(end));
    lines.push_back(int32_t(opsBefore / 4));
    lines.push_back(count);
    from = end + 1;
  }
  size_t total = 1 + lines.size() + ops.size();
  napi_value buf, arr;
  void* out;
  CHECK(napi_create_arraybuffer(env, total * 4, &out, &buf));
  int32_t* o = static_cast<int32_t*>(out);
  o[0] = int32_t(lines.size() / 4);
  memcpy(o + 1, lines.data(), lines.size() * 4);
  memcpy(o + 1 + lines.size(), ops.data(), ops.size() * 4);
  CHECK(napi_create_typedarray(env, napi_int32_array, total, buf, 0, &arr));
  return arr;
}

}  // namespace

void RegisterProjection(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setProjection", nullptr, SetProjection, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"projectLines", nullptr, ProjectLines, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
