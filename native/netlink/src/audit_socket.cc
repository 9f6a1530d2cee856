// A NETLINK_AUDIT socket for Node: open/bind, send one request, and a
// non-blocking receive loop driven by a libuv poll handle. Nothing here blocks
// the JS thread: the socket is O_NONBLOCK, and requests to the kernel are
// handled inside sendto() itself (the kernel's audit_receive runs in the
// sender's context), so replies and acks simply arrive on the receive path.
//
// Backpressure: JS calls start() when its stream wants data and stop() when
// push() returns false. While stopped we do not read, the socket buffer fills,
// and the kernel's kauditd thread waits (unicast) or the kernel drops and
// flags ENOBUFS (multicast), which we count as kernel-side loss.

#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace {

// Kernel audit messages are at most MAX_AUDIT_MESSAGE_LENGTH (8970) bytes; rule
// listings can be larger (a rule carries up to 64 path strings), so a slot is
// generous. Slots per recvmmsg bound the work done per poll tick.
constexpr size_t kSlotBytes = 16 * 1024;
constexpr int kMaxSlots = 64;

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* code = uv_err_name(-err);
  std::string msg = std::string(syscall) + " failed: " + strerror(err) + " (" + code + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

class AuditSocket : public Napi::ObjectWrap<AuditSocket> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "AuditSocket",
                       {
                           InstanceMethod("send", &AuditSocket::Send),
                           InstanceMethod("start", &AuditSocket::Start),
                           InstanceMethod("stop", &AuditSocket::Stop),
                           InstanceMethod("close", &AuditSocket::Close),
                           InstanceMethod("drain", &AuditSocket::Drain),
                           InstanceAccessor("portid", &AuditSocket::PortId, nullptr),
                           InstanceAccessor("fd", &AuditSocket::Fd, nullptr),
                       });
  }

  // new AuditSocket(groups: number, slots: number, rcvbuf: number)
  explicit AuditSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AuditSocket>(info) {
    Napi::Env env = info.Env();
    uint32_t groups = info.Length() > 0 ? info[0].As<Napi::Number>().Uint32Value() : 0;
    int slots = info.Length() > 1 ? info[1].As<Napi::Number>().Int32Value() : 8;
    int rcvbuf = info.Length() > 2 ? info[2].As<Napi::Number>().Int32Value() : 0;
    if (slots < 1) slots = 1;
    if (slots > kMaxSlots) slots = kMaxSlots;
    slots_ = slots;

    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (fd_ < 0) {
      ErrnoError(env, errno, "socket").ThrowAsJavaScriptException();
      return;
    }
    if (rcvbuf > 0) {
      // As root SO_RCVBUFFORCE passes rmem_max; otherwise fall back to the capped one.
      if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof addr);
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = groups;
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      ErrnoError(env, err, "bind").ThrowAsJavaScriptException();
      return;
    }
    socklen_t len = sizeof addr;
    if (getsockname(fd_, reinterpret_cast<struct sockaddr*>(&addr), &len) == 0) portid_ = addr.nl_pid;

    bufs_.resize(static_cast<size_t>(slots_) * kSlotBytes);
    iovs_.resize(slots_);
    msgs_.resize(slots_);
    for (int i = 0; i < slots_; i++) {
      iovs_[i].iov_base = bufs_.data() + static_cast<size_t>(i) * kSlotBytes;
      iovs_[i].iov_len = kSlotBytes;
    }
  }

  ~AuditSocket() override { CloseNative(); }

 private:
  Napi::Value PortId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), portid_); }
  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // send(type, flags, seq, payload?: Buffer): sends one netlink message to the kernel.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      ErrnoError(env, EBADF, "sendto").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint16_t type = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
    uint16_t flags = static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value());
    uint32_t seq = info[2].As<Napi::Number>().Uint32Value();
    const uint8_t* data = nullptr;
    size_t dlen = 0;
    if (info.Length() > 3 && info[3].IsBuffer()) {
      auto b = info[3].As<Napi::Buffer<uint8_t>>();
      data = b.Data();
      dlen = b.Length();
    }
    std::vector<uint8_t> msg(NLMSG_SPACE(dlen), 0);
    auto* nlh = reinterpret_cast<struct nlmsghdr*>(msg.data());
    nlh->nlmsg_len = NLMSG_LENGTH(dlen);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = seq;
    nlh->nlmsg_pid = 0;
    if (dlen) memcpy(NLMSG_DATA(nlh), data, dlen);

    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof addr);
    addr.nl_family = AF_NETLINK;
    ssize_t rc;
    do {
      rc = sendto(fd_, msg.data(), nlh->nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      ErrnoError(env, errno, "sendto").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return env.Undefined();
  }

  // start(onMessages(flat: Array, enobufs: number, err?: Error)): begin polling.
  // `flat` holds [type, seq, payload, …]: payload is a string for audit records
  // (type >= 1100) and a Buffer for control replies (acks, status, rule lists).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      ErrnoError(env, EBADF, "uv_poll_start").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() > 0 && info[0].IsFunction()) callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (callback_.IsEmpty()) {
      Napi::TypeError::New(env, "start() needs a callback the first time").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!poll_) {
      uv_loop_t* loop = nullptr;
      napi_get_uv_event_loop(env, &loop);
      poll_ = new uv_poll_t;
      int rc = uv_poll_init(loop, poll_, fd_);
      if (rc != 0) {
        delete poll_;
        poll_ = nullptr;
        ErrnoError(env, -rc, "uv_poll_init").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      poll_->data = this;
    }
    if (!polling_) {
      int rc = uv_poll_start(poll_, UV_READABLE, OnReadable);
      if (rc != 0) {
        ErrnoError(env, -rc, "uv_poll_start").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      polling_ = true;
      Ref();  // keep this object alive while the loop can call back into it
    }
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPolling();
    CloseNative();
    callback_.Reset();
    return info.Env().Undefined();
  }

  void StopPolling() {
    if (polling_) {
      uv_poll_stop(poll_);
      polling_ = false;
      Unref();
    }
  }

  void CloseNative() {
    if (poll_) {
      if (polling_) uv_poll_stop(poll_);
      polling_ = false;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<AuditSocket*>(handle->data);
    self->ReadBatch(status);
  }

  void ReadBatch(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Array flat = Napi::Array::New(env);
    uint32_t enobufs = 0;
    Napi::Value error = env.Undefined();
    uint32_t n = 0;
    if (status < 0) {
      error = ErrnoError(env, -status, "uv_poll").Value();
    } else {
      // Up to 4 recvmmsg rounds per tick, then give the event loop back.
      n = Read(env, flat, 4, enobufs, error);
    }
    if (n == 0 && enobufs == 0 && error.IsUndefined()) return;
    if (callback_.IsEmpty()) return;
    callback_.MakeCallback(Value(), {flat, Napi::Number::New(env, enobufs), error});
  }

  // drain() → [flat, enobufs]: everything the socket holds now, read at once
  // (until EAGAIN), as start()'s callback would get it. For shutdown: once the
  // kernel no longer sends to us, what is still in the receive buffer would
  // otherwise go with the socket.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      ErrnoError(env, EBADF, "recvmmsg").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array flat = Napi::Array::New(env);
    uint32_t enobufs = 0;
    Napi::Value error = env.Undefined();
    Read(env, flat, -1, enobufs, error);
    if (!error.IsUndefined()) {
      Napi::Error(env, error).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(uint32_t(0), flat);
    r.Set(uint32_t(1), Napi::Number::New(env, enobufs));
    return r;
  }

  // Reads up to `rounds` recvmmsg rounds (-1: until the socket is empty) into
  // flat as type, seq, payload triples; returns how many values it added.
  uint32_t Read(Napi::Env env, Napi::Array flat, int rounds, uint32_t& enobufs, Napi::Value& error) {
    uint32_t n = 0;
    for (int round = 0; rounds < 0 || round < rounds; round++) {
      for (int i = 0; i < slots_; i++) {
        memset(&msgs_[i], 0, sizeof msgs_[i]);
        msgs_[i].msg_hdr.msg_iov = &iovs_[i];
        msgs_[i].msg_hdr.msg_iovlen = 1;
      }
      int got = recvmmsg(fd_, msgs_.data(), slots_, MSG_DONTWAIT, nullptr);
      if (got < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == ENOBUFS) {  // the kernel dropped messages for us: loss, not failure
          enobufs++;
          continue;
        }
        if (err != EAGAIN && err != EWOULDBLOCK) error = ErrnoError(env, err, "recvmmsg").Value();
        break;
      }
      for (int i = 0; i < got; i++) {
        size_t len = msgs_[i].msg_len;
        auto* nlh = reinterpret_cast<struct nlmsghdr*>(iovs_[i].iov_base);
        int remaining = static_cast<int>(len);
        // Records carry a short nlmsg_len (see below): only the header fields matter for them.
        for (; remaining >= static_cast<int>(NLMSG_HDRLEN) &&
               (nlh->nlmsg_type >= AUDIT_FIRST_USER_MSG || NLMSG_OK(nlh, remaining));
             nlh = NLMSG_NEXT(nlh, remaining)) {
          const char* data = static_cast<const char*>(NLMSG_DATA(nlh));
          size_t dlen = nlh->nlmsg_len - NLMSG_HDRLEN;
          flat.Set(n++, Napi::Number::New(env, nlh->nlmsg_type));
          flat.Set(n++, Napi::Number::New(env, nlh->nlmsg_seq));
          if (nlh->nlmsg_type >= AUDIT_FIRST_USER_MSG) {
            // Each record is a datagram of its own, and on the unicast path the
            // kernel sets nlmsg_len to the payload length alone (a quirk auditd
            // depends on; multicast copies get it fixed). So the datagram
            // length is the one to trust, and the record ends this datagram.
            dlen = len - NLMSG_HDRLEN;
            remaining = 0;
            // Record text: drop trailing NULs/newlines some senders include.
            while (dlen > 0 && (data[dlen - 1] == '\0' || data[dlen - 1] == '\n')) dlen--;
            flat.Set(n++, Napi::String::New(env, data, dlen));
            break;
          } else {
            flat.Set(n++, Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(data), dlen));
          }
        }
      }
      if (got < slots_) break;  // drained
    }
    return n;
  }

  int fd_ = -1;
  uint32_t portid_ = 0;
  int slots_ = 8;
  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  Napi::FunctionReference callback_;
  std::vector<uint8_t> bufs_;
  std::vector<struct iovec> iovs_;
  std::vector<struct mmsghdr> msgs_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("AuditSocket", AuditSocket::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(skafe_netlink, InitModule)
