// Stream: a connected byte stream (a TCP or Unix socket, or a pipe), asyncio's StreamReader and
// StreamWriter in one object. Reads come from a receive buffer (or straight into the caller's);
// write() queues and returns at once, and a flush task sends the queue, one SQE at a time.
// The state lives on the heap, shared by the Stream and its flush task: moving a Stream moves a
// pointer, and the bytes the kernel is reading stay put until the send's CQE has come.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <any>
#include <cerrno>
#include <climits>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/io/send_zc.hpp>
#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/coro/sync/event.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {

// read_exactly or read_until met the end of the stream first; partial holds what had come.
class IncompleteReadError : public std::runtime_error {
 public:
  IncompleteReadError(std::string partial_bytes, std::size_t expected_bytes)
      : std::runtime_error("the stream ended after " + std::to_string(partial_bytes.size()) +
                           " bytes, before " +
                           (expected_bytes == 0 ? std::string("the separator")
                                                : std::to_string(expected_bytes) + " bytes")),
        partial(std::move(partial_bytes)),
        expected(expected_bytes) {}
  std::string partial;
  std::size_t expected;  // 0 for read_until
};

// read_until found no separator within its limit (asyncio's LimitOverrunError). consumed is
// asyncio's: how far the search went (or where the separator starts, when it was found past the
// limit). The bytes stay in the buffer.
class LimitOverrunError : public std::runtime_error {
 public:
  explicit LimitOverrunError(const std::string& message, std::size_t consumed_bytes = 0)
      : std::runtime_error(message), consumed(consumed_bytes) {}
  std::size_t consumed;
};

// What a Stream's descriptor is. A socket moves bytes with recv/send (send with MSG_NOSIGNAL: a
// peer that closed is EPIPE, not SIGPIPE); a pipe (a subprocess's stdin/stdout) with read/write,
// since recv/send on a pipe fail with ENOTSOCK.
enum class StreamKind : std::uint8_t { socket, pipe };

namespace detail {

class TlsConnection;  // tls_stream.cpp: fills the Stream's spare chunk (StreamState::spare)

// One read into the caller's memory: recv on a socket, read on a pipe.
struct StreamReadPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "read";
  int fd;
  void* data;
  unsigned size;
  bool pipe;
  void operator()(io_uring_sqe& sqe) const noexcept {
    if (pipe)
      io_uring_prep_read(&sqe, fd, data, size, kCurrentPosition);
    else
      io_uring_prep_recv(&sqe, fd, data, size, 0);
  }
};

// One flush of queued chunks: send or write for one chunk, sendmsg or writev for several (the
// iovecs and the msghdr live in the flush task's frame until the CQE).
struct StreamFlushPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "send";
  int fd;
  const iovec* iov;
  unsigned count;
  const msghdr* message;
  bool pipe;
  void operator()(io_uring_sqe& sqe) const noexcept {
    if (count == 1 && pipe)
      io_uring_prep_write(&sqe, fd, iov[0].iov_base, transfer_length(iov[0].iov_len),
                          kCurrentPosition);
    else if (count == 1)
      io_uring_prep_send(&sqe, fd, iov[0].iov_base, transfer_length(iov[0].iov_len), MSG_NOSIGNAL);
    else if (pipe)
      io_uring_prep_writev(&sqe, fd, iov, count, kCurrentPosition);
    else
      io_uring_prep_sendmsg(&sqe, fd, message, MSG_NOSIGNAL);
  }
};

// What an awaiter of the write side waits for.
enum class StreamGoal : std::uint8_t { sent, drained, eof_sent, closed };

// A chunk sent with SEND_ZC is pinned until the kernel's notification: the network stack may
// read its pages after the send's result (TCP until the peer acknowledged them). One that leaves
// the Stream's queue before that is kept here; the address of its bytes names it (a chunk that
// large is never in the string's own storage, so moving the string moves no byte). Shared by
// the Stream and its in-flight sends, so that the last notification frees only strings, never
// the Stream's state (whose socket closes through the ring, not from the reaping loop).
struct ZeroCopyPins {
  struct Pin {
    const char* bytes;
    unsigned owed;     // SEND_ZC notifications still to come
    std::string kept;  // the chunk, once it left the queue
  };
  std::vector<Pin> list;

  void pin(const std::string& chunk) {
    for (Pin& p : list)
      if (p.bytes == chunk.data()) {
        ++p.owed;
        return;
      }
    list.push_back({chunk.data(), 1, {}});
  }
  void unpin(const char* bytes) noexcept {
    for (std::size_t i = 0; i < list.size(); ++i)
      if (list[i].bytes == bytes && --list[i].owed == 0) {
        list[i] = std::move(list.back());
        list.pop_back();  // frees a kept chunk
        return;
      }
  }
  void keep_if_pinned(std::string& chunk) noexcept {
    for (Pin& p : list)
      if (p.bytes == chunk.data()) {
        p.kept = std::move(chunk);
        RINGLOOP_ASSERT(p.kept.data() == p.bytes, "a pinned chunk's bytes moved");
        return;
      }
  }
};

// The state a Stream shares with its flush task and with the coroutines awaiting it.
struct StreamState {
  // asyncio's defaults (FlowControlMixin): pause above 64 KiB, resume at or below a quarter.
  static constexpr std::size_t kDefaultHighWater = 64 * 1024;
  // Small writes are appended to the last queued chunk up to this size: one iovec for many
  // writes, without copying big ones.
  static constexpr std::size_t kCoalesceBytes = 16 * 1024;
  // The iovecs of one sendmsg/writev: the kernel refuses more than IOV_MAX (1024).
  static constexpr std::size_t kMaxChunksPerSend = IOV_MAX;
  static constexpr std::size_t kReadChunkBytes = 16 * 1024;
  // What Stream::kZeroCopyThreshold suggests: below it the notification CQE costs more than the
  // copy saves (bench/send_zc_bench.cpp: SEND_ZC of 16 KiB moved 0.13x the MB/s of send).
  static constexpr std::size_t kZeroCopyBytes = 64 * 1024;

  StreamState(Socket s, StreamKind k) noexcept : socket(std::move(s)), kind(k) {}

  Socket socket;
  StreamKind kind;

  // Reading: buffer[start, size) is received and not read yet; eof once a read returned 0.
  std::string buffer;
  std::size_t start = 0;
  bool eof = false;
  int reads_in_flight = 0;  // abort() wakes them with a shutdown
  // Whether large chunks go out with SEND_ZC: unknown until the first one, then whether the
  // socket is TCP (the kernel refuses it elsewhere: EOPNOTSUPP, which also turns it off).
  enum class ZeroCopy : std::uint8_t { unknown, yes, no } zero_copy = ZeroCopy::unknown;
  // A chunk at least this big goes out alone with SEND_ZC; 0: never (the default).
  std::size_t zero_copy_threshold = 0;

  // Writing: chunks[0, in_flight) are what the flush task's one SQE is sending (the kernel reads
  // them: they are neither changed nor freed before its CQE); front_offset bytes of the first
  // went out already.
  std::deque<std::string> chunks;
  std::size_t front_offset = 0;
  std::size_t in_flight = 0;
  std::size_t queued_bytes = 0;    // in chunks, not sent yet (get_write_buffer_size)
  std::uint64_t total_queued = 0;  // counted since the start: a write awaits total_sent >= its end
  std::uint64_t total_sent = 0;
  // Chunks sent with SEND_ZC whose notification is still to come (made at the first one).
  std::shared_ptr<ZeroCopyPins> pins;
  // With keep_spare, the storage of the last chunk sent whole (up to kSpareBytes), for the owner
  // of the Stream to fill next (TlsStream's records). A writer that hands over a new 16 KiB
  // string per reply otherwise allocates and frees 16 KiB each time, and glibc gives the top of
  // its heap back to the kernel (brk) and faults it in again: a sixth of a TLS echo server's CPU
  // (37 -> 31 us per round trip with glibc's trim turned off). Off for a plain Stream: an idle
  // connection keeps no memory it is not using.
  static constexpr std::size_t kSpareBytes = 64 * 1024;
  std::string spare;
  bool keep_spare = false;
  std::size_t high_water = kDefaultHighWater;
  std::size_t low_water = kDefaultHighWater / 4;
  bool paused = false;    // above high_water, until at or below low_water (asyncio's hysteresis)
  bool flushing = false;  // the flush task runs
  bool eof_requested = false;
  bool eof_sent = false;
  bool close_requested = false;
  bool closed = false;
  // The first error of the write side (a failed send, or abort()); sticky. reported: some
  // awaiter or write() has thrown it, so close() need not throw it again.
  std::exception_ptr error;
  bool error_reported = false;
  // Set and cleared at once by the flush task after each step: wakes every waiter to look again.
  Event progress;

  std::size_t buffered() const noexcept { return buffer.size() - start; }
  std::string_view view() const noexcept { return {buffer.data() + start, buffered()}; }

  std::string take(std::size_t n) {
    std::string out(buffer, start, n);
    drop(n);
    return out;
  }
  void drop(std::size_t n) noexcept {
    start += n;
    if (start == buffer.size()) {
      buffer.clear();
      start = 0;
    }
  }

  auto receive(void* data, std::size_t size) {
    if (!socket) throw std::logic_error("Stream: read on a closed stream");
    return OpAwaiter<StreamReadPrep>(
        {socket.fd(), data, transfer_length(size), kind == StreamKind::pipe});
  }

  // One read appended to the buffer; false at end of stream.
  Coro<bool> fill() {
    if (eof) co_return false;
    if (start > 0) {
      buffer.erase(0, start);
      start = 0;
    }
    std::size_t old_size = buffer.size();
    buffer.resize(old_size + kReadChunkBytes);
    std::size_t received = 0;
    ++reads_in_flight;
    try {
      received = co_await receive(buffer.data() + old_size, kReadChunkBytes);
    } catch (...) {
      --reads_in_flight;
      buffer.resize(old_size);
      throw;
    }
    --reads_in_flight;
    buffer.resize(old_size + received);
    eof = received == 0;
    co_return received != 0;
  }

  // Whether this stream's large chunks go with SEND_ZC: a TCP socket, on a kernel with SEND_ZC
  // (asked once).
  bool zero_copy_applies() noexcept {
    if (zero_copy == ZeroCopy::unknown) {
      int protocol = 0;
      socklen_t length = sizeof protocol;
      bool tcp = kind == StreamKind::socket &&
                 ::getsockopt(socket.fd(), SOL_SOCKET, SO_PROTOCOL, &protocol, &length) == 0 &&
                 protocol == IPPROTO_TCP;
      Loop* loop = Loop::current();
      zero_copy = tcp && loop != nullptr && send_zc_supported(*loop) ? ZeroCopy::yes : ZeroCopy::no;
    }
    return zero_copy == ZeroCopy::yes;
  }
  // Whether the first chunk goes out alone with SEND_ZC.
  bool sends_front_zero_copy() noexcept {
    return zero_copy_threshold != 0 &&
           chunks.front().size() - front_offset >= zero_copy_threshold && zero_copy_applies();
  }
  // How many chunks one copying send takes: up to IOV_MAX, and not a large chunk further on,
  // which waits for its own SEND_ZC instead of riding along as a copy.
  std::size_t copied_send_chunks() noexcept {
    std::size_t count = std::min(chunks.size(), kMaxChunksPerSend);
    if (zero_copy_threshold == 0) return count;
    for (std::size_t i = 1; i < count; ++i)
      if (chunks[i].size() >= zero_copy_threshold && zero_copy_applies()) return i;
    return count;
  }

  // Appends to the last queued chunk when both are small (one send instead of two), else
  // queues data as a chunk of its own: an rvalue std::string is moved, not copied.
  template <class Data>
  void enqueue(Data&& data) {
    std::size_t size = std::string_view(data).size();
    bool append = chunks.size() > in_flight && chunks.back().size() + size <= kCoalesceBytes;
    if (append)
      chunks.back().append(std::string_view(data));
    else
      chunks.emplace_back(std::forward<Data>(data));
    queued_bytes += size;
    total_queued += size;
    if (queued_bytes > high_water) paused = true;
  }

  // The spare storage, empty (no storage at all when there is none); the spare is left empty.
  std::string take_spare() noexcept {
    std::string taken = std::move(spare);
    spare.clear();
    return taken;
  }

  void consume(std::size_t sent) noexcept {
    total_sent += sent;
    queued_bytes -= sent;
    while (sent > 0) {
      std::size_t left = chunks.front().size() - front_offset;
      if (sent < left) {
        front_offset += sent;
        break;
      }
      sent -= left;
      std::string& chunk = chunks.front();
      if (pins) pins->keep_if_pinned(chunk);  // a pinned chunk is moved out: no spare then
      if (keep_spare && chunk.capacity() > spare.capacity() && chunk.capacity() <= kSpareBytes) {
        chunk.clear();
        spare.swap(chunk);
      }
      chunks.pop_front();
      front_offset = 0;
    }
    if (paused && queued_bytes <= low_water) paused = false;
  }

  // Drops what was not sent: the connection failed or was aborted. Only when no SQE is in
  // flight (the kernel may be reading the first chunks).
  void discard_queue() noexcept {
    RINGLOOP_ASSERT(in_flight == 0, "a Stream's queue was dropped while the kernel reads it");
    if (pins)
      for (std::string& chunk : chunks) pins->keep_if_pinned(chunk);
    chunks.clear();
    front_offset = 0;
    queued_bytes = 0;
    paused = false;
  }

  void fail(std::exception_ptr e) noexcept {
    if (!error) error = std::move(e);
  }

  void notify() {
    progress.set();
    progress.clear();
  }

  [[noreturn]] void rethrow_error() {
    error_reported = true;
    std::rethrow_exception(error);
  }

  bool reached(StreamGoal goal, std::uint64_t target) const noexcept {
    switch (goal) {
      case StreamGoal::sent:
        return total_sent >= target;
      case StreamGoal::drained:
        return !paused;
      case StreamGoal::eof_sent:
        return eof_sent;
      case StreamGoal::closed:
        return closed && !flushing;
    }
    return true;
  }

  // Reached, and nothing to throw: an awaiter needs no frame.
  bool settled(StreamGoal goal, std::uint64_t target) const noexcept {
    if (goal == StreamGoal::closed) return reached(goal, target) && (!error || error_reported);
    return !error && reached(goal, target);
  }
};

// Waits until the goal is reached; throws the write side's error (for closed: only one that no
// write or drain has thrown yet, so a failure is reported once and never lost).
inline Coro<> wait_stream(std::shared_ptr<StreamState> owner, StreamGoal goal,
                          std::uint64_t target) {
  StreamState& s = *owner;
  for (;;) {
    if (goal != StreamGoal::closed && s.error) s.rethrow_error();
    if (s.reached(goal, target)) break;
    co_await s.progress.wait();
  }
  if (s.error && !s.error_reported) s.rethrow_error();
}

// The flush task: sends the queue, then the end of stream, then closes, as they are asked for;
// ends when there is nothing left to do. One SQE in flight at a time, so bytes go out in order.
// A failure is kept in s.error for the next write or drain (asyncio's drain raises it). A cancel
// (abort(), the Stream destroyed, run() ending) leaves at once, after the SQE's last CQE.
// What the flush task does on every way out, the cancel's too. At namespace scope, not local to
// flush_stream: g++ 12 crashes (an internal compiler error in its mangler) on a class local to
// an inline coroutine when a precompiled header holding it is used with full debug info (-g).
struct FlushLeave {
  StreamState& s;
  ~FlushLeave() {
    s.in_flight = 0;
    if (s.error) s.discard_queue();
    s.flushing = false;
    try {
      s.notify();
    } catch (...) {  // the loop is gone: nobody waits
    }
  }
};

// One SEND_ZC of a Stream's large chunk. The flush task resumes at the send's result and goes
// on sending; the chunk stays pinned (StreamState::pin) until the kernel's notification, which
// for TCP comes only once the peer acknowledged the bytes: waiting for it before the next send
// would pace the stream by round trips (a peer with small buffers then read 2 MiB in tens of
// seconds). The operation record lives on the heap, past the awaiter, until that last CQE, and
// shares the pins, so the pinned chunk outlives every reader of it.
class ZeroCopyChunkSend : CancelPoint {
 public:
  ZeroCopyChunkSend(StreamState& state, const std::string& chunk, std::size_t offset) noexcept
      : CancelPoint(&on_cancel), state_(state), chunk_(chunk), offset_(offset) {}
  ZeroCopyChunkSend(const ZeroCopyChunkSend&) = delete;
  ZeroCopyChunkSend& operator=(const ZeroCopyChunkSend&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    task_ = task_of(awaiting);
    if (task_ != nullptr && task_->must_cancel) return false;
    Loop& loop = loop_for(task_, "Stream write");
    if (!state_.pins) state_.pins = std::make_shared<ZeroCopyPins>();
    state_.pins->pin(chunk_);
    record_ = new Record(loop, *this, awaiting);
    loop.submit(*record_);
    loop.count_zero_copy_send();
    if (task_ != nullptr) task_->suspend_on(*this);
    return true;
  }
  // Bytes sent (maybe fewer than asked: the socket's buffer was full).
  std::size_t await_resume() {
    if (task_ != nullptr) task_->resumed();
    if (cancel_taken_ || result_ == -ECANCELED) throw cancelled_error(task_);
    if (result_ < 0) throw std::system_error(-result_, std::system_category(), "send_zc");
    return static_cast<std::size_t>(result_);
  }

 private:
  struct Record final : Operation {
    Record(Loop& loop, ZeroCopyChunkSend& awaiter, std::coroutine_handle<> awaiting) noexcept
        : Operation(&prepare, &complete, /*is_timeout_op=*/false),
          loop_(loop),
          pins_(awaiter.state_.pins),
          fd_(awaiter.state_.socket.fd()),
          bytes_(awaiter.chunk_.data()),
          offset_(awaiter.offset_),
          size_(transfer_length(awaiter.chunk_.size() - awaiter.offset_)),
          awaiter_(&awaiter),
          awaiting_(awaiting) {}

    static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
      auto& self = static_cast<Record&>(operation);
      io_uring_prep_send_zc(&sqe, self.fd_, self.bytes_ + self.offset_, self.size_, MSG_NOSIGNAL,
                            0);
    }
    // The result (F_MORE when a notification follows) resumes the flush task; the last CQE
    // (the notification, or a result without one) unpins the chunk and frees the record.
    static void complete(Operation& operation, std::int32_t result, std::uint32_t flags) noexcept {
      auto& self = static_cast<Record&>(operation);
      if ((flags & IORING_CQE_F_NOTIF) == 0 && self.awaiter_ != nullptr) {
        self.awaiter_->result_ = result;
        self.awaiter_->record_ = nullptr;
        self.awaiter_ = nullptr;
        self.loop_.schedule(self.awaiting_);
      }
      if ((flags & IORING_CQE_F_MORE) == 0) {
        self.pins_->unpin(self.bytes_);
        delete &self;
      }
    }

    Loop& loop_;
    std::shared_ptr<ZeroCopyPins> pins_;
    int fd_;
    const char* bytes_;
    std::size_t offset_;
    unsigned size_;
    ZeroCopyChunkSend* awaiter_;  // until the result
    std::coroutine_handle<> awaiting_;
  };

  static bool on_cancel(CancelPoint& point) noexcept {
    auto& self = static_cast<ZeroCopyChunkSend&>(point);
    if (self.record_ == nullptr) return false;  // the result is in: the resume is on its way
    self.cancel_taken_ = true;
    self.record_->loop_.cancel(*self.record_);
    return true;
  }

  StreamState& state_;
  const std::string& chunk_;
  std::size_t offset_;
  Record* record_ = nullptr;  // until the result
  TaskCore* task_ = nullptr;
  bool cancel_taken_ = false;
  std::int32_t result_ = -ECANCELED;
};

inline Coro<> flush_stream(std::shared_ptr<StreamState> owner) {
  StreamState& s = *owner;
  FlushLeave leave{s};
  std::vector<iovec> iov;
  msghdr message{};
  for (;;) {
    try {
      if (!s.chunks.empty() && !s.error && s.sends_front_zero_copy()) {
        // A large chunk alone, from its own pages, which stay pinned after the send's result
        // until the kernel lets go of them (ZeroCopyChunkSend).
        s.in_flight = 1;
        std::size_t sent = 0;
        bool refused = false;
        try {
          sent = co_await ZeroCopyChunkSend(s, s.chunks.front(), s.front_offset);
        } catch (const std::system_error& error) {
          if (error.code().value() != EOPNOTSUPP) throw;
          refused = true;  // a socket that takes no zero copy: the next turn sends a copy
        }
        s.in_flight = 0;
        if (refused) {
          s.zero_copy = StreamState::ZeroCopy::no;
          continue;
        }
        if (sent == 0) throw std::runtime_error("send: the kernel accepted no byte");
        s.consume(sent);
      } else if (!s.chunks.empty() && !s.error) {
        s.in_flight = s.copied_send_chunks();
        iov.resize(s.in_flight);
        for (std::size_t i = 0; i < s.in_flight; ++i) {
          std::string& chunk = s.chunks[i];
          std::size_t skip = i == 0 ? s.front_offset : 0;
          iov[i] = {chunk.data() + skip, chunk.size() - skip};
        }
        message.msg_iov = iov.data();
        message.msg_iovlen = iov.size();
        std::size_t sent = co_await OpAwaiter<StreamFlushPrep>(
            {s.socket.fd(), iov.data(), static_cast<unsigned>(iov.size()), &message,
             s.kind == StreamKind::pipe});
        s.in_flight = 0;
        if (sent == 0) throw std::runtime_error("send: the kernel accepted no byte");
        s.consume(sent);
      } else if (s.eof_requested && !s.eof_sent && !s.error) {
        s.eof_sent = true;
        // A pipe has no half-close: its end is closing it (asyncio's write pipe transport).
        if (s.kind == StreamKind::pipe) {
          s.closed = true;
          co_await s.socket.close();
        } else {
          co_await s.socket.shutdown(SHUT_WR);
        }
      } else if (s.close_requested && !s.closed) {
        s.closed = true;
        co_await s.socket.close();
      } else {
        break;
      }
    } catch (const std::exception&) {  // a CancelledError is no std::exception: it leaves
      s.in_flight = 0;
      s.fail(std::current_exception());
      s.discard_queue();
    }
    s.notify();
  }
}

}  // namespace detail

// A connected byte stream: asyncio's StreamReader and StreamWriter in one object.
//
// Writing. write(data) copies data into the write buffer and returns at once, as asyncio's
// StreamWriter.write; a flush task owned by the Stream sends the buffer in the background (one
// send, sendmsg or writev SQE at a time, many chunks in one). What write returns may be awaited
// or ignored: `co_await stream.write(data)` waits until data has been handed to the kernel (what
// ringloop's write always meant; it raises the connection's error), while `stream.write(data);
// co_await stream.drain();` is asyncio's flow control, which waits only while the buffer is
// above its high-water mark. A send that fails (a peer reset) is kept and raised by the next
// write, drain or awaited write, or by close() if none came: never lost.
//
// Deadlines. wait_for(stream.write(...), d) and wait_for(stream.drain(), d) raise TimeoutError
// when a peer stops reading; the Stream then stays usable and its queue intact (the bytes go out
// in order if the peer reads again). To give up on the peer, abort(): close() would flush first.
//
// Lifetime. Destroying a Stream aborts it: bytes still queued are dropped, the flush task is
// cancelled (its frame, which owns the queue, ends at its SQE's CQE), the descriptor closed. Await
// drain(), close() or the write before letting a Stream go. The Stream must outlive the
// coroutines reading from it; one reader at a time.
class Stream {
 public:
  static constexpr std::size_t kReadChunkBytes = detail::StreamState::kReadChunkBytes;
  static constexpr std::size_t kDefaultLineLimit = 64 * 1024;

  // What write, writelines, write_eof and close return: the action has started already;
  // co_await it to wait for its end (and get the connection's error, if any). Ignoring it is
  // fine: asyncio's write, write_eof and close are not awaited either.
  class Pending {
   public:
    Pending(std::shared_ptr<detail::StreamState> state, detail::StreamGoal goal,
            std::uint64_t target) noexcept
        : state_(std::move(state)), goal_(goal), target_(target) {}

    bool await_ready() {
      if (state_->settled(goal_, target_)) return true;
      wait_ = detail::wait_stream(state_, goal_, target_);
      awaiter_.emplace(wait_.operator co_await());
      return awaiter_->await_ready();
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> awaiting) {
      return awaiter_->await_suspend(awaiting);
    }
    void await_resume() {
      if (awaiter_) awaiter_->await_resume();
    }

   private:
    std::shared_ptr<detail::StreamState> state_;
    detail::StreamGoal goal_;
    std::uint64_t target_;
    Coro<> wait_;
    std::optional<Coro<>::Awaiter> awaiter_;
  };

  Stream() = default;
  explicit Stream(Socket socket, StreamKind kind = StreamKind::socket)
      : state_(std::make_shared<detail::StreamState>(std::move(socket), kind)) {}
  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&& other) noexcept {
    if (this != &other) {
      abort();
      state_ = std::move(other.state_);
      flush_task_ = std::move(other.flush_task_);
    }
    return *this;
  }
  ~Stream() { abort(); }

  // The descriptor (for a pipe too: Socket is only its owner here). Empty once closed.
  Socket& socket() { return state().socket; }
  // Whether there is a descriptor: false for a default-constructed or moved-from Stream, and
  // once closed.
  bool has_descriptor() const noexcept { return state_ && state_->socket.valid(); }
  StreamKind kind() const { return state().kind; }

  // ---------------------------------------------------------------------------------- reading

  // asyncio's read(n): up to n bytes (what is buffered, else what one read brings; empty at the
  // end of the stream); with n < 0 (the default, as asyncio's -1), everything until the end.
  template <std::integral N = int>
  Coro<std::string> read(N n = -1) {
    if constexpr (std::is_signed_v<N>) {
      if (n < 0) return read_to_eof(state_ptr());
    }
    return read_some(state_ptr(), static_cast<std::size_t>(n));
  }

  // Up to buffer.size() bytes into the caller's memory: what is buffered, else one read
  // straight into it. 0 at the end of the stream (or for an empty buffer).
  Coro<std::size_t> read_into(std::span<std::byte> buffer) {
    return read_into_buffer(state_ptr(), buffer);
  }

  // Exactly n bytes; IncompleteReadError (holding what came) when the stream ends first.
  Coro<std::string> read_exactly(std::size_t n) { return read_exactly_string(state_ptr(), n); }

  // Fills all of buffer; IncompleteReadError (holding what came) when the stream ends first.
  Coro<> read_exactly_into(std::span<std::byte> buffer) {
    return read_exactly_buffer(state_ptr(), buffer);
  }

  // asyncio's readline(): a line with its "\n"; at the end of the stream the partial line
  // without one (empty at the end), never IncompleteReadError. A line longer than limit raises
  // std::invalid_argument (asyncio's ValueError) and is dropped from the buffer (up to and
  // including its "\n" when it has come, else all that is buffered).
  Coro<std::string> readline(std::size_t limit = kDefaultLineLimit) {
    return read_line(state_ptr(), limit);
  }

  // asyncio's readuntil(): up to and including separator ("\n": a line). IncompleteReadError
  // when the stream ends first (it holds the rest, which leaves the buffer); LimitOverrunError
  // when no separator starts within limit bytes (the bytes stay buffered).
  Coro<std::string> read_until(std::string_view separator = "\n",
                               std::size_t limit = kDefaultLineLimit) {
    return read_until_any(state_ptr(), separator, {}, limit);
  }
  // With several separators (asyncio 3.13's tuple): the first match of any, that is the one
  // that ends first. The separators must live until the co_await ends; name the array (g++ 12
  // refuses a braced list inside a co_await):
  //   static constexpr std::string_view kEnds[] = {"\r\n", "\n"};
  //   std::string line = co_await stream.read_until(kEnds);
  Coro<std::string> read_until(std::span<const std::string_view> separators,
                               std::size_t limit = kDefaultLineLimit) {
    if (separators.empty()) throw std::invalid_argument("read_until: no separator");
    return read_until_any(state_ptr(), {}, separators, limit);
  }

  // asyncio's at_eof(): the buffer is empty and the end of the stream was read.
  bool at_eof() const { return state().eof && state().buffered() == 0; }

  // ---------------------------------------------------------------------------------- writing

  // Queues data (copied) and starts the flush; see the class comment. Throws the connection's
  // error after a failed send, and std::logic_error after write_eof() or close().
  Pending write(std::string_view data) {
    detail::StreamState& s = writable("write");
    if (!data.empty()) {
      s.enqueue(data);
      start_flush();
    }
    return Pending(state_, detail::StreamGoal::sent, s.total_queued);
  }
  // The same for a std::string the caller gives up: queued as it is, without the copy (a
  // TLS connection hands its records over so). Only an rvalue std::string picks this one.
  template <class String>
  requires std::same_as<String, std::string> Pending write(String&& data) {
    detail::StreamState& s = writable("write");
    if (!data.empty()) {
      s.enqueue(std::move(data));
      start_flush();
    }
    return Pending(state_, detail::StreamGoal::sent, s.total_queued);
  }
  Pending write(std::span<const std::byte> data) {
    return write(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
  }

  // asyncio's writelines(): each piece queued as its own chunk (not joined), so that a flush
  // sends them all with one sendmsg (writev for a pipe) of up to IOV_MAX iovecs.
  template <class Range>
  Pending writelines(const Range& pieces) {
    detail::StreamState& s = writable("writelines");
    for (const auto& piece : pieces) {
      std::string_view data(piece);
      if (data.empty()) continue;
      s.chunks.emplace_back(data);
      s.queued_bytes += data.size();
      s.total_queued += data.size();
    }
    if (s.queued_bytes > s.high_water) s.paused = true;
    start_flush();
    return Pending(state_, detail::StreamGoal::sent, s.total_queued);
  }

  // asyncio's drain(): waits while the write buffer is above its high-water mark (until the
  // flush brings it to the low-water mark); raises the connection's error.
  Coro<> drain() { return detail::wait_stream(state_ptr(), detail::StreamGoal::drained, 0); }

  // asyncio's set_write_buffer_limits(high, low): by default high is 64 KiB and low a quarter
  // of high; given only low, high is four times low. std::invalid_argument unless high >= low.
  void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                               std::optional<std::size_t> low = std::nullopt) {
    std::size_t h = high ? *high : low ? 4 * *low : detail::StreamState::kDefaultHighWater;
    std::size_t l = low ? *low : h / 4;
    if (h < l)
      throw std::invalid_argument("set_write_buffer_limits: high (" + std::to_string(h) +
                                  ") must be >= low (" + std::to_string(l) + ")");
    detail::StreamState& s = state();
    s.high_water = h;
    s.low_water = l;
    if (s.queued_bytes > h) s.paused = true;
    if (s.queued_bytes <= l && s.paused) {
      s.paused = false;
      s.notify();
    }
  }
  // Zero-copy sends (not in asyncio): from now on, each queued chunk of at least min_bytes goes
  // out alone with IORING_OP_SEND_ZC when the Stream is TCP and the kernel has it (Linux 6.0),
  // so the kernel sends from the chunk's pages instead of copying them; a chunk is one write()
  // call's bytes, or one piece of writelines(). 0 turns it off, the default. A Unix socket, a
  // pipe, or an older kernel sends copies as before. The flush task goes on at each send's
  // result; the chunk stays pinned until the kernel's notification. Off by default: over
  // loopback, all this machine can measure, it never paid (ringloop_send_zc_bench: Stream
  // writes of 64 KiB to 1 MiB at 0.83-1.1x the MB/s of copies), and to a peer on the same host
  // whose receive buffer is tiny (SO_RCVBUF 4 KiB) the kernel's TCP window collapsed and
  // zero-copy bytes moved 4 KiB per persist-timer tick (~400 ms) where copies flowed. Zero copy
  // is for large writes to a real NIC: kZeroCopyThreshold (64 KiB) is a starting point there.
  static constexpr std::size_t kZeroCopyThreshold = detail::StreamState::kZeroCopyBytes;
  void set_zero_copy_threshold(std::size_t min_bytes) { state().zero_copy_threshold = min_bytes; }
  std::size_t get_zero_copy_threshold() const { return state().zero_copy_threshold; }

  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const {
    return {state().high_water, state().low_water};
  }
  // Bytes queued and not yet accepted by the kernel.
  std::size_t get_write_buffer_size() const { return state().queued_bytes; }

  // asyncio's write_eof(): once the queue is sent, shuts the sending side down (the peer reads
  // the end of the stream; receiving goes on). On a pipe the end is closing it.
  Pending write_eof() {
    detail::StreamState& s = state();
    if (!s.eof_requested && !s.close_requested) {
      if (s.error) s.rethrow_error();
      s.eof_requested = true;
      start_flush();
    }
    return Pending(state_, detail::StreamGoal::eof_sent, 0);
  }
  bool can_write_eof() const noexcept { return true; }

  // asyncio's close() and wait_closed() in one: sends what is queued, then closes the
  // descriptor; awaiting it waits for both. Closing again is a no-op. Raises a failure of the
  // write side that no write or drain has raised yet.
  Pending close() {
    if (!state_) throw std::logic_error("Stream::close: an empty Stream (moved from?)");
    detail::StreamState& s = *state_;
    if (!s.close_requested) {
      s.close_requested = true;
      start_flush();
    }
    return Pending(state_, detail::StreamGoal::closed, 0);
  }
  // asyncio's wait_closed(): waits until close() (or abort()) has closed the descriptor.
  Coro<> wait_closed() { return detail::wait_stream(state_ptr(), detail::StreamGoal::closed, 0); }
  // asyncio's is_closing(): close() or abort() was called.
  bool is_closing() const { return state().close_requested; }

  // asyncio's abort(): closes now, dropping what is queued; a read waiting on the socket ends
  // (end of stream), later writes raise ECONNABORTED. Nothing to await.
  void abort() noexcept {
    if (!state_) return;
    detail::StreamState& s = *state_;
    if (s.closed && !s.flushing) return;  // closed already: nothing to drop
    if (flush_task_.valid() && !flush_task_.done()) flush_task_.cancel();
    s.close_requested = true;
    if (!s.error) {
      s.error = std::make_exception_ptr(
          std::system_error(ECONNABORTED, std::system_category(), "the Stream was aborted"));
      s.error_reported = true;  // the caller knows
    }
    if (s.in_flight == 0) s.discard_queue();  // else the flush task's exit does
    if (s.socket && !s.closed) {
      // A recv in flight holds the socket open and would wait for the peer forever: shutdown
      // ends it with 0 bytes, as asyncio's abort ends a pending read.
      if (s.reads_in_flight > 0 && s.kind == StreamKind::socket)
        ::shutdown(s.socket.fd(), SHUT_RDWR);
      Socket closing = std::move(s.socket);  // closed through the ring, without waiting
    }
    s.closed = true;
    if (!s.flushing) {
      try {
        s.notify();
      } catch (...) {  // no loop: nobody waits
      }
    }
  }

  // ------------------------------------------------------------------------------ information

  // The addresses of the two ends (getpeername, getsockname); an empty SocketAddress (length 0)
  // for a pipe. std::system_error when the call fails (ENOTCONN: not connected).
  SocketAddress peername() const { return address_of(&::getpeername, "getpeername"); }
  SocketAddress sockname() const { return address_of(&::getsockname, "getsockname"); }

  // asyncio's get_extra_info(name, default): "peername" and "sockname" as SocketAddress (see
  // to_string), "socket" (a socket) or "pipe" (a pipe) as the descriptor's int; the default for
  // any other name and for an address the kernel does not give. Prefer the typed accessors.
  std::any get_extra_info(std::string_view name, std::any default_value = {}) const {
    const detail::StreamState& s = state();
    bool pipe = s.kind == StreamKind::pipe;
    try {
      if (name == "peername" && !pipe) return peername();
      if (name == "sockname" && !pipe) return sockname();
    } catch (const std::system_error&) {  // asyncio gives None for an unconnected socket
      return default_value;
    }
    if (name == "socket" && !pipe && s.socket) return s.socket.fd();
    if (name == "pipe" && pipe && s.socket) return s.socket.fd();
    return default_value;
  }

 private:
  friend class detail::TlsConnection;

  detail::StreamState& state() const {
    if (!state_) throw std::logic_error("Stream: an empty Stream (moved from, or default)");
    return *state_;
  }
  std::shared_ptr<detail::StreamState> state_ptr() const {
    state();
    return state_;
  }

  detail::StreamState& writable(const char* what) {
    detail::StreamState& s = state();
    if (s.error) s.rethrow_error();
    if (s.close_requested || s.eof_requested)
      throw std::logic_error(std::string("Stream::") + what + " after " +
                             (s.close_requested ? "close()" : "write_eof()"));
    return s;
  }

  void start_flush() {
    detail::StreamState& s = *state_;
    if (s.flushing) return;
    s.flushing = true;
    // Eager: the first send is prepared now, so it goes out in the same io_uring_enter as
    // whatever the writer awaits next (a read, typically).
    try {
      flush_task_ = create_task(detail::flush_stream(state_), TaskOptions{.eager = true});
    } catch (...) {
      s.flushing = false;
      throw;
    }
  }

  SocketAddress address_of(int (*call)(int, sockaddr*, socklen_t*), const char* name) const {
    const detail::StreamState& s = state();
    SocketAddress address;
    if (s.kind == StreamKind::pipe) return address;
    address.length = sizeof(address.storage);
    if (call(s.socket.fd(), reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0)
      throw std::system_error(errno, std::system_category(), name);
    return address;
  }

  static Coro<std::string> read_some(std::shared_ptr<detail::StreamState> owner, std::size_t n) {
    detail::StreamState& s = *owner;
    if (s.buffered() == 0 && n != 0) co_await s.fill();
    co_return s.take(std::min(n, s.buffered()));
  }

  static Coro<std::string> read_to_eof(std::shared_ptr<detail::StreamState> owner) {
    detail::StreamState& s = *owner;
    for (;;) {
      bool more = co_await s.fill();  // into a variable: g++ 12 and co_await in a condition
      if (!more) break;
    }
    co_return s.take(s.buffered());
  }

  static std::size_t copy_buffered(detail::StreamState& s, std::span<std::byte> buffer) noexcept {
    std::size_t n = std::min(buffer.size(), s.buffered());
    if (n > 0) std::memcpy(buffer.data(), s.buffer.data() + s.start, n);
    s.drop(n);
    return n;
  }

  // A read straight into the caller's memory; 0 (and eof) at the end of the stream.
  static Coro<std::size_t> receive_into(detail::StreamState& s, std::span<std::byte> buffer) {
    if (s.eof) co_return 0;
    ++s.reads_in_flight;
    std::size_t received = 0;
    try {
      received = co_await s.receive(buffer.data(), buffer.size());
    } catch (...) {
      --s.reads_in_flight;
      throw;
    }
    --s.reads_in_flight;
    s.eof = received == 0;
    co_return received;
  }

  static Coro<std::size_t> read_into_buffer(std::shared_ptr<detail::StreamState> owner,
                                            std::span<std::byte> buffer) {
    detail::StreamState& s = *owner;
    if (buffer.empty()) co_return 0;
    if (s.buffered() > 0) co_return copy_buffered(s, buffer);
    std::size_t received = co_await receive_into(s, buffer);
    co_return received;
  }

  static Coro<std::string> read_exactly_string(std::shared_ptr<detail::StreamState> owner,
                                               std::size_t n) {
    detail::StreamState& s = *owner;
    while (s.buffered() < n) {
      bool more = co_await s.fill();
      if (!more) throw IncompleteReadError(s.take(s.buffered()), n);
    }
    co_return s.take(n);
  }

  static Coro<> read_exactly_buffer(std::shared_ptr<detail::StreamState> owner,
                                    std::span<std::byte> buffer) {
    detail::StreamState& s = *owner;
    std::size_t got = copy_buffered(s, buffer);
    while (got < buffer.size()) {
      std::size_t received = co_await receive_into(s, buffer.subspan(got));
      if (received == 0)
        throw IncompleteReadError(std::string(reinterpret_cast<const char*>(buffer.data()), got),
                                  buffer.size());
      got += received;
    }
  }

  // asyncio 3.13's readuntil, separator or separators: the earliest-ending match; the search
  // restarts where a separator could still begin; LimitOverrunError past limit.
  static Coro<std::string> read_until_any(std::shared_ptr<detail::StreamState> owner,
                                          std::string_view single,
                                          std::span<const std::string_view> many,
                                          std::size_t limit) {
    detail::StreamState& s = *owner;
    std::span<const std::string_view> separators = many;
    if (separators.empty()) separators = std::span<const std::string_view>(&single, 1);
    std::size_t min_length = SIZE_MAX, max_length = 0;
    for (std::string_view separator : separators) {
      min_length = std::min(min_length, separator.size());
      max_length = std::max(max_length, separator.size());
    }
    if (min_length == 0) throw std::invalid_argument("read_until: an empty separator");
    std::size_t offset = 0;
    for (;;) {
      std::string_view data = s.view();
      if (data.size() - offset >= min_length) {
        std::size_t match_start = 0, match_end = std::string_view::npos;
        for (std::string_view separator : separators) {
          std::size_t at = data.find(separator, offset);
          if (at != std::string_view::npos && at + separator.size() < match_end) {
            match_start = at;
            match_end = at + separator.size();
          }
        }
        if (match_end != std::string_view::npos) {
          if (match_start > limit)
            throw LimitOverrunError(
                "read_until: the separator is found, but the chunk is longer "
                "than the limit of " +
                    std::to_string(limit) + " bytes",
                match_start);
          co_return s.take(match_end);
        }
        offset = data.size() + 1 > max_length ? data.size() + 1 - max_length : 0;
        if (offset > limit)
          throw LimitOverrunError(
              "read_until: no separator in the first " + std::to_string(limit) + " bytes", offset);
      }
      // A separator may have come with the last bytes: the buffer is searched before the end.
      if (s.eof) throw IncompleteReadError(s.take(s.buffered()), 0);
      co_await s.fill();
    }
  }

  static Coro<std::string> read_line(std::shared_ptr<detail::StreamState> owner,
                                     std::size_t limit) {
    detail::StreamState& s = *owner;
    std::string line;
    std::optional<LimitOverrunError> overrun;
    try {
      // No braced {} inside the co_await: g++ 12 refuses it.
      line = co_await read_until_any(owner, "\n", std::span<const std::string_view>(), limit);
    } catch (IncompleteReadError& error) {
      line = std::move(error.partial);
    } catch (const LimitOverrunError& error) {
      overrun = error;
    }
    if (overrun) {  // asyncio: the line goes, with its "\n" if it has come; else all of it
      std::string_view data = s.view();
      if (data.substr(std::min(overrun->consumed, data.size())).starts_with('\n'))
        s.drop(overrun->consumed + 1);
      else
        s.drop(s.buffered());
      throw std::invalid_argument(overrun->what());
    }
    co_return line;
  }

  std::shared_ptr<detail::StreamState> state_;
  Task<> flush_task_;  // the latest flush task; cancelled by abort()
};

}  // namespace ringloop
