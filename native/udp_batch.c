/*
 * udp_batch: a Linux recvmmsg(2) UDP receiver for aws-csm-bridge (N-API, plain C).
 *
 * One BatchSocket = one bound UDP socket drained by its own reader thread. The kernel's socket
 * buffer (SO_RCVBUF, capped by net.core.rmem_max: 8 MiB holds only ~3,500 small datagrams on
 * loopback, 35 ms at 100k/s) was all that absorbed a cold start and every GC pause of the JS
 * thread; the X-Ray daemon and the Collector's UDP receivers drain the socket on their own thread
 * for that reason. Here:
 *
 *   reader thread: poll(socket, stop eventfd) -> recvmmsg(MSG_DONTWAIT) up to MAX_BATCH datagrams
 *                  into a staging buffer -> each copied into a bounded ring (RING_BYTES of
 *                  datagram bytes, RING_DATAGRAMS entries) -> uv_async_send (libuv coalesces:
 *                  one wakeup of the JS thread however many batches arrived meanwhile).
 *   JS thread:     the async callback hands up to MAX_BATCH ring entries to JS in ONE call,
 *
 *                      onBatch(count, addressUpdates)
 *
 *                  then releases them; MAX_ROUNDS such calls per loop turn, the rest on the next
 *                  turn (the async is re-armed), so timers and HTTP keep their turn under a flood.
 *
 * A full ring drops the datagram and counts it (ringDropped(), read from JS next to the kernel's
 * drops): memory stays bounded whatever the input. Single producer, single consumer: the reader
 * thread only moves `head` and where it writes, the JS thread only `tail` (C11 atomics,
 * acquire/release); a datagram never wraps around the ring's end (see ring_push).
 *
 * `buffer` is the ring (an ArrayBuffer over RING_BYTES, pages made resident only when written).
 * `meta` (an Int32Array, created once) holds per datagram i of a batch:
 *     meta[4i] = length, meta[4i + 1] = source port, meta[4i + 2] = address slot,
 *     meta[4i + 3] = offset of its bytes in `buffer`.
 * Source addresses are kept in a small cache (ADDR_CACHE slots keyed by the raw
 * sockaddr); `addressUpdates` is undefined unless this batch used an address
 * that was not cached, else a flat array [slot, "address", slot, "address", ...]
 * the JS side applies before reading the batch. So steady traffic from a few
 * senders allocates no strings at all. A slot used in the current batch is never
 * evicted within it (ADDR_CACHE > MAX_BATCH). The buffer and meta contents are only valid
 * during the onBatch call.
 *
 * close() stops the thread (eventfd) and joins it before returning: no onBatch after it, no
 * thread or descriptor left behind. Errors from socket/bind are thrown as JS errors with `code`
 * (EADDRINUSE ...) and `syscall`; receive errors after open go to onError(err) and never crash.
 */
#define _GNU_SOURCE /* recvmmsg, struct mmsghdr */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/sock_diag.h> /* SK_MEMINFO_* */
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#endif
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif

#define SLOT_BYTES 65536 /* > the largest UDP payload (65507 over IPv4, 65527 over IPv6) */
#define MAX_BATCH 64
/* Batches handed to JS per loop turn. 1: the loop turns after every batch, so HTTP (the OTLP
   export) and timers get their turn between batches, as with node:dgram (libuv reads 32 per
   event). Measured at 130k/s on one core (bench/run.mjs, when the loop read the socket itself):
   8 rounds (512 datagrams per turn) let the export fall behind (p50 latency 585 ms, 6.8 % loss,
   8.6 CPU s/M); 1 round: 8 ms, 2.6 %, 7.2 CPU s/M. The rest waits in the ring for the next turn. */
#ifndef MAX_ROUNDS
#define MAX_ROUNDS 1
#endif
#define ADDR_CACHE 128 /* > MAX_BATCH: a batch never evicts a slot it uses */
#define META_FIELDS 4
/* The ring between the reader thread and JS: what absorbs a cold start (V8 still compiling the
   datagram path, ~0.4 s) or a GC pause at full rate. 32 MiB is ~0.65 s of 100k/s of 500-byte CSM
   datagrams; 65,536 entries the same time for datagrams of 512 bytes or less. Both powers of two
   (cheap modulo). Pages are touched (resident) only as far as a backlog ever reached. */
#define RING_BYTES (32u << 20)
#define RING_DATAGRAMS 65536u
/* The ring empty and no datagram for this long: the reader thread returns the pages a backlog
   touched (madvise MADV_DONTNEED), so a burst does not leave its high-water mark resident. */
#define RING_TRIM_AFTER_MS 5000
/* When the ring empties after a backlog that reached further than this, the reader thread returns
   the pages beyond it at once (a cold start's backlog would otherwise stay resident for as long as
   traffic continues: the ring starts over at its beginning whenever empty, so steady traffic uses
   only its first few hundred KiB). */
#define RING_KEEP_BYTES (1u << 20)
/* After an unexpected recvmmsg error the reader thread waits this long before it tries again
   (a persistent error must not spin a core). */
#define ERROR_BACKOFF_NS 10000000L
/* Once the socket is empty the reader thread sleeps before it polls again, so that under load
   each wakeup reads a batch instead of the one or two datagrams that arrived since the last:
   loopback senders wake a polling reader per datagram, and each wakeup preempts the JS thread
   (on one core at 100k/s: 1.1 us per datagram in the reader and 755 preemptions of the JS
   thread a second; with 2 ms, 0.8 us and 350. 4 ms cost less again, but with a sender of one
   sendto per datagram (bench/send.py) two runs of two lost 1.2 and 4.1 % in the kernel while
   the ring had room: not understood, not kept). The kernel's buffer
   holds the datagrams meanwhile, so the sleep adapts to it (SO_MEMINFO: what the queued
   datagrams use of SO_RCVBUF, read once per wakeup): a wakeup that finds more than a quarter
   used halves the sleep (down to none), one that finds less than a sixteenth doubles it (up to
   COALESCE_MAX_NS; it starts at COALESCE_MIN_NS, so a cold start's first reads do not wait).
   Idle, poll still blocks without a timeout. */
#ifndef COALESCE_MAX_NS
#define COALESCE_MAX_NS 2000000L
#endif
#define COALESCE_MIN_NS 31250L /* below this the sleep is dropped altogether (2 ms halved 6 times) */

#ifdef __linux__

typedef struct {
  sa_family_t family;
  uint16_t used; /* 0 = empty */
  uint32_t scope_id;
  uint32_t round; /* the batch that last used it */
  uint8_t addr[16];
} addr_entry;

/* One datagram in the ring: where its bytes are, and who sent it. */
typedef struct {
  uint32_t off;
  uint32_t len;
  struct sockaddr_in6 from; /* large enough for sockaddr_in too */
} ring_entry;

typedef struct {
  napi_env env;
  int fd;
  int family;
  int stop_fd;        /* eventfd: wakes the reader thread to exit */
  pthread_t thread;
  int thread_running; /* created and not yet joined */
  uv_async_t async;   /* the reader thread's wakeup of the JS thread */
  int async_open;     /* uv_async_init succeeded and not yet closed */
  int closed;         /* close() called (or never opened) */
  int async_closed;   /* the uv close callback ran (or the async was never initialised) */
  int finalized;      /* the JS wrapper was collected */
  int in_callback;    /* inside on_async */
  napi_ref self;      /* strong while open: keeps the wrapper (and so this struct) alive */
  napi_ref on_batch;
  napi_ref on_error;
  napi_ref data_ref;  /* the ArrayBuffer over the ring */
  napi_ref meta_ref;
  napi_async_context async_ctx;

  /* The ring (single producer: the reader thread; single consumer: the JS thread). */
  uint8_t *ring;               /* RING_BYTES; owned by the ArrayBuffer (freed by its finalizer) */
  ring_entry *entries;         /* RING_DATAGRAMS */
  _Atomic uint64_t head;       /* entries written (reader thread) */
  _Atomic uint64_t tail;       /* entries handed on and released (JS thread) */
  uint32_t wpos;               /* where the newest datagram ends (reader thread only) */
  uint32_t reach;              /* the furthest wpos since pages were last returned (reader thread only) */
  int touched;                 /* pages written since they were last returned (reader thread only) */
  _Atomic uint64_t dropped;    /* datagrams read while the ring was full */
  _Atomic int recv_errno;      /* the reader's last unexpected error, for onError on the JS thread */
  _Atomic int stopping;

  /* The reader thread's own. */
  uint8_t *stage; /* MAX_BATCH * SLOT_BYTES: recvmmsg lands here, then each datagram is copied */
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in6 from[MAX_BATCH];

  /* The JS thread's own. */
  int32_t *meta;
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
  if (s->async_closed && s->finalized) {
    free(s->entries);
    free(s->stage);
    free(s);
  }
}

static void on_async_closed(uv_handle_t *h) {
  bsock *s = (bsock *)h->data;
  s->async_closed = 1;
  free_if_done(s);
}

/* Stops receiving: stops and joins the reader thread, closes the async and the fds. No JS calls
   (usable from a finalizer). After it, nothing touches the ring from another thread. */
static void stop_native(bsock *s) {
  if (s->closed) return;
  s->closed = 1;
  if (s->thread_running) {
    atomic_store(&s->stopping, 1);
    uint64_t one = 1;
    while (write(s->stop_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(s->thread, NULL);
    s->thread_running = 0;
  }
  if (s->async_open) {
    s->async_open = 0;
    uv_close((uv_handle_t *)&s->async, on_async_closed);
  } else {
    s->async_closed = 1;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  if (s->stop_fd >= 0) {
    close(s->stop_fd);
    s->stop_fd = -1;
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
  s->ring = NULL;
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

/* ---- The reader thread ---- */

/* Returns the whole pages inside [p, p + len) to the kernel (they read as zeros when touched again). */
static void release_pages(void *p, size_t len) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t from = ((uintptr_t)p + page - 1) & ~(page - 1);
  uintptr_t to = ((uintptr_t)p + len) & ~(page - 1);
  if (to > from) madvise((void *)from, to - from, MADV_DONTNEED);
}

/* Copies one datagram into the ring; 0 when the ring is full (entries or bytes).
   Where it goes: at the start when the ring is empty (so only as much of it is ever touched, and
   resident, as the deepest backlog needed), else after the newest datagram, or at the start if it
   does not fit before the end (a datagram never wraps). The bytes in use run from the oldest
   unreleased datagram (entries[tail].off: the producer wrote it and does not touch it again while
   it is queued; a tail read before the consumer moves on only makes the check stricter) to `wpos`,
   possibly wrapped; one byte is always left free, so wpos == start means empty, never full. */
static int ring_push(bsock *s, const uint8_t *bytes, uint32_t len, const struct sockaddr_in6 *from) {
  uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
  uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
  uint64_t queued = head - tail;
  if (queued >= RING_DATAGRAMS) return 0;
  uint32_t pos;
  if (queued == 0) {
    if (len >= RING_BYTES) return 0;
    pos = 0;
    if (s->reach > RING_KEEP_BYTES) { /* a backlog has drained: give back what it made resident */
      release_pages(s->ring + RING_KEEP_BYTES, s->reach - RING_KEEP_BYTES);
      s->reach = RING_KEEP_BYTES;
    }
  } else {
    uint32_t start = s->entries[tail % RING_DATAGRAMS].off;
    uint32_t w = s->wpos;
    if (w >= start) { /* in use: [start, w); free: [w, end) and [0, start) */
      if ((uint64_t)w + len < RING_BYTES) pos = w;
      else if (len < start) pos = 0;
      else return 0;
    } else { /* wrapped: in use [start, end) and [0, w); free: [w, start) */
      if ((uint64_t)w + len < start) pos = w;
      else return 0;
    }
  }
  memcpy(s->ring + pos, bytes, len);
  ring_entry *e = &s->entries[head % RING_DATAGRAMS];
  e->off = pos;
  e->len = len;
  e->from = *from;
  s->wpos = pos + len;
  if (s->wpos > s->reach) s->reach = s->wpos;
  s->touched = 1;
  atomic_store_explicit(&s->head, head + 1, memory_order_release);
  return 1;
}

/* Idle: once the JS thread has released everything (tail == head), nothing in the ring, its
   entries or the staging buffer is referenced any more; return what a backlog made resident. */
static void trim_if_idle(bsock *s) {
  if (!s->touched) return;
  if (atomic_load_explicit(&s->tail, memory_order_acquire) != atomic_load_explicit(&s->head, memory_order_relaxed)) return;
  release_pages(s->ring, RING_BYTES);
  release_pages(s->entries, (size_t)RING_DATAGRAMS * sizeof(ring_entry));
  release_pages(s->stage, (size_t)MAX_BATCH * SLOT_BYTES);
  s->touched = 0;
  s->reach = 0;
}

static void *reader_main(void *arg) {
  bsock *s = (bsock *)arg;
  struct pollfd fds[2] = {{s->fd, POLLIN, 0}, {s->stop_fd, POLLIN, 0}};
  long coalesce_ns = COALESCE_MIN_NS; /* doubled per quiet wakeup: a cold start begins without sleeping */
  while (!atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
    fds[0].revents = fds[1].revents = 0;
    int ready = poll(fds, 2, s->touched ? RING_TRIM_AFTER_MS : -1);
    if (ready == 0) {
      trim_if_idle(s);
      continue;
    }
    if (ready < 0) {
      if (errno == EINTR) continue;
      atomic_store(&s->recv_errno, errno);
      uv_async_send(&s->async);
      nanosleep(&(struct timespec){0, ERROR_BACKOFF_NS}, NULL);
      continue;
    }
    if (fds[1].revents) break;
    /* Read until the socket is empty (a short batch) or we are told to stop. */
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t mem_len = sizeof mem;
    if (getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &mem_len) == 0 && mem[SK_MEMINFO_RCVBUF] > 0) {
      uint32_t used = mem[SK_MEMINFO_RMEM_ALLOC], cap = mem[SK_MEMINFO_RCVBUF];
      if (used > cap / 4) coalesce_ns = coalesce_ns / 2 < COALESCE_MIN_NS ? 0 : coalesce_ns / 2;
      else if (used < cap / 16) coalesce_ns = coalesce_ns == 0 ? COALESCE_MIN_NS : (coalesce_ns * 2 > COALESCE_MAX_NS ? COALESCE_MAX_NS : coalesce_ns * 2);
    }
    while (!atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
      for (int i = 0; i < MAX_BATCH; i++) {
        s->msgs[i].msg_hdr.msg_namelen = sizeof s->from[i];
        s->msgs[i].msg_len = 0;
      }
      int n = recvmmsg(s->fd, s->msgs, MAX_BATCH, MSG_DONTWAIT, NULL);
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err != EAGAIN && err != EWOULDBLOCK) {
          atomic_store(&s->recv_errno, err);
          uv_async_send(&s->async);
          nanosleep(&(struct timespec){0, ERROR_BACKOFF_NS}, NULL);
        }
        break;
      }
      uint64_t lost = 0;
      for (int i = 0; i < n; i++) {
        /* MSG_TRUNC is not passed in the flags, so msg_len is what was copied (<= SLOT_BYTES); a
           datagram longer than its slot cannot happen with 64 KiB slots. The clamp is belt and braces. */
        uint32_t len = s->msgs[i].msg_len;
        if (len > SLOT_BYTES) len = SLOT_BYTES;
        if (!ring_push(s, s->stage + (size_t)i * SLOT_BYTES, len, &s->from[i])) lost++;
      }
      if (lost) atomic_fetch_add_explicit(&s->dropped, lost, memory_order_relaxed);
      if (n > 0) uv_async_send(&s->async);
      if (n < MAX_BATCH) break;
    }
    if (coalesce_ns > 0) nanosleep(&(struct timespec){0, coalesce_ns}, NULL);
  }
  return NULL;
}

/* ---- The JS thread ---- */

/* Hands up to MAX_BATCH ring entries to JS per round, MAX_ROUNDS rounds; re-arms itself if more wait. */
static void on_async(uv_async_t *h) {
  bsock *s = (bsock *)h->data;
  if (s->closed || s->in_callback) return;
  int err = atomic_exchange(&s->recv_errno, 0);
  if (err) report_error(s, err, "recvmmsg");
  napi_env env = s->env;
  s->in_callback = 1;
  for (int round = 0; round < MAX_ROUNDS && !s->closed; round++) {
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
    uint64_t avail = atomic_load_explicit(&s->head, memory_order_acquire) - tail;
    if (avail == 0) break;
    int n = avail < MAX_BATCH ? (int)avail : MAX_BATCH;

    s->round++;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) break;
    napi_value updates = NULL;
    uint32_t n_updates = 0;
    int32_t *meta = s->meta;
    for (int i = 0; i < n; i++) {
      const ring_entry *e = &s->entries[(tail + (uint64_t)i) % RING_DATAGRAMS];
      const struct sockaddr_in6 *sa = &e->from;
      int32_t port = sa->sin6_family == AF_INET6 ? ntohs(sa->sin6_port) : ntohs(((const struct sockaddr_in *)sa)->sin_port);
      meta[i * META_FIELDS] = (int32_t)e->len;
      meta[i * META_FIELDS + 1] = port;
      meta[i * META_FIELDS + 2] = address_slot(s, sa, &updates, &n_updates);
      meta[i * META_FIELDS + 3] = (int32_t)e->off;
    }
    napi_value cb, recv, argv[2], res;
    bool ok = s->on_batch && napi_get_reference_value(env, s->on_batch, &cb) == napi_ok && cb &&
              napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, n, &argv[0]) == napi_ok;
    if (ok && !updates) ok = napi_get_undefined(env, &updates) == napi_ok;
    bool threw = false;
    if (ok) {
      argv[1] = updates;
      if (napi_make_callback(env, s->async_ctx, recv, cb, 2, argv, &res) != napi_ok) {
        /* The handler threw: surface it like an event handler's exception (process 'uncaughtException'). */
        napi_value ex;
        if (napi_get_and_clear_last_exception(env, &ex) == napi_ok && ex) napi_fatal_exception(env, ex);
        threw = true;
      }
    }
    napi_close_handle_scope(env, scope);
    /* Release the batch (handed on, or lost with the handler's exception). */
    atomic_store_explicit(&s->tail, tail + (uint64_t)n, memory_order_release);
    if (!ok || threw) break;
  }
  s->in_callback = 0;
  /* More waiting: the next loop turn (uv_async_send from the loop thread is allowed). */
  if (!s->closed && atomic_load_explicit(&s->head, memory_order_acquire) != atomic_load_explicit(&s->tail, memory_order_relaxed))
    uv_async_send(&s->async);
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

static void free_ring(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
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
  s->stop_fd = -1;
  s->async_closed = 1; /* until the async is initialised */

  /* From here on, failures go through `fail`: the fds are closed, JS refs dropped, memory freed. */
  napi_value data_ab, meta_ab, meta_arr, name;
  void *meta_ptr = NULL;
  uint8_t *ring = NULL; /* ours until the ArrayBuffer over it exists, then its finalizer's */
  s->entries = (ring_entry *)calloc(RING_DATAGRAMS, sizeof(ring_entry));
  s->stage = (uint8_t *)malloc((size_t)MAX_BATCH * SLOT_BYTES);
  ring = (uint8_t *)malloc(RING_BYTES);
  s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!s->entries || !s->stage || !ring || s->stop_fd < 0) {
    napi_throw_error(env, "ENOMEM", "udp_batch: cannot allocate the receive ring");
    goto fail;
  }
  /* The ring outside V8's heap (an external ArrayBuffer): its 32 MiB, resident only as far as a
     backlog reached, are not counted as V8 external memory, which would drive extra collections. */
  if (napi_create_external_arraybuffer(env, ring, RING_BYTES, free_ring, NULL, &data_ab) == napi_ok) {
    s->ring = ring;
    ring = NULL;
  } else {
    /* A runtime that refuses external buffers: the ring in an ordinary ArrayBuffer. */
    bool pending = false;
    napi_value ignored;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &ignored);
    void *p = NULL;
    if (napi_create_arraybuffer(env, RING_BYTES, &p, &data_ab) != napi_ok) goto fail;
    free(ring);
    ring = NULL;
    s->ring = (uint8_t *)p;
  }
  if (napi_create_arraybuffer(env, sizeof(int32_t) * MAX_BATCH * META_FIELDS, &meta_ptr, &meta_ab) != napi_ok ||
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
  s->meta = (int32_t *)meta_ptr;
  for (int i = 0; i < MAX_BATCH; i++) {
    s->iov[i].iov_base = s->stage + (size_t)i * SLOT_BYTES;
    s->iov[i].iov_len = SLOT_BYTES;
    s->msgs[i].msg_hdr.msg_name = &s->from[i];
    s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
  }
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
  if (r == 0) r = uv_async_init(loop, &s->async, on_async);
  if (r == 0) {
    s->async.data = s;
    s->async_closed = 0;
    s->async_open = 1; /* initialised: stop_native must uv_close it */
    /* The reader thread takes no signals: they stay with Node's main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&s->thread, NULL, reader_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r == 0) s->thread_running = 1;
  }
  if (r != 0) {
    stop_native(s);
    release_js(s);
    throw_errno(env, -r, "pthread_create");
    return NULL;
  }
  return self;

fail:
  throw_last(env, "BatchSocket");
  close(fd);
  if (s->stop_fd >= 0) close(s->stop_fd);
  delete_ref(env, &s->data_ref);
  delete_ref(env, &s->meta_ref);
  delete_ref(env, &s->on_batch);
  delete_ref(env, &s->on_error);
  if (s->async_ctx) napi_async_destroy(env, s->async_ctx);
  free(ring);
  free(s->entries);
  free(s->stage);
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

/** ringDropped(): datagrams read from the socket but dropped because the ring was full. */
static napi_value js_ring_dropped(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  bsock *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  napi_value r;
  CHECK(env, napi_create_double(env, (double)atomic_load(&s->dropped), &r));
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

/**
 * trimMalloc(): returns glibc malloc's free memory to the OS, in every arena (the JS thread's, the
 * libuv pool's, V8's worker threads', this addon's reader threads'): glibc gives back only what is
 * free at the top of the main heap on its own, so what those threads freed stays resident
 * (malloc_trim(0) on an idle bridge: -5 MB RSS). src/memory-guard.ts calls it after its idle
 * collections. True when memory was returned; false where there is no glibc (musl).
 */
static napi_value js_trim_malloc(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __GLIBC__
  int released = malloc_trim(0);
#else
  int released = 0;
#endif
  napi_value r;
  napi_get_boolean(env, released != 0, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"address", NULL, js_address, NULL, NULL, NULL, napi_default, NULL},
      {"recvBufferSize", NULL, js_recv_buffer_size, NULL, NULL, NULL, napi_default, NULL},
      {"ringDropped", NULL, js_ring_dropped, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value ctor, v;
  CHECK(env, napi_define_class(env, "BatchSocket", NAPI_AUTO_LENGTH, construct, NULL, 4, methods, &ctor));
  CHECK(env, napi_set_named_property(env, exports, "BatchSocket", ctor));
  CHECK(env, napi_create_function(env, "trimMalloc", NAPI_AUTO_LENGTH, js_trim_malloc, NULL, &v));
  CHECK(env, napi_set_named_property(env, exports, "trimMalloc", v));
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
  CHECK(env, napi_create_uint32(env, RING_BYTES, &v));
  CHECK(env, napi_set_named_property(env, exports, "RING_BYTES", v));
  CHECK(env, napi_create_uint32(env, RING_DATAGRAMS, &v));
  CHECK(env, napi_set_named_property(env, exports, "RING_DATAGRAMS", v));
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
