/*
 * udp_batch: a Linux recvmmsg(2) UDP receiver for aws-csm-bridge (N-API, plain C).
 *
 * One BatchSocket = one bound UDP socket watched by a uv_poll_t on Node's own
 * loop (no threads). When the socket is readable, recvmmsg(MSG_DONTWAIT) reads
 * up to MAX_BATCH datagrams per call straight into one ArrayBuffer allocated at
 * open (slot i at offset i * SLOT_BYTES, so nothing is copied or allocated per
 * datagram), then JS is called ONCE per batch:
 *
 *     onBatch(count, addressUpdates)
 *
 * `meta` (an Int32Array, created once) holds per datagram i:
 *     meta[3i] = length, meta[3i + 1] = source port, meta[3i + 2] = address slot.
 * Source addresses are kept in a small cache (ADDR_CACHE slots keyed by the raw
 * sockaddr); `addressUpdates` is undefined unless this batch used an address
 * that was not cached, else a flat array [slot, "address", slot, "address", ...]
 * the JS side applies before reading the batch. So steady traffic from a few
 * senders allocates no strings at all. A slot used in the current batch is never
 * evicted within it (ADDR_CACHE > MAX_BATCH).
 *
 * At most MAX_ROUNDS batches are read per readable event so timers and HTTP
 * still get their turn under a flood (the poll is level-triggered: the rest is
 * read on the next loop iteration; see MAX_ROUNDS). The buffer and meta contents are only valid
 * during the onBatch call.
 *
 * Errors from socket/bind are thrown as JS errors with `code` (EADDRINUSE ...)
 * and `syscall`; receive errors after open go to onError(err) and never crash.
 */
#define _GNU_SOURCE /* recvmmsg, struct mmsghdr */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#define SLOT_BYTES 65536 /* > the largest UDP payload (65507 over IPv4, 65527 over IPv6) */
#define MAX_BATCH 64
/* recvmmsg calls per readable event. 1: the loop turns after every batch, so HTTP (the OTLP
   export) and timers get their turn between batches, as with node:dgram (libuv reads 32 per
   event). Measured at 130k/s on one core (bench/run.mjs): 8 rounds (512 datagrams per turn) let
   the export fall behind (p50 latency 585 ms, 6.8 % loss, 8.6 CPU s/M); 1 round: 8 ms, 2.6 %,
   7.2 CPU s/M. The poll is level-triggered, so what is left is read on the next turn. */
#ifndef MAX_ROUNDS
#define MAX_ROUNDS 1
#endif
#define ADDR_CACHE 128 /* > MAX_BATCH: a batch never evicts a slot it uses */
#define META_FIELDS 3

#ifdef __linux__

typedef struct {
  sa_family_t family;
  uint16_t used; /* 0 = empty */
  uint32_t scope_id;
  uint32_t round; /* the batch that last used it */
  uint8_t addr[16];
} addr_entry;

typedef struct {
  napi_env env;
  int fd;
  int family;
  uv_poll_t poll;
  int polling;       /* uv_poll_start succeeded and not yet closed */
  int closed;        /* close() called (or never opened) */
  int poll_closed;   /* the uv close callback ran (or the poll was never initialised) */
  int finalized;     /* the JS wrapper was collected */
  int in_callback;   /* inside on_readable */
  napi_ref self;     /* strong while open: keeps the wrapper (and so this struct) alive */
  napi_ref on_batch;
  napi_ref on_error;
  napi_ref data_ref; /* the ArrayBuffer the datagrams land in */
  napi_ref meta_ref;
  napi_async_context async_ctx;
  uint8_t *data;
  int32_t *meta;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in6 from[MAX_BATCH]; /* large enough for sockaddr_in too */
  addr_entry cache[ADDR_CACHE];
  uint32_t cache_next;
  uint32_t last_hit;
  uint32_t round;
} bsock;

#define CHECK(env, call)                                         \
  do {                                                           \
    if ((call) != napi_ok) {                                     \
      throw_last(env, #call);                                    \
      return NULL;                                               \
    }                                                            \
  } while (0)

static void throw_last(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "udp_batch: %s failed: %s", what, info && info->error_message ? info->error_message : "unknown");
  napi_throw_error(env, NULL, msg);
}

/** A JS Error with code (EADDRINUSE ...), errno and syscall, like Node's own. */
static napi_value errno_error(napi_env env, int err, const char *syscall) {
  const char *name = uv_err_name(-err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, name, strerror(err));
  napi_value m, code, e, no, sc;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_error(env, code, m, &e) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &no) == napi_ok) napi_set_named_property(env, e, "errno", no);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc) == napi_ok) napi_set_named_property(env, e, "syscall", sc);
  return e;
}

static void throw_errno(napi_env env, int err, const char *syscall) {
  napi_value e = errno_error(env, err, syscall);
  if (e) napi_throw(env, e);
  else napi_throw_error(env, uv_err_name(-err), syscall);
}

/* -------------------------------------------------------------------------- */
/* Teardown                                                                    */

static void free_if_done(bsock *s) {
  if (s->poll_closed && s->finalized) free(s);
}

static void on_poll_closed(uv_handle_t *h) {
  bsock *s = (bsock *)h->data;
  s->poll_closed = 1;
  free_if_done(s);
}

/* Stops receiving: closes the poll and the fd. No JS calls (usable from a finalizer). */
static void stop_native(bsock *s) {
  if (s->closed) return;
  s->closed = 1;
  if (s->polling) {
    s->polling = 0;
    uv_close((uv_handle_t *)&s->poll, on_poll_closed); /* stops the watcher at once */
  } else {
    s->poll_closed = 1;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

static void delete_ref(napi_env env, napi_ref *r) {
  if (*r) {
    napi_delete_reference(env, *r);
    *r = NULL;
  }
}

/* Drops the JS objects the socket holds. From JS context (close()) only. */
static void release_js(bsock *s) {
  napi_env env = s->env;
  delete_ref(env, &s->on_batch);
  delete_ref(env, &s->on_error);
  if (s->async_ctx) {
    napi_async_destroy(env, s->async_ctx);
    s->async_ctx = NULL;
  }
  if (s->self) {
    napi_reference_unref(env, s->self, NULL);
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  bsock *s = (bsock *)data;
  stop_native(s);
  delete_ref(env, &s->on_batch);
  delete_ref(env, &s->on_error);
  delete_ref(env, &s->data_ref);
  delete_ref(env, &s->meta_ref);
  delete_ref(env, &s->self);
  /* async_ctx: destroyed in close(); a socket collected without close() (env teardown) leaks it, harmlessly. */
  s->data = NULL;
  s->meta = NULL;
  s->finalized = 1;
  free_if_done(s);
}

/* -------------------------------------------------------------------------- */
/* Receive                                                                     */

static void report_error(bsock *s, int err, const char *syscall) {
  napi_env env = s->env;
  if (s->closed || !s->on_error) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, e;
  if (napi_get_reference_value(env, s->on_error, &cb) == napi_ok && cb && napi_get_global(env, &recv) == napi_ok &&
      (e = errno_error(env, err, syscall)) != NULL) {
    napi_value res;
    if (napi_make_callback(env, s->async_ctx, recv, cb, 1, &e, &res) != napi_ok) {
      napi_value ex;
      if (napi_get_and_clear_last_exception(env, &ex) == napi_ok && ex) napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

/** The cache slot of a source address; appends [slot, "addr"] to *updates when new. */
static int32_t address_slot(bsock *s, const struct sockaddr_in6 *sa, napi_value *updates, uint32_t *n_updates) {
  addr_entry key;
  memset(&key, 0, sizeof key);
  key.family = sa->sin6_family;
  key.used = 1;
  if (sa->sin6_family == AF_INET6) {
    memcpy(key.addr, &sa->sin6_addr, 16);
    key.scope_id = sa->sin6_scope_id;
  } else {
    memcpy(key.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  }
  addr_entry *c = s->cache;
#define SAME(e) ((e).used && (e).family == key.family && (e).scope_id == key.scope_id && memcmp((e).addr, key.addr, 16) == 0)
  if (SAME(c[s->last_hit])) {
    c[s->last_hit].round = s->round;
    return (int32_t)s->last_hit;
  }
  for (uint32_t i = 0; i < ADDR_CACHE; i++) {
    if (SAME(c[i])) {
      c[i].round = s->round;
      s->last_hit = i;
      return (int32_t)i;
    }
  }
#undef SAME
  /* New address: take the next slot not used by this batch (there is one: ADDR_CACHE > MAX_BATCH). */
  uint32_t slot = s->cache_next;
  for (uint32_t k = 0; k < ADDR_CACHE; k++, slot = (slot + 1) % ADDR_CACHE) {
    if (!c[slot].used || c[slot].round != s->round) break;
  }
  s->cache_next = (slot + 1) % ADDR_CACHE;

  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  text[0] = '\0';
  if (key.family == AF_INET6) {
    inet_ntop(AF_INET6, key.addr, text, INET6_ADDRSTRLEN);
    /* Like Node: a link-local address carries its interface (fe80::1%eth0). */
    if (IN6_IS_ADDR_LINKLOCAL(&sa->sin6_addr) && key.scope_id > 0) {
      size_t l = strlen(text);
      char ifname[IF_NAMESIZE];
      if (if_indextoname(key.scope_id, ifname)) snprintf(text + l, sizeof text - l, "%%%s", ifname);
      else snprintf(text + l, sizeof text - l, "%%%u", key.scope_id);
    }
  } else {
    inet_ntop(AF_INET, key.addr, text, INET_ADDRSTRLEN);
  }

  napi_env env = s->env;
  napi_value idx, str;
  if (*updates == NULL && napi_create_array(env, updates) != napi_ok) *updates = NULL;
  if (*updates != NULL && napi_create_uint32(env, slot, &idx) == napi_ok &&
      napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &str) == napi_ok) {
    napi_set_element(env, *updates, (*n_updates)++, idx);
    napi_set_element(env, *updates, (*n_updates)++, str);
    key.round = s->round;
    c[slot] = key;
    s->last_hit = slot;
    return (int32_t)slot;
  }
  /* Out of JS memory: leave the slot empty; the JS side sees slot -1 ("unknown"). */
  c[slot].used = 0;
  return -1;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  bsock *s = (bsock *)h->data;
  if (s->closed || s->in_callback) return;
  if (status < 0) {
    /* The watcher failed (e.g. EBADF): stop it rather than spin; the socket is unusable. */
    uv_poll_stop(&s->poll);
    report_error(s, -status, "poll");
    return;
  }
  napi_env env = s->env;
  s->in_callback = 1;
  for (int round = 0; round < MAX_ROUNDS && !s->closed; round++) {
    for (int i = 0; i < MAX_BATCH; i++) {
      s->iov[i].iov_base = s->data + (size_t)i * SLOT_BYTES;
      s->iov[i].iov_len = SLOT_BYTES;
      memset(&s->msgs[i].msg_hdr, 0, sizeof s->msgs[i].msg_hdr);
      s->msgs[i].msg_hdr.msg_name = &s->from[i];
      s->msgs[i].msg_hdr.msg_namelen = sizeof s->from[i];
      s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
      s->msgs[i].msg_hdr.msg_iovlen = 1;
      s->msgs[i].msg_len = 0;
    }
    int n;
    int tries = 0;
    do {
      n = recvmmsg(s->fd, s->msgs, MAX_BATCH, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR && ++tries < 16);
    if (n < 0) {
      int err = errno;
      if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) report_error(s, err, "recvmmsg");
      break;
    }
    if (n == 0) break;

    s->round++;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) break;
    napi_value updates = NULL;
    uint32_t n_updates = 0;
    int32_t *meta = s->meta;
    for (int i = 0; i < n; i++) {
      /* MSG_TRUNC is not passed in the flags, so msg_len is what was copied (<= SLOT_BYTES); a
         datagram longer than its slot (MSG_TRUNC in msg_flags) cannot happen with 64 KiB slots, and
         would be delivered cut, as node:dgram does. The clamp is belt and braces. */
      uint32_t len = s->msgs[i].msg_len;
      if (len > SLOT_BYTES) len = SLOT_BYTES;
      const struct sockaddr_in6 *sa = &s->from[i];
      int32_t port = sa->sin6_family == AF_INET6 ? ntohs(sa->sin6_port) : ntohs(((const struct sockaddr_in *)sa)->sin_port);
      meta[i * META_FIELDS] = (int32_t)len;
      meta[i * META_FIELDS + 1] = port;
      meta[i * META_FIELDS + 2] = address_slot(s, sa, &updates, &n_updates);
    }
    napi_value cb, recv, argv[2], res;
    bool ok = s->on_batch && napi_get_reference_value(env, s->on_batch, &cb) == napi_ok && cb &&
              napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, n, &argv[0]) == napi_ok;
    if (ok && !updates) ok = napi_get_undefined(env, &updates) == napi_ok;
    if (ok) {
      argv[1] = updates;
      if (napi_make_callback(env, s->async_ctx, recv, cb, 2, argv, &res) != napi_ok) {
        /* The handler threw: surface it like an event handler's exception (process 'uncaughtException'). */
        napi_value ex;
        if (napi_get_and_clear_last_exception(env, &ex) == napi_ok && ex) napi_fatal_exception(env, ex);
        napi_close_handle_scope(env, scope);
        break;
      }
    }
    napi_close_handle_scope(env, scope);
    if (!ok || n < MAX_BATCH) break; /* drained (probably): the level-triggered poll says if not */
  }
  s->in_callback = 0;
}

/* -------------------------------------------------------------------------- */
/* JS API                                                                      */

static bsock *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  bsock *s = NULL;
  if (napi_unwrap(env, self, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "udp_batch: not a BatchSocket");
    return NULL;
  }
  return s;
}

static int parse_address(const char *host, int ipv6, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (ipv6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    snprintf(buf, sizeof buf, "%s", host);
    char *pct = strchr(buf, '%');
    if (pct) {
      *pct = '\0';
      const char *zone = pct + 1;
      unsigned idx = if_nametoindex(zone);
      if (idx == 0) {
        char *end = NULL;
        unsigned long v = strtoul(zone, &end, 10);
        if (!*zone || *end) return EADDRNOTAVAIL;
        idx = (unsigned)v;
      }
      a->sin6_scope_id = idx;
    }
    if (inet_pton(AF_INET6, buf, &a->sin6_addr) != 1) return EINVAL;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return EINVAL;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    *len = sizeof *a;
  }
  return 0;
}

/** new BatchSocket(host: numeric IP, port, ipv6: boolean, rcvbufBytes, onBatch, onError) */
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], self;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  napi_value new_target = NULL;
  CHECK(env, napi_get_new_target(env, info, &new_target));
  if (!new_target || argc < 6) {
    napi_throw_type_error(env, NULL, "udp_batch: new BatchSocket(host, port, ipv6, rcvbufBytes, onBatch, onError)");
    return NULL;
  }
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t hostLen = 0;
  int32_t port = 0, rcvbuf = 0;
  bool ipv6 = false;
  napi_valuetype t1, t2;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hostLen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_bool(env, argv[2], &ipv6) != napi_ok ||
      napi_get_value_int32(env, argv[3], &rcvbuf) != napi_ok || napi_typeof(env, argv[4], &t1) != napi_ok ||
      napi_typeof(env, argv[5], &t2) != napi_ok || t1 != napi_function || t2 != napi_function || port < 0 || port > 65535 ||
      hostLen >= sizeof host - 1) {
    napi_throw_type_error(env, NULL, "udp_batch: bad arguments");
    return NULL;
  }

  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  int perr = parse_address(host, ipv6, (uint16_t)port, &ss, &sslen);
  if (perr) {
    throw_errno(env, perr, "bind");
    return NULL;
  }

  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    return NULL;
  }
  if (ipv6) {
    int on = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
      int err = errno;
      close(fd);
      throw_errno(env, err, "setsockopt");
      return NULL;
    }
  }
  /* SO_RCVBUF before bind; a failure is reported (rcvbufError), not fatal, as with node:dgram. */
  int rcvbuf_err = 0;
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) rcvbuf_err = errno;
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "bind");
    return NULL;
  }

  bsock *s = (bsock *)calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  s->env = env;
  s->fd = fd;
  s->family = ipv6 ? AF_INET6 : AF_INET;
  s->poll_closed = 1; /* until the poll is initialised */

  /* From here on, failures go through `fail`: the fd is closed, JS refs dropped, s freed. */
  napi_value data_ab, meta_ab, meta_arr, name;
  void *data_ptr = NULL, *meta_ptr = NULL;
  if (napi_create_arraybuffer(env, (size_t)MAX_BATCH * SLOT_BYTES, &data_ptr, &data_ab) != napi_ok ||
      napi_create_arraybuffer(env, sizeof(int32_t) * MAX_BATCH * META_FIELDS, &meta_ptr, &meta_ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, MAX_BATCH * META_FIELDS, meta_ab, 0, &meta_arr) != napi_ok ||
      napi_create_reference(env, data_ab, 1, &s->data_ref) != napi_ok ||
      napi_create_reference(env, meta_arr, 1, &s->meta_ref) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &s->on_batch) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &s->on_error) != napi_ok ||
      napi_create_string_utf8(env, "udp_batch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &s->async_ctx) != napi_ok ||
      napi_set_named_property(env, self, "buffer", data_ab) != napi_ok ||
      napi_set_named_property(env, self, "meta", meta_arr) != napi_ok)
    goto fail;
  s->data = (uint8_t *)data_ptr;
  s->meta = (int32_t *)meta_ptr;
  {
    napi_value e;
    if (rcvbuf_err) {
      e = errno_error(env, rcvbuf_err, "setsockopt");
      if (!e) goto fail;
    } else if (napi_get_null(env, &e) != napi_ok) {
      goto fail;
    }
    if (napi_set_named_property(env, self, "rcvbufError", e) != napi_ok) goto fail;
  }

  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) goto fail;
  if (napi_wrap(env, self, s, finalize, NULL, &s->self) != napi_ok) goto fail;
  /* Wrapped: from here the finalizer owns s. Keep the wrapper alive while the socket is open. */
  int r = napi_reference_ref(env, s->self, NULL) == napi_ok ? 0 : UV_ENOMEM;
  if (r == 0) r = uv_poll_init(loop, &s->poll, fd);
  if (r == 0) {
    s->poll.data = s;
    s->poll_closed = 0;
    s->polling = 1; /* initialised: stop_native must uv_close it, even if the start fails */
    r = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
  if (r != 0) {
    stop_native(s);
    release_js(s);
    throw_errno(env, -r, "uv_poll_start");
    return NULL;
  }
  return self;

fail:
  throw_last(env, "BatchSocket");
  close(fd);
  s->fd = -1;
  s->closed = 1;
  delete_ref(env, &s->data_ref);
  delete_ref(env, &s->meta_ref);
  delete_ref(env, &s->on_batch);
  delete_ref(env, &s->on_error);
  if (s->async_ctx) napi_async_destroy(env, s->async_ctx);
  free(s);
  return NULL;
}

/** address(): { address, port, family: 'IPv4' | 'IPv6' } of the bound socket. */
static napi_value js_address(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  bsock *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  if (s->closed) {
    throw_errno(env, EBADF, "getsockname");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) {
    throw_errno(env, errno, "getsockname");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  int port;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, text, INET6_ADDRSTRLEN);
    if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) && a->sin6_scope_id > 0) {
      size_t l = strlen(text);
      char ifname[IF_NAMESIZE];
      if (if_indextoname(a->sin6_scope_id, ifname)) snprintf(text + l, sizeof text - l, "%%%s", ifname);
    }
    port = ntohs(a->sin6_port);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, text, INET_ADDRSTRLEN);
    port = ntohs(a->sin_port);
  }
  napi_value o, v;
  CHECK(env, napi_create_object(env, &o));
  CHECK(env, napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &v));
  CHECK(env, napi_set_named_property(env, o, "address", v));
  CHECK(env, napi_create_int32(env, port, &v));
  CHECK(env, napi_set_named_property(env, o, "port", v));
  CHECK(env, napi_create_string_latin1(env, ss.ss_family == AF_INET6 ? "IPv6" : "IPv4", NAPI_AUTO_LENGTH, &v));
  CHECK(env, napi_set_named_property(env, o, "family", v));
  return o;
}

/** recvBufferSize(): SO_RCVBUF as the kernel reports it (Linux: twice what was set). */
static napi_value js_recv_buffer_size(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  bsock *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  if (s->closed) {
    throw_errno(env, EBADF, "getsockopt");
    return NULL;
  }
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, &len) != 0) {
    throw_errno(env, errno, "getsockopt");
    return NULL;
  }
  napi_value r;
  CHECK(env, napi_create_int32(env, v, &r));
  return r;
}

/** close(): stops receiving at once (no onBatch after it returns), idempotent. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  bsock *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  if (!s->closed) {
    stop_native(s);
    release_js(s);
  }
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"address", NULL, js_address, NULL, NULL, NULL, napi_default, NULL},
      {"recvBufferSize", NULL, js_recv_buffer_size, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value ctor, v;
  CHECK(env, napi_define_class(env, "BatchSocket", NAPI_AUTO_LENGTH, construct, NULL, 3, methods, &ctor));
  CHECK(env, napi_set_named_property(env, exports, "BatchSocket", ctor));
  CHECK(env, napi_create_int32(env, SLOT_BYTES, &v));
  CHECK(env, napi_set_named_property(env, exports, "SLOT_BYTES", v));
  CHECK(env, napi_create_int32(env, MAX_BATCH, &v));
  CHECK(env, napi_set_named_property(env, exports, "MAX_BATCH", v));
  CHECK(env, napi_create_int32(env, MAX_ROUNDS, &v));
  CHECK(env, napi_set_named_property(env, exports, "MAX_ROUNDS", v));
  CHECK(env, napi_create_int32(env, ADDR_CACHE, &v));
  CHECK(env, napi_set_named_property(env, exports, "ADDR_CACHE", v));
  CHECK(env, napi_create_int32(env, META_FIELDS, &v));
  CHECK(env, napi_set_named_property(env, exports, "META_FIELDS", v));
  return exports;
}

#else /* !__linux__ */

/* Not Linux: an empty module; src/receive/batch-socket.ts falls back to node:dgram. */
static napi_value init(napi_env env, napi_value exports) {
  (void)env;
  return exports;
}

#endif

NAPI_MODULE_INIT() { return init(env, exports); }
