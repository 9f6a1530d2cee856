// Checks the JSON lines an agent sent before the server queue hands them on as
// text (src/link/event-lines.ts). The queue splices agent.name into each line
// without parsing it, and the rule workers' walker (project.cc) skips the
// values it does not read without looking inside them, so this is the one
// place where a line from outside is held to JSON's grammar. It accepts
// exactly what JSON.parse accepts (ECMA-404), reading bytes: any byte from
// 0x80 up is accepted inside a string, because the text is decoded as UTF-8
// with replacement before anything else reads it.
//
// Per line, a status: 0 the line is a JSON object laid out so that
// `{"agent":…,` can replace its opening brace (it starts `{"`, ends at its
// closing brace, and has no top-level key "agent", nor a top-level key written
// with escapes, which could spell "agent"); 1 a JSON object that must be
// parsed to add the agent; 2 not a JSON object.

#include <node_api.h>

#include "napi_util.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <vector>

namespace {

constexpr uint8_t SPLICE = 0;
constexpr uint8_t MERGE = 1;
constexpr uint8_t BAD = 2;
constexpr size_t NONE = ~size_t(0);
// Deeper than this is not an event: JSON.parse reads any depth, but
// JSON.stringify recurses and throws past a few thousand levels, in whichever
// stage writes the event out. Keep in step with MAX_DEPTH in event-lines.ts.
constexpr size_t MAX_DEPTH = 100;

struct Classes {
  bool plain[256];  // inside a string: a byte that needs no look
  bool hex[256];
  constexpr Classes() : plain(), hex() {
    for (int c = 0x20; c < 256; c++) plain[c] = c != '"' && c != '\\';
    for (int c = '0'; c <= '9'; c++) hex[c] = true;
    for (int c = 'a'; c <= 'f'; c++) hex[c] = hex[c - 32] = true;
  }
};
constexpr Classes kClasses;

inline bool space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
inline bool digit(uint8_t c) { return c >= '0' && c <= '9'; }

// s[i] is a quote: the index after the closing quote, or NONE. `escaped`: a backslash inside.
inline size_t string(const uint8_t* s, size_t n, size_t i, bool& escaped) {
  i++;
  escaped = false;
  for (;;) {
#if defined(__SSE2__)
    // 16 bytes at a time up to the next quote, backslash or control byte
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
    while (i + 16 <= n) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      // bytes <= 0x1f unsigned: min(v, 0x1f) == v
      __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v);
      unsigned m = unsigned(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, b)), low)));
      if (m != 0) {
        i += unsigned(__builtin_ctz(m));
        break;
      }
      i += 16;
    }
#endif
    while (i < n && kClasses.plain[s[i]]) i++;
    if (i >= n) return NONE;
    if (s[i] == '"') return i + 1;
    if (s[i] != '\\' || i + 1 >= n) return NONE;  // a control byte, or a backslash at the end
    escaped = true;
    switch (s[i + 1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        i += 2;
        break;
      case 'u':
        if (i + 6 > n || !kClasses.hex[s[i + 2]] || !kClasses.hex[s[i + 3]] || !kClasses.hex[s[i + 4]] || !kClasses.hex[s[i + 5]]) return NONE;
        i += 6;
        break;
      default:
        return NONE;
    }
  }
}

inline size_t digits(const uint8_t* s, size_t n, size_t i) {
  size_t from = i;
  while (i < n && digit(s[i])) i++;
  return i == from ? NONE : i;
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
inline size_t number(const uint8_t* s, size_t n, size_t i) {
  if (s[i] == '-') i++;
  if (i >= n) return NONE;
  if (s[i] == '0') i++;
  else if ((i = digits(s, n, i)) == NONE) return NONE;
  if (i < n && s[i] == '.' && (i = digits(s, n, i + 1)) == NONE) return NONE;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if ((i = digits(s, n, i)) == NONE) return NONE;
  }
  return i;
}

inline size_t literal(const uint8_t* s, size_t n, size_t i, const char* word, size_t len) {
  return i + len <= n && memcmp(s + i, word, len) == 0 ? i + len : NONE;
}

// One line. Iterative, with the open containers on `open`, so no nesting depth overflows the stack.
uint8_t checkLine(const uint8_t* s, size_t n, std::vector<uint8_t>& open) {
  size_t i = 0;
  while (i < n && space(s[i])) i++;
  if (i >= n || s[i] != '{') return BAD;
  uint8_t status = i == 0 && n > 1 && s[1] == '"' ? SPLICE : MERGE;
  enum { KEY_OR_CLOSE, KEY, COLON, VALUE_OR_CLOSE, VALUE, AFTER } state = KEY_OR_CLOSE;
  open.clear();
  open.push_back('{');
  i++;
  bool escaped;
  for (;;) {
    while (i < n && space(s[i])) i++;
    if (i >= n) return BAD;
    uint8_t c = s[i];
    switch (state) {
      case KEY_OR_CLOSE:
        if (c == '}') goto close;
        [[fallthrough]];
      case KEY: {
        if (c != '"') return BAD;
        size_t end = string(s, n, i, escaped);
        if (end == NONE) return BAD;
        if (open.size() == 1 && (escaped || (end - i == 7 && memcmp(s + i, "\"agent\"", 7) == 0))) status = MERGE;
        i = end;
        state = COLON;
        continue;
      }
      case COLON:
        if (c != ':') return BAD;
        i++;
        state = VALUE;
        continue;
      case VALUE_OR_CLOSE:
        if (c == ']') goto close;
        [[fallthrough]];
      case VALUE:
        switch (c) {
          case '"':
            i = string(s, n, i, escaped);
            break;
          case '{':
          case '[':
            if (open.size() >= MAX_DEPTH) return BAD;
            open.push_back(c);
            i++;
            state = c == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
            continue;
          case 't':
            i = literal(s, n, i, "true", 4);
            break;
          case 'f':
            i = literal(s, n, i, "false", 5);
            break;
          case 'n':
            i = literal(s, n, i, "null", 4);
            break;
          default:
            if (c != '-' && !digit(c)) return BAD;
            i = number(s, n, i);
        }
        if (i == NONE) return BAD;
        state = AFTER;
        continue;
      case AFTER:
        if (c == ',') {
          i++;
          state = open.back() == '{' ? KEY : VALUE;
          continue;
        }
        if (c != (open.back() == '{' ? '}' : ']')) return BAD;
        goto close;
    }
  close:
    open.pop_back();
    i++;
    if (open.empty()) {
      if (i == n) return status;
      while (i < n && space(s[i])) i++;
      // white space after the object is JSON, but the spliced line would carry it
      return i == n ? MERGE : BAD;
    }
    state = AFTER;
  }
}

// checkJsonLines(bytes, length, statuses): the bytes' lines (split at \n, as
// String.prototype.split('\n') splits their text) checked into statuses[i];
// returns the number of lines, which may exceed statuses.length (those past it
// are not checked: the caller split differently and should not trust this).
napi_value CheckJsonLines(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  const uint8_t* bytes;
  uint8_t* statuses;
  size_t bytesLen, statusLen;
  uint32_t length;
  CHECK(skafe::typedArray(env, argv[0], &bytes, &bytesLen));
  CHECK(napi_get_value_uint32(env, argv[1], &length));
  CHECK(skafe::typedArray(env, argv[2], &statuses, &statusLen));
  if (length > bytesLen) length = uint32_t(bytesLen);
  thread_local std::vector<uint8_t> open;
  size_t lines = 0, pos = 0;
  for (;;) {
    const void* nl = memchr(bytes + pos, '\n', length - pos);
    size_t end = nl ? size_t(static_cast<const uint8_t*>(nl) - bytes) : length;
    if (lines < statusLen) statuses[lines] = checkLine(bytes + pos, end - pos, open);
    lines++;
    if (!nl) break;
    pos = end + 1;
  }
  napi_value result;
  CHECK(napi_create_double(env, double(lines), &result));
  return result;
}

}  // namespace

void RegisterLineCheck(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"checkJsonLines", nullptr, CheckJsonLines, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
