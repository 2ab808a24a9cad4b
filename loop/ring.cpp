#include <ringloop/loop/ring.hpp>

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include <ringloop/loop/assert.hpp>

namespace ringloop {
namespace {

thread_local unsigned busy_submits_to_inject = 0;

// Valgrind runs one thread at a time and does not treat io_uring_enter as a call that may
// block: a loop asleep in it keeps every other thread from running, so a worker whose result
// wakes the ring (to_thread, getaddrinfo) never runs and both wait forever. Under valgrind the
// wait is cut into 10 ms slices with a sched_yield (where valgrind hands over) between them;
// natively this is false and the wait is one enter.
bool waits_in_slices() noexcept {
#ifdef RUNNING_ON_VALGRIND
  static const bool under_valgrind = RUNNING_ON_VALGRIND != 0;
  return under_valgrind;
#else
  return false;
#endif
}
thread_local int setup_errors_to_inject[Ring::kMaxInjectedSetupErrors] = {};
thread_local unsigned setup_errors_injected = 0;  // how many of them are still to come
thread_local unsigned setup_error_next = 0;

std::string read_io_uring_disabled() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  std::string value;
  if (in >> value) return value;
  return {};
}

// Names the likely cause of a failed io_uring_setup so the user knows what to change.
std::string setup_failure_hint(int error) {
  switch (error) {
    case ENOSYS:
      return "the kernel has no io_uring (ringloop needs Linux 5.6 or newer, built with "
             "CONFIG_IO_URING)";
    case EPERM: {
      std::string disabled = read_io_uring_disabled();
      if (!disabled.empty() && disabled != "0")
        return "io_uring is disabled by sysctl kernel.io_uring_disabled=" + disabled;
      return "io_uring is refused to this process (a seccomp filter, as in many container "
             "runtimes, or sysctl kernel.io_uring_disabled)";
    }
    case ENOMEM:
      return "not enough locked memory for the rings (raise RLIMIT_MEMLOCK, or ask for a "
             "smaller ring)";
    case EINVAL:
      return "the kernel rejected the ring parameters (too old a kernel, or sizes out of range)";
    default:
      return "see io_uring_setup(2)";
  }
}

[[noreturn]] void throw_setup_error(int error, const RingOptions& options) {
  throw std::system_error(error, std::system_category(),
                          "io_uring_setup failed (" + std::to_string(options.sq_entries) +
                              " SQ / " + std::to_string(options.cq_entries) + " CQ entries): " +
                              std::strerror(error) + "; " + setup_failure_hint(error));
}

int try_setup(io_uring& ring, const RingOptions& options, unsigned flags) {
  if (setup_errors_injected > 0) {
    --setup_errors_injected;
    return -setup_errors_to_inject[setup_error_next++];
  }
  io_uring_params params{};
  params.flags = flags | IORING_SETUP_CQSIZE;
  params.cq_entries = options.cq_entries;
  return io_uring_queue_init_params(options.sq_entries, &ring, &params);
}

}  // namespace

Ring::Ring(const RingOptions& options) {
  if (options.cq_entries < options.sq_entries)
    throw std::invalid_argument("RingOptions: cq_entries must be at least sq_entries");
  // Newest flags first; each fallback is for an older kernel that answers EINVAL.
  // SUBMIT_ALL: an SQE that fails at submit must not hold back the rest of its batch.
  // TASKRUN_FLAG: the kernel says when deferred completions wait, so the loop enters only then.
  constexpr unsigned kCoop = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  constexpr unsigned kDefer =
      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  const unsigned wanted[] = {
      options.defer_taskrun ? kDefer | IORING_SETUP_TASKRUN_FLAG
                            : kCoop | IORING_SETUP_TASKRUN_FLAG,
      options.defer_taskrun ? kDefer : kCoop,
      kCoop,
      0u,
  };
  int result = -EINVAL;
  for (unsigned flags : wanted) {
    result = try_setup(ring_, options, flags);
    if (result != -EINVAL) break;
  }
  if (result < 0) throw_setup_error(-result, options);
  RINGLOOP_ASSERT((ring_.flags & IORING_SETUP_CQE32) == 0, "reap() indexes 16-byte CQEs");
  if ((ring_.features & IORING_FEAT_NODROP) == 0) {
    io_uring_queue_exit(&ring_);
    throw std::system_error(ENOTSUP, std::system_category(),
                            "io_uring lacks IORING_FEAT_NODROP (Linux 5.5+): completions could "
                            "be lost under load; ringloop needs a newer kernel");
  }
  try {
    check_floor();
  } catch (...) {
    io_uring_queue_exit(&ring_);
    throw;
  }
  // Optional: an older kernel (before 5.18) or a full per-thread table (16) answers an error,
  // and io_uring_enter then looks the fd up as before.
  if (options.register_ring_fd) ring_fd_registered_ = io_uring_register_ring_fd(&ring_) == 1;
}

// The floor: IORING_REGISTER_PROBE (5.6) and the opcodes the loop itself cannot do without
// (timers, cancels, link timeouts, the eventfd read that wakes it from other threads). Every
// newer opcode is asked for by the operation that needs it.
void Ring::check_floor() {
  probe_ = Probe(ring_, ring_.features);
  if (!probe_.available())
    throw std::system_error(ENOSYS, std::system_category(),
                            "io_uring has no IORING_REGISTER_PROBE: ringloop needs Linux 5.6; "
                            "this kernel is " +
                                kernel_version());
  for (unsigned opcode : {IORING_OP_TIMEOUT, IORING_OP_TIMEOUT_REMOVE, IORING_OP_ASYNC_CANCEL,
                          IORING_OP_LINK_TIMEOUT, IORING_OP_READ})
    probe_.require(opcode, "ringloop's event loop");
}

Ring::~Ring() { io_uring_queue_exit(&ring_); }

void Ring::inject_busy_submits_for_tests(unsigned count) noexcept {
  busy_submits_to_inject = count;
}

void Ring::inject_setup_errors_for_tests(std::initializer_list<int> errors) noexcept {
  RINGLOOP_ASSERT(errors.size() <= kMaxInjectedSetupErrors, "too many setup errors to inject");
  setup_error_next = 0;
  setup_errors_injected = 0;
  for (int error : errors) setup_errors_to_inject[setup_errors_injected++] = error;
}

int Ring::enter_until_accepted(unsigned wait_nr) {
  if (wait_nr == 0 && busy_submits_to_inject > 0) {
    --busy_submits_to_inject;
    return 0;  // as EBUSY below
  }
  for (;;) {
    ++enter_calls_;
    int result = 0;
    if (wait_nr == 0) {
      result = defers_taskrun() ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
    } else if (waits_in_slices()) {
      __kernel_timespec slice{.tv_sec = 0, .tv_nsec = 10'000'000};
      io_uring_cqe* cqe = nullptr;
      result = io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &slice, nullptr);
      if (result == -ETIME) {  // a slice ended: let the others run; the caller waits again
        ::sched_yield();
        result = 0;
      }
    } else {
      result = io_uring_submit_and_wait(&ring_, wait_nr);
    }
    // A signal interrupted the wait (stdexec #1111): nothing was lost, enter again.
    if (result == -EINTR) continue;
    // EBUSY / EAGAIN: the kernel wants its completions reaped first; the caller reaps next.
    if (result == -EBUSY || result == -EAGAIN) return 0;
    if (result < 0)
      throw std::system_error(-result, std::system_category(), "io_uring_enter failed");
    if (result > 0) ++submitting_enter_calls_;
    return result;
  }
}

unsigned Ring::submit() { return static_cast<unsigned>(enter_until_accepted(0)); }

void Ring::submit_and_wait_one() { enter_until_accepted(1); }

void Ring::flush_overflow() {
  ++enter_calls_;
  int result = io_uring_get_events(&ring_);
  if (result < 0 && result != -EINTR && result != -EBUSY && result != -EAGAIN)
    throw std::system_error(-result, std::system_category(), "io_uring_enter(GETEVENTS) failed");
}

}  // namespace ringloop
