// N-API helpers shared by interpret.cc and project.cc.
#pragma once

#include <node_api.h>

#include <string>
#include <type_traits>

namespace skafe {

// Throws a JavaScript error naming the call that failed (unless one is pending); returns nullptr to return.
inline napi_value fail(napi_env env, const char* what) {
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, (std::string("skafe_interpret: ") + what + (info && info->error_message ? std::string(": ") + info->error_message : "")).c_str());
  return nullptr;
}

// A JavaScript string as UTF-8 into `out`.
inline bool getString(napi_env env, napi_value v, std::string& out) {
  // Straight into the string's current room; only a string that fills it is measured and read again.
  if (out.capacity() < 256) out.reserve(256);
  out.resize(out.capacity());
  size_t got = 0;
  if (napi_get_value_string_utf8(env, v, out.data(), out.size() + 1, &got) != napi_ok) return false;
  if (got + 4 < out.size()) {
    out.resize(got);
    return true;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out.resize(len);
  if (napi_get_value_string_utf8(env, v, out.data(), len + 1, &got) != napi_ok) return false;
  out.resize(got);
  return true;
}

// A typed array argument's elements and their number.
template <typename T>
inline napi_status typedArray(napi_env env, napi_value v, T** data, size_t* length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  // written straight into *data: GCC takes a local void* handed on this way for a dangling pointer
  return napi_get_typedarray_info(env, v, &type, length, reinterpret_cast<void**>(const_cast<typename std::remove_const<T>::type**>(data)), &buffer, &offset);
}

}  // namespace skafe

// In a napi_callback: a failed call throws and returns.
#define CHECK(call)                                              \
  do {                                                           \
    if ((call) != napi_ok) return ::skafe::fail(env, #call);     \
  } while (0)
