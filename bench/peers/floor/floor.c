// floor.c - the "floor" peer: the same work as the ringloop scenarios, written
// straight on liburing (2.3) in C.  No coroutines, no task objects, no
// allocation per operation (arrays are preallocated up front).  Whatever
// ringloop costs above these numbers is the price of its abstractions.
//
// Usage: floor <scenario> <n> [conns] [secs]
//   scenarios: sleep_many lateness lateness_loaded spawn_gather wait_for_fast
//              wait_for_yield wait_for_io cancel_many echo unix_echo udp_echo
//              echo_bulk
//   echo, unix_echo, echo_bulk (64 KiB messages): n is the number of
//         connections (a 3rd argument, if given, overrides it); secs
//         defaults to 2.
//   udp_echo: n is the payload in bytes, conns the client sockets (1).
// Prints exactly one `key=value ...` line on stdout (see bench/peers/README.md).

#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/uio.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PEER "floor"

static struct io_uring ring;
static const char *setup_name = "plain";
static int ring_up = 0;

static void die(const char *what, int err) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(err < 0 ? -err : err));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Ring set-up.  SINGLE_ISSUER|DEFER_TASKRUN (kernel >= 6.1) keep completion
// work on this thread and run it only when we ask for events, which is the
// cheapest mode for a single-threaded loop; older kernels reject the flags
// with EINVAL, then we fall back to a plain ring.  CQSIZE gives a CQ bigger
// than the SQ so that batches of timeouts do not overflow it (CLAMP caps it
// at the kernel maximum; beyond that the kernel's overflow list keeps the
// CQEs, IORING_FEAT_NODROP).
static void ring_init(unsigned sq_entries, unsigned cq_entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = cq_entries < sq_entries ? sq_entries : cq_entries;
  int r = io_uring_queue_init_params(sq_entries, &ring, &p);
  if (r == -EINVAL) {
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = cq_entries < sq_entries ? sq_entries : cq_entries;
    r = io_uring_queue_init_params(sq_entries, &ring, &p);
  } else if (r == 0) {
    setup_name = "defer_taskrun";
  }
  if (r < 0) die("io_uring_queue_init_params", r);
  ring_up = 1;
}

// Reap whatever is already in the CQ without blocking; returns the count.
// `bad` counts CQEs whose result is not `expect`.
static unsigned reap_ready(int expect, unsigned *bad) {
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&ring, head, cqe) {
    if (cqe->res != expect) ++*bad;
    ++n;
  }
  io_uring_cq_advance(&ring, n);
  return n;
}

// Get an SQE; when the SQ is full, submit the batch (and reap what is ready,
// so the CQ drains while we keep submitting).
static struct io_uring_sqe *get_sqe(unsigned *reaped, int expect,
                                    unsigned *bad) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  while (!sqe) {
    int r = io_uring_submit(&ring);
    if (r < 0) die("io_uring_submit", r);
    if (reaped) *reaped += reap_ready(expect, bad);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

// Block until `total` CQEs (counted in *reaped) have been seen.
static void reap_until(unsigned *reaped, unsigned total, int expect,
                       unsigned *bad) {
  while (*reaped < total) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR && r != -ETIME) die("io_uring_submit_and_wait", r);
    *reaped += reap_ready(expect, bad);
  }
}

// Nearest-rank percentile (q in percent) of a sorted array: element
// ceil(q*n/100)-1.  All peers use this same definition.
static double pct(const double *v, size_t n, unsigned q) {
  size_t idx = (n * q + 99) / 100;
  if (idx == 0) idx = 1;
  return v[idx - 1];
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void print_skipped(const char *sc, long n, const char *why) {
  printf("peer=%s scenario=%s n=%ld skipped=%s\n", PEER, sc, n, why);
}

static void print_base(const char *sc, long n, uint64_t t0, double c0) {
  printf("peer=%s scenario=%s n=%ld wall_s=%.3f cpu_s=%.3f rss_kb=%ld", PEER,
         sc, n, (now_ns() - t0) / 1e9, cpu_s() - c0, rss_kb());
}

// ---------------------------------------------------------------- sleep_many
// N IORING_OP_TIMEOUT of 100 ms.  The kernel copies the timespec at prep
// time, so one shared timespec is enough: nothing is allocated per sleep.
static void sleep_many(long n) {
  ring_init(4096, (unsigned)(n < 65536 ? n : 65536));
  uint64_t t0 = now_ns();
  double c0 = cpu_s();
  static struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
  unsigned reaped = 0, bad = 0;
  for (long i = 0; i < n; i++) {
    struct io_uring_sqe *sqe = get_sqe(&reaped, -ETIME, &bad);
    io_uring_prep_timeout(sqe, &ts, 0, 0);
    sqe->user_data = 1;
  }
  reap_until(&reaped, (unsigned)n, -ETIME, &bad);
  if (bad) fprintf(stderr, "floor: %u unexpected CQE results\n", bad);
  print_base("sleep_many", n, t0, c0);
  printf(" setup=%s\n", setup_name);
}

// --------------------------------------------------------------- lateness(_loaded)
// N sequential 1 ms timeouts, one io_uring_enter (submit + wait 1) each.
// Loaded variant: 10k timeouts of 1 h are pending in the same ring first.
static void lateness(const char *sc, long n, int loaded) {
  ring_init(4096, 16384);
  uint64_t t0 = now_ns();
  double c0 = cpu_s();
  const unsigned pending = loaded ? 10000 : 0;
  static struct __kernel_timespec hour = {.tv_sec = 3600, .tv_nsec = 0};
  static struct __kernel_timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
  unsigned reaped = 0, bad = 0;
  for (unsigned i = 0; i < pending; i++) {
    struct io_uring_sqe *sqe = get_sqe(NULL, 0, &bad);
    io_uring_prep_timeout(sqe, &hour, 0, 0);
    sqe->user_data = 2;
  }
  if (pending) io_uring_submit(&ring);

  double *lat = malloc(sizeof(double) * (size_t)n);
  if (!lat) die("malloc", ENOMEM);
  for (long i = 0; i < n; i++) {
    struct io_uring_sqe *sqe = get_sqe(NULL, 0, &bad);
    io_uring_prep_timeout(sqe, &ms, 0, 0);
    sqe->user_data = 1;
    uint64_t a = now_ns();
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0) die("io_uring_submit_and_wait", r);
    struct io_uring_cqe *cqe;
    r = io_uring_wait_cqe(&ring, &cqe);  // already there: no syscall
    if (r < 0) die("io_uring_wait_cqe", r);
    uint64_t b = now_ns();
    if (cqe->user_data != 1 || cqe->res != -ETIME) bad++;
    io_uring_cqe_seen(&ring, cqe);
    lat[i] = ((double)(b - a) - 1e6) / 1e3;
  }
  if (pending) {
    // Tear the 10k pending timeouts down (part of the scenario's wall time,
    // as in the other peers): one ASYNC_CANCEL matching all user_data == 2.
    struct io_uring_sqe *sqe = get_sqe(NULL, 0, &bad);
    io_uring_prep_cancel64(sqe, 2, IORING_ASYNC_CANCEL_ALL);
    sqe->user_data = 3;
    unsigned b2 = 0;
    reap_until(&reaped, pending + 1, 0, &b2);
  }
  qsort(lat, (size_t)n, sizeof(double), cmp_double);
  if (bad) fprintf(stderr, "floor: %u unexpected CQE results\n", bad);
  print_base(sc, n, t0, c0);
  printf(" p50_us=%.1f p99_us=%.1f max_us=%.1f setup=%s\n", pct(lat, n, 50),
         pct(lat, n, 99), lat[n - 1], setup_name);
  free(lat);
}

// --------------------------------------------------------------- wait_for_io
// The floor of "wait_for(single io_uring op, 1 s)": a NOP linked
// (IOSQE_IO_LINK) to an IORING_OP_LINK_TIMEOUT of 1 s, both submitted by one
// io_uring_enter that also waits for the 2 CQEs (NOP: 0, timeout: -ECANCELED).
static void wait_for_io(long n) {
  ring_init(64, 128);
  uint64_t t0 = now_ns();
  double c0 = cpu_s();
  static struct __kernel_timespec sec = {.tv_sec = 1, .tv_nsec = 0};
  unsigned bad = 0;
  uint64_t a = now_ns();
  for (long i = 0; i < n; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_nop(sqe);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = 1;
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_link_timeout(sqe, &sec, 0);
    sqe->user_data = 2;
    int r = io_uring_submit_and_wait(&ring, 2);
    if (r < 0) die("io_uring_submit_and_wait", r);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->user_data == 1 ? cqe->res != 0 : cqe->res != -ECANCELED) bad++;
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
    if (seen != 2) {  // should not happen: we waited for 2
      unsigned more = seen;
      reap_until(&more, 2, 0, &bad);
    }
  }
  uint64_t b = now_ns();
  if (bad) fprintf(stderr, "floor: %u unexpected CQE results\n", bad);
  print_base("wait_for_io", n, t0, c0);
  printf(" ns_per_op=%.1f setup=%s\n", (double)(b - a) / n, setup_name);
}

// --------------------------------------------------------------- cancel_many
// N timeouts of 1 h (user_data = i + 1), then N IORING_OP_TIMEOUT_REMOVE, and
// 2N CQEs reaped (-ECANCELED for each timeout, 0 for each remove).  Removes go
// in submission order: the kernel looks a timeout up by walking its timeout
// list from the head, and plain timeouts are appended at the tail, so FIFO
// order finds each one at the head (O(1)) - what an expert would do.
static void cancel_many(long n) {
  ring_init(4096, 65536);
  uint64_t t0 = now_ns();
  double c0 = cpu_s();
  static struct __kernel_timespec hour = {.tv_sec = 3600, .tv_nsec = 0};
  unsigned bad = 0, reaped = 0;
  for (long i = 0; i < n; i++) {
    struct io_uring_sqe *sqe = get_sqe(NULL, 0, &bad);
    io_uring_prep_timeout(sqe, &hour, 0, 0);
    sqe->user_data = (uint64_t)i + 1;
  }
  int r = io_uring_submit(&ring);
  if (r < 0) die("io_uring_submit", r);

  uint64_t a = now_ns();
  unsigned bad_cancel = 0;  // results are mixed here (0 and -ECANCELED)
  for (long i = 0; i < n; i++) {
    struct io_uring_sqe *sqe = get_sqe(&reaped, 0, &bad_cancel);
    io_uring_prep_timeout_remove(sqe, (uint64_t)i + 1, 0);
    sqe->user_data = 0;  // removes are user_data 0, timeouts 1..N
  }
  reap_until(&reaped, (unsigned)(2 * n), 0, &bad_cancel);
  uint64_t b = now_ns();
  // Exactly n CQEs have res != 0 (the cancelled timeouts, -ECANCELED).
  if (bad_cancel != (unsigned)n)
    fprintf(stderr, "floor: %u CQEs with res != 0, expected %ld\n", bad_cancel,
            n);
  print_base("cancel_many", n, t0, c0);
  printf(" ns_per_op=%.1f setup=%s\n", (double)(b - a) / n, setup_name);
}

// ---------------------------------------------------------------------- echo
// TCP echo over 127.0.0.1: C client sockets and C server sockets in the same
// ring.  A client submits its send and its recv together (the recv waits for
// the echo), and on a full 64-byte echo it records the round trip and starts
// the next one.  The server side recv()s, send()s back what it got, and
// re-arms its recv when the send completes.  echo_bulk: the same with 64 KiB
// messages (a short send is sent on from where it stopped), reporting MB/s:
// each round trip's message counted once, 10^6 bytes a MB.
enum { C_SEND = 0, C_RECV = 1, S_RECV = 2, S_SEND = 3 };
#define UD(i, k) (((uint64_t)(i) << 2) | (k))
#define ECHO_MSG 64
#define BULK_MSG (64 * 1024)

typedef struct {
  int cfd, sfd;
  unsigned got;          // client: bytes of the echo received so far
  unsigned c_sent;       // client: bytes of the message sent so far
  unsigned s_len;        // server: bytes received, being sent back
  unsigned s_sent;       // server: bytes of those already sent
  int done;              // client stopped (deadline passed)
  uint64_t t0;           // client: start of the current round trip
  char *cin;             // client receive buffer (MSG bytes)
  char *sbuf;            // server buffer (MSG bytes)
} conn_t;

static unsigned MSG = ECHO_MSG;  // this run's message size
static char *message;            // MSG bytes

static struct io_uring_sqe *sqe_or_flush(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  while (!sqe) {
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

static void client_round(conn_t *c, long i) {
  c->got = 0;
  c->c_sent = 0;
  c->t0 = now_ns();
  struct io_uring_sqe *sqe = sqe_or_flush();
  io_uring_prep_send(sqe, c->cfd, message, MSG, MSG_NOSIGNAL);
  sqe->user_data = UD(i, C_SEND);
  sqe = sqe_or_flush();
  io_uring_prep_recv(sqe, c->cfd, c->cin, MSG, 0);
  sqe->user_data = UD(i, C_RECV);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

// echo over TCP, or (unix_echo) over a Unix socket at a path in /tmp: the same
// loop, only the sockets' family differs.
static void echo(const char *name, long conns, double secs, int unix_domain,
                 unsigned msg) {
  MSG = msg;
  message = malloc(MSG);
  if (!message) die("malloc", ENOMEM);
  for (unsigned k = 0; k < MSG; k++) message[k] = (char)('0' + k % 64);
  unsigned sq = conns * 4 < 256 ? 256 : (unsigned)conns * 4;
  ring_init(sq, sq * 2);
  uint64_t t0 = now_ns();
  double c0 = cpu_s();

  int family = unix_domain ? AF_UNIX : AF_INET;
  int lfd = socket(family, SOCK_STREAM, 0);
  if (lfd < 0) die("socket", errno);
  int one = 1;
  union {
    struct sockaddr_in in;
    struct sockaddr_un un;
  } addr = {0};
  socklen_t alen;
  if (unix_domain) {
    addr.un.sun_family = AF_UNIX;
    snprintf(addr.un.sun_path, sizeof addr.un.sun_path, "/tmp/ringloop-floor-%d.sock",
             (int)getpid());
    unlink(addr.un.sun_path);
    alen = sizeof addr.un;
  } else {
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    addr.in.sin_family = AF_INET;
    addr.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    alen = sizeof addr.in;
  }
  if (bind(lfd, (struct sockaddr *)&addr, alen) < 0) die("bind", errno);
  if (!unix_domain) getsockname(lfd, (struct sockaddr *)&addr, &alen);
  if (listen(lfd, 4096) < 0) die("listen", errno);

  conn_t *cs = calloc((size_t)conns, sizeof(conn_t));
  char *buffers = malloc((size_t)conns * 2 * MSG);
  if (!cs || !buffers) die("calloc", ENOMEM);
  for (long i = 0; i < conns; i++) {
    cs[i].cin = buffers + (size_t)i * 2 * MSG;
    cs[i].sbuf = cs[i].cin + MSG;
  }
  // Set-up (untimed): connect each client, accept it through the ring.
  for (long i = 0; i < conns; i++) {
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0) die("socket", errno);
    if (!unix_domain) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&addr, alen);
    sqe->user_data = 1;
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_accept(sqe, lfd, NULL, NULL, 0);
    sqe->user_data = 2;
    io_uring_submit_and_wait(&ring, 2);
    int seen = 0;
    while (seen < 2) {
      struct io_uring_cqe *cqe;
      int r = io_uring_wait_cqe(&ring, &cqe);
      if (r < 0) die("wait_cqe", r);
      if (cqe->res < 0) die(cqe->user_data == 1 ? "connect" : "accept", cqe->res);
      if (cqe->user_data == 2) cs[i].sfd = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      seen++;
    }
    cs[i].cfd = fd;
    if (!unix_domain) setsockopt(cs[i].sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  size_t cap = 1 << 20, nsamp = 0;
  uint32_t *rtt = malloc(cap * sizeof *rtt);
  if (!rtt) die("malloc", ENOMEM);

  uint64_t start = now_ns();
  uint64_t deadline = start + (uint64_t)(secs * 1e9);
  for (long i = 0; i < conns; i++) {
    struct io_uring_sqe *sqe = sqe_or_flush();
    io_uring_prep_recv(sqe, cs[i].sfd, cs[i].sbuf, MSG, 0);
    sqe->user_data = UD(i, S_RECV);
    client_round(&cs[i], i);
  }
  long active = conns;
  while (active > 0) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) die("io_uring_submit_and_wait", r);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      long i = (long)(cqe->user_data >> 2);
      conn_t *c = &cs[i];
      int res = cqe->res;
      switch (cqe->user_data & 3) {
        case C_SEND:
          if (res <= 0) die("client send", res < 0 ? res : EIO);
          c->c_sent += (unsigned)res;
          if (c->c_sent < MSG) {  // short send: send the rest
            struct io_uring_sqe *sqe = sqe_or_flush();
            io_uring_prep_send(sqe, c->cfd, message + c->c_sent, MSG - c->c_sent,
                               MSG_NOSIGNAL);
            sqe->user_data = UD(i, C_SEND);
          }
          break;
        case C_RECV: {
          if (res <= 0) die("client recv", res < 0 ? res : EPIPE);
          c->got += (unsigned)res;
          if (c->got < MSG) {  // short read: wait for the rest
            struct io_uring_sqe *sqe = sqe_or_flush();
            io_uring_prep_recv(sqe, c->cfd, c->cin + c->got, MSG - c->got, 0);
            sqe->user_data = UD(i, C_RECV);
            break;
          }
          uint64_t t = now_ns();
          if (nsamp == cap) {
            cap *= 2;
            rtt = realloc(rtt, cap * sizeof *rtt);
            if (!rtt) die("realloc", ENOMEM);
          }
          rtt[nsamp++] = (uint32_t)(t - c->t0 > UINT32_MAX ? UINT32_MAX
                                                           : t - c->t0);
          if (t < deadline)
            client_round(c, i);
          else {
            c->done = 1;
            active--;
          }
          break;
        }
        case S_RECV: {
          if (res <= 0) die("server recv", res < 0 ? res : EPIPE);
          c->s_len = (unsigned)res;
          c->s_sent = 0;
          struct io_uring_sqe *sqe = sqe_or_flush();
          io_uring_prep_send(sqe, c->sfd, c->sbuf, c->s_len, MSG_NOSIGNAL);
          sqe->user_data = UD(i, S_SEND);
          break;
        }
        case S_SEND: {
          if (res < 0) die("server send", res);
          c->s_sent += (unsigned)res;
          struct io_uring_sqe *sqe = sqe_or_flush();
          if (c->s_sent < c->s_len) {  // short send: send the rest
            io_uring_prep_send(sqe, c->sfd, c->sbuf + c->s_sent,
                               c->s_len - c->s_sent, MSG_NOSIGNAL);
            sqe->user_data = UD(i, S_SEND);
          } else {
            io_uring_prep_recv(sqe, c->sfd, c->sbuf, MSG, 0);
            sqe->user_data = UD(i, S_RECV);
          }
          break;
        }
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  uint64_t end = now_ns();
  // Tear down: closing the sockets ends the pending server recvs.
  for (long i = 0; i < conns; i++) {
    close(cs[i].cfd);
    close(cs[i].sfd);
  }
  close(lfd);
  if (unix_domain) unlink(addr.un.sun_path);
  qsort(rtt, nsamp, sizeof *rtt, cmp_u32);
  double p99 = 0;
  if (nsamp) {
    size_t idx = (nsamp * 99 + 99) / 100;
    p99 = rtt[idx - 1] / 1e3;
  }
  for (long i = 0; i < conns; i++)  // each client's last echo, byte for byte
    if (memcmp(cs[i].cin, message, MSG) != 0) die("client: the echo differs", EIO);
  print_base(name, conns, t0, c0);
  double elapsed = (end - start) / 1e9;
  printf(" conns=%ld secs=%g rtt_per_s=%.0f p99_us=%.1f", conns, secs, nsamp / elapsed, p99);
  if (MSG != ECHO_MSG) printf(" bytes=%u mb_per_s=%.1f", MSG, nsamp * (double)MSG / elapsed / 1e6);
  printf(" setup=%s\n", setup_name);
  free(rtt);
  free(buffers);
  free(cs);
  free(message);
}

// ------------------------------------------------------------------ udp_echo
// UDP echo over 127.0.0.1: one server socket echoing every datagram to its
// sender (IORING_OP_RECVMSG, then IORING_OP_SENDMSG to msg_name, then the
// next RECVMSG), and C connected client sockets that each submit a send and
// a recvmsg together and, on the echo, record the round trip and start the
// next.  The same operations ringloop's DatagramSocket uses.
enum { U_CSEND = 0, U_CRECV = 1, U_SRECV = 2, U_SSEND = 3 };

typedef struct {
  int fd;
  uint64_t t0;
  struct iovec iov;
  struct msghdr msg;
  char *buf;
} uclient_t;

static void udp_client_round(uclient_t *c, long i, const char *payload,
                             size_t bytes) {
  c->t0 = now_ns();
  struct io_uring_sqe *sqe = sqe_or_flush();
  io_uring_prep_send(sqe, c->fd, payload, bytes, MSG_NOSIGNAL);
  sqe->user_data = UD(i, U_CSEND);
  c->iov = (struct iovec){c->buf, bytes + 1};
  memset(&c->msg, 0, sizeof c->msg);
  c->msg.msg_iov = &c->iov;
  c->msg.msg_iovlen = 1;
  sqe = sqe_or_flush();
  io_uring_prep_recvmsg(sqe, c->fd, &c->msg, MSG_TRUNC);
  sqe->user_data = UD(i, U_CRECV);
}

static void udp_echo(long bytes, long conns, double secs) {
  unsigned sq = conns * 4 < 256 ? 256 : (unsigned)conns * 4;
  ring_init(sq, sq * 2);
  uint64_t t0 = now_ns();
  double c0 = cpu_s();
  size_t size = (size_t)bytes;

  int sfd = socket(AF_INET, SOCK_DGRAM, 0);
  if (sfd < 0) die("socket", errno);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(sfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind", errno);
  socklen_t alen = sizeof addr;
  getsockname(sfd, (struct sockaddr *)&addr, &alen);

  char *payload = malloc(size);
  char *sbuf = malloc(size + 1);
  uclient_t *cs = calloc((size_t)conns, sizeof(uclient_t));
  if (!payload || !sbuf || !cs) die("malloc", ENOMEM);
  memset(payload, 'x', size);
  for (long i = 0; i < conns; i++) {
    cs[i].fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (cs[i].fd < 0) die("socket", errno);
    if (connect(cs[i].fd, (struct sockaddr *)&addr, sizeof addr) < 0)
      die("connect", errno);
    cs[i].buf = malloc(size + 1);
    if (!cs[i].buf) die("malloc", ENOMEM);
  }
  struct sockaddr_storage from;
  struct iovec siov;
  struct msghdr smsg;
  // The server's one recvmsg at a time, as ringloop's server task does.
#define ARM_SERVER_RECV()                                     \
  do {                                                        \
    siov = (struct iovec){sbuf, size + 1};                    \
    memset(&smsg, 0, sizeof smsg);                            \
    smsg.msg_name = &from;                                    \
    smsg.msg_namelen = sizeof from;                           \
    smsg.msg_iov = &siov;                                     \
    smsg.msg_iovlen = 1;                                      \
    struct io_uring_sqe *s_ = sqe_or_flush();                 \
    io_uring_prep_recvmsg(s_, sfd, &smsg, MSG_TRUNC);         \
    s_->user_data = UD(0, U_SRECV);                           \
  } while (0)

  size_t cap = 1 << 20, nsamp = 0;
  uint32_t *rtt = malloc(cap * sizeof *rtt);
  if (!rtt) die("malloc", ENOMEM);
  uint64_t start = now_ns();
  uint64_t deadline = start + (uint64_t)(secs * 1e9);
  ARM_SERVER_RECV();
  for (long i = 0; i < conns; i++) udp_client_round(&cs[i], i, payload, size);
  long active = conns;
  while (active > 0) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) die("io_uring_submit_and_wait", r);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      long i = (long)(cqe->user_data >> 2);
      int res = cqe->res;
      switch (cqe->user_data & 3) {
        case U_CSEND:
          if (res != (int)size) die("client send", res < 0 ? res : EIO);
          break;
        case U_CRECV: {
          if (res != (int)size) die("client recvmsg", res < 0 ? res : EIO);
          uint64_t t = now_ns();
          if (nsamp == cap) {
            cap *= 2;
            rtt = realloc(rtt, cap * sizeof *rtt);
            if (!rtt) die("realloc", ENOMEM);
          }
          rtt[nsamp++] = (uint32_t)(t - cs[i].t0 > UINT32_MAX ? UINT32_MAX
                                                              : t - cs[i].t0);
          if (t < deadline)
            udp_client_round(&cs[i], i, payload, size);
          else
            active--;
          break;
        }
        case U_SRECV: {
          if (res < 0) die("server recvmsg", res);
          siov.iov_len = (size_t)res;  // the same msghdr: msg_name is the sender
          struct io_uring_sqe *sqe = sqe_or_flush();
          io_uring_prep_sendmsg(sqe, sfd, &smsg, MSG_NOSIGNAL);
          sqe->user_data = UD(0, U_SSEND);
          break;
        }
        case U_SSEND:
          if (res < 0) die("server sendmsg", res);
          ARM_SERVER_RECV();
          break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
#undef ARM_SERVER_RECV
  uint64_t end = now_ns();
  for (long i = 0; i < conns; i++) {
    close(cs[i].fd);
    free(cs[i].buf);
  }
  close(sfd);  // ends the server's pending recvmsg
  qsort(rtt, nsamp, sizeof *rtt, cmp_u32);
  double p99 = 0;
  if (nsamp) p99 = rtt[(nsamp * 99 + 99) / 100 - 1] / 1e3;
  print_base("udp_echo", bytes, t0, c0);
  printf(" conns=%ld secs=%g datagrams_per_s=%.0f p99_us=%.1f setup=%s\n", conns,
         secs, nsamp / ((end - start) / 1e9), p99, setup_name);
  free(rtt);
  free(cs);
  free(payload);
  free(sbuf);
}

// ---------------------------------------------------------------- cross_loop
// The floor of a wake-up between two threads (issue #19): n round trips of 8 bytes through two
// pipes, each thread blocked in read(2).  No ring: the plain kernel path two threads meet on.
static int cross_to_server[2], cross_to_client[2];

static void *cross_server(void *arg) {
  (void)arg;
  uint64_t v;
  while (read(cross_to_server[0], &v, sizeof v) == (ssize_t)sizeof v)
    if (write(cross_to_client[1], &v, sizeof v) != (ssize_t)sizeof v) break;
  return NULL;
}

static void cross_loop(long n) {
  if (pipe(cross_to_server) || pipe(cross_to_client)) die("pipe", errno);
  pthread_t server;
  if (pthread_create(&server, NULL, cross_server, NULL)) die("pthread_create", EAGAIN);
  double *rtt = malloc(sizeof(double) * (size_t)n);
  uint64_t v, sum = 0;
  for (long k = 0; k < 1000 + n; k++) {
    if (k == 1000) sum = 0;
    uint64_t sent = now_ns();
    v = (uint64_t)(k < 1000 ? 0 : k - 1000);
    if (write(cross_to_server[1], &v, sizeof v) != (ssize_t)sizeof v) die("write", errno);
    if (read(cross_to_client[0], &v, sizeof v) != (ssize_t)sizeof v) die("read", errno);
    sum += v;
    if (k >= 1000) rtt[k - 1000] = (now_ns() - sent) / 1e3;
  }
  close(cross_to_server[1]);
  pthread_join(server, NULL);
  if (sum != (uint64_t)n * (uint64_t)(n - 1) / 2) die("cross_loop: wrong sum", EINVAL);
  double total_us = 0;
  for (long k = 0; k < n; k++) total_us += rtt[k];
  qsort(rtt, (size_t)n, sizeof(double), cmp_double);
  printf("peer=%s scenario=cross_loop n=%ld wall_s=%.3f cpu_s=%.3f rss_kb=%ld", PEER, n,
         total_us / 1e6, cpu_s(), rss_kb());
  printf(" p50_us=%.1f p99_us=%.1f msgs_per_s=%.0f\n", pct(rtt, (size_t)n, 50),
         pct(rtt, (size_t)n, 99), 2.0 * (double)n / (total_us / 1e6));
  free(rtt);
  close(cross_to_server[0]);
  close(cross_to_client[0]);
  close(cross_to_client[1]);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <scenario> <n> [conns] [secs]\n", argv[0]);
    return 2;
  }
  const char *sc = argv[1];
  long n = atol(argv[2]);
  if (n <= 0) {
    fprintf(stderr, "floor: n must be > 0\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(sc, "sleep_many"))
    sleep_many(n);
  else if (!strcmp(sc, "lateness"))
    lateness(sc, n, 0);
  else if (!strcmp(sc, "lateness_loaded"))
    lateness(sc, n, 1);
  else if (!strcmp(sc, "wait_for_io"))
    wait_for_io(n);
  else if (!strcmp(sc, "cancel_many"))
    cancel_many(n);
  else if (!strcmp(sc, "cross_loop"))
    cross_loop(n);
  else if (!strcmp(sc, "echo") || !strcmp(sc, "unix_echo") || !strcmp(sc, "echo_bulk")) {
    long conns = argc > 3 ? atol(argv[3]) : n;
    double secs = argc > 4 ? atof(argv[4]) : 2.0;
    if (conns <= 0 || secs <= 0) {
      fprintf(stderr, "floor: bad conns/secs\n");
      return 2;
    }
    echo(sc, conns, secs, !strcmp(sc, "unix_echo"),
         !strcmp(sc, "echo_bulk") ? BULK_MSG : ECHO_MSG);
  } else if (!strcmp(sc, "udp_echo")) {
    long conns = argc > 3 ? atol(argv[3]) : 1;
    double secs = argc > 4 ? atof(argv[4]) : 2.0;
    if (conns <= 0 || secs <= 0 || n > 65507) {
      fprintf(stderr, "floor: bad conns/secs/bytes\n");
      return 2;
    }
    udp_echo(n, conns, secs);
  } else if (!strcmp(sc, "spawn_gather") || !strcmp(sc, "wait_for_fast") ||
             !strcmp(sc, "wait_for_yield"))
    // These measure coroutine/task machinery; C on a bare ring has none.
    print_skipped(sc, n, "no_coroutines_in_plain_liburing");
  else {
    fprintf(stderr, "floor: unknown scenario %s\n", sc);
    return 2;
  }
  if (ring_up) io_uring_queue_exit(&ring);
  return 0;
}
