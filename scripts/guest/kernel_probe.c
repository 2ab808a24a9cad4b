/* What the running kernel offers ringloop, and where it behaves differently from a newer one:
 * the io_uring setup flags and opcodes ringloop uses, the order of timer CQEs reaped in one wait,
 * whether a pipe write and a signalfd read complete within their submit, and kernel TLS
 * (setsockopt(TCP_ULP, "tls"), then TLS 1.2 AES-GCM-128 keys to send and to receive, which
 * load the cipher's modules on demand). scripts/kernel-guest runs it in the guest before the
 * tests; it prints one line per fact ("kernel-probe: ...") and always exits 0: it informs, the
 * tests decide. */
#include <errno.h>
#include <liburing.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

static void report(const char* name, int error) {
  if (error == 0)
    printf("kernel-probe: %s yes\n", name);
  else
    printf("kernel-probe: %s no (%s)\n", name, strerror(error));
}

/* io_uring_queue_init_params returns -errno. */
static int try_setup(unsigned flags) {
  struct io_uring ring;
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  params.flags = flags;
  int result = io_uring_queue_init_params(8, &ring, &params);
  if (result == 0) io_uring_queue_exit(&ring);
  return -result;
}

static void probe_io_uring(void) {
  report("io_uring", try_setup(0));
  report("IORING_SETUP_SUBMIT_ALL", try_setup(IORING_SETUP_SUBMIT_ALL));
  report("IORING_SETUP_COOP_TASKRUN", try_setup(IORING_SETUP_COOP_TASKRUN));
  report("IORING_SETUP_TASKRUN_FLAG",
         try_setup(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG));
  report("IORING_SETUP_SINGLE_ISSUER", try_setup(IORING_SETUP_SINGLE_ISSUER));
  report("IORING_SETUP_DEFER_TASKRUN",
         try_setup(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN));

  /* The opcodes ringloop prepares (grep io_uring_prep_ in loop/ and coro/). */
  static const struct {
    int op;
    const char* name;
  } ops[] = {
      {IORING_OP_NOP, "NOP"},
      {IORING_OP_READ, "READ"},
      {IORING_OP_WRITE, "WRITE"},
      {IORING_OP_FSYNC, "FSYNC"},
      {IORING_OP_OPENAT, "OPENAT"},
      {IORING_OP_CLOSE, "CLOSE"},
      {IORING_OP_POLL_ADD, "POLL_ADD"},
      {IORING_OP_TIMEOUT, "TIMEOUT"},
      {IORING_OP_TIMEOUT_REMOVE, "TIMEOUT_REMOVE"},
      {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"},
      {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
      {IORING_OP_ACCEPT, "ACCEPT"},
      {IORING_OP_CONNECT, "CONNECT"},
      {IORING_OP_SEND, "SEND"},
      {IORING_OP_RECV, "RECV"},
      {IORING_OP_SHUTDOWN, "SHUTDOWN"},
      {IORING_OP_SOCKET, "SOCKET"},
      {IORING_OP_SEND_ZC, "SEND_ZC"},
  };
  struct io_uring_probe* probe = io_uring_get_probe();
  if (probe == NULL) {
    printf("kernel-probe: io_uring opcodes unknown (IORING_REGISTER_PROBE refused)\n");
    return;
  }
  printf("kernel-probe: io_uring opcodes up to %d (liburing's headers know %d)\n", probe->last_op,
         IORING_OP_LAST - 1);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; ++i)
    if (!io_uring_opcode_supported(probe, ops[i].op))
      printf("kernel-probe: IORING_OP_%s no\n", ops[i].name);
  io_uring_free_probe(probe);
}

static int setup_like_ringloop(struct io_uring* ring) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(8, ring, &params) == 0) return 0;
  memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_COOP_TASKRUN;
  return io_uring_queue_init_params(8, ring, &params);
}

/* Three timeouts (1 ms, then 2 ms twice) all due before the wait that reaps them: the order of
 * their CQEs is the order the loop sees them in. asyncio runs due timers by deadline, equal
 * deadlines in the order they were armed. */
static void probe_timer_order(unsigned flags, const char* ring_name) {
  struct io_uring ring;
  if (io_uring_queue_init(8, &ring, flags) != 0) return;
  struct __kernel_timespec due[3] = {{0, 1000000}, {0, 2000000}, {0, 2000000}};
  for (int i = 0; i < 3; ++i) {
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_timeout(sqe, &due[i], 0, 0);
    sqe->user_data = (__u64)(i + 1);
  }
  io_uring_submit(&ring);
  usleep(30000);
  io_uring_submit_and_wait(&ring, 3);
  char order[16] = "";
  struct io_uring_cqe* cqe;
  for (int i = 0; i < 3 && io_uring_peek_cqe(&ring, &cqe) == 0; ++i) {
    size_t used = strlen(order);
    snprintf(order + used, sizeof order - used, "%s%llu", i ? " " : "",
             (unsigned long long)cqe->user_data);
    io_uring_cqe_seen(&ring, cqe);
  }
  printf("kernel-probe: timeouts of 1, 2, 2 ms reaped in one wait (%s) come back as %s (%s)\n",
         ring_name, order, strcmp(order, "1 2 3") == 0 ? "armed order" : "NOT the armed order");
  io_uring_queue_exit(&ring);
}

/* Whether a read or write completes during its submit, or is handed to an io-wq worker thread
 * (a file without FMODE_NOWAIT, opened blocking) and needs another io_uring_enter to be reaped. */
static void report_inline(const char* what, int fd, int write, void* buffer, unsigned length) {
  struct io_uring ring;
  if (setup_like_ringloop(&ring) != 0) return;
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (write)
    io_uring_prep_write(sqe, fd, buffer, length, 0);
  else
    io_uring_prep_read(sqe, fd, buffer, length, 0);
  io_uring_submit(&ring);
  struct io_uring_cqe* cqe;
  int inline_completion = io_uring_peek_cqe(&ring, &cqe) == 0;
  io_uring_submit_and_wait(&ring, 1);
  printf("kernel-probe: %s completes within its submit: %s\n", what,
         inline_completion ? "yes" : "no (an io-wq worker does it)");
  io_uring_queue_exit(&ring);
}

static void probe_inline_completion(void) {
  int fds[2];
  char text[] = "abcd";
  if (pipe(fds) == 0) {
    report_inline("a pipe write", fds[1], 1, text, 4);
    close(fds[0]);
    close(fds[1]);
  }
  /* ringloop's signal handlers read a signalfd (coro/signal/signals.cpp). */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int fd = signalfd(-1, &set, SFD_CLOEXEC);
  struct signalfd_siginfo info;
  if (fd >= 0 && kill(getpid(), SIGUSR1) == 0) {
    report_inline("a signalfd read, a signal pending,", fd, 0, &info, sizeof info);
    close(fd);
  }
  sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* A connected loopback pair: the TLS ULP only attaches to an established TCP socket. */
static int connected_pair(int fds[2]) {
  struct sockaddr_in address;
  socklen_t length = sizeof address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0 || bind(listener, (struct sockaddr*)&address, sizeof address) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, (struct sockaddr*)&address, &length) != 0)
    return errno;
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (fds[0] < 0 || connect(fds[0], (struct sockaddr*)&address, sizeof address) != 0) return errno;
  fds[1] = accept(listener, NULL, NULL);
  close(listener);
  return fds[1] < 0 ? errno : 0;
}

static void probe_ktls(void) {
  int fds[2] = {-1, -1};
  int error = connected_pair(fds);
  if (error != 0) {
    report("loopback TCP", error);
    return;
  }
  error = setsockopt(fds[0], IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0 ? 0 : errno;
  report("setsockopt(TCP_ULP, \"tls\")", error);
  if (error == 0) {
    /* A made-up key: only whether the kernel accepts and sets up the cipher is probed. */
    struct tls12_crypto_info_aes_gcm_128 info;
    memset(&info, 0, sizeof info);
    info.info.version = TLS_1_2_VERSION;
    info.info.cipher_type = TLS_CIPHER_AES_GCM_128;
    error = setsockopt(fds[0], SOL_TLS, TLS_TX, &info, sizeof info) == 0 ? 0 : errno;
    report("setsockopt(SOL_TLS, TLS_TX, AES-GCM-128)", error);
    if (error == 0) {
      const char text[] = "hello";
      char buffer[64];
      ssize_t sent = send(fds[0], text, sizeof text, 0);
      ssize_t received = recv(fds[1], buffer, sizeof buffer, MSG_PEEK);
      /* A TLS record: 5-byte header, 8-byte explicit nonce, the text, a 16-byte tag. */
      printf("kernel-probe: kTLS record sent %zd bytes, the peer sees %zd (expected %zu)\n", sent,
             received, 5 + 8 + sizeof text + 16);
      /* The peer decrypts the record in the kernel with the same key. */
      int attached = setsockopt(fds[1], IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0;
      error = attached && setsockopt(fds[1], SOL_TLS, TLS_RX, &info, sizeof info) == 0 ? 0 : errno;
      report("setsockopt(SOL_TLS, TLS_RX, AES-GCM-128)", error);
      if (error == 0) {
        memset(buffer, 0, sizeof buffer);
        received = recv(fds[1], buffer, sizeof buffer, 0);
        printf("kernel-probe: kTLS receive decrypted %zd bytes: %s\n", received,
               received == (ssize_t)sizeof text && strcmp(buffer, text) == 0 ? "the text sent"
                                                                             : "NOT the text sent");
      }
    }
  }
  close(fds[0]);
  close(fds[1]);
}

int main(void) {
  struct utsname name;
  if (uname(&name) == 0) printf("kernel-probe: kernel %s\n", name.release);
  probe_io_uring();
  probe_timer_order(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN");
  probe_timer_order(IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN");
  probe_timer_order(0, "no flags");
  probe_inline_completion();
  probe_ktls();
  return 0;
}
