#include <ringloop/coro/thread/loop_group.hpp>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <latch>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <ringloop/coro/exception_handler.hpp>
#include <ringloop/coro/task/run.hpp>

namespace ringloop {
namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0)
    throw std::system_error(errno, std::system_category(), "LoopGroup: sched_getaffinity");
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

std::string list_of(const std::vector<int>& cpus) {
  std::string text;
  for (int cpu : cpus) text += (text.empty() ? "" : ",") + std::to_string(cpu);
  return text;
}

void pin_this_thread(int cpu, const std::string& loop_name) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0)
    throw std::system_error(errno, std::system_category(),
                            "LoopGroup: pinning " + loop_name + " to CPU " + std::to_string(cpu));
}

// co_await of the group's end, on a loop whose main has finished: it keeps serving calls from
// the others until the last main is done.
struct GroupDoneAwaiter {
  bool& done;
  std::coroutine_handle<>& waiter;
  bool await_ready() const noexcept { return done; }
  void await_suspend(std::coroutine_handle<> awaiting) noexcept { waiter = awaiting; }
  void await_resume() const noexcept {}
};

}  // namespace

LoopGroup::Member::Member(std::size_t index)
    : index_(index), name_("group-loop-" + std::to_string(index)) {}

detail::CallTarget LoopGroup::Member::target(const char* what) const {
  if (!inbox_)
    throw std::logic_error(std::string(what) + ": " + name_ +
                           " is not running; cross-loop calls go between the loops of a "
                           "running LoopGroup (inside group.run())");
  return {loop_, inbox_, &name_};
}

void LoopGroup::Member::on_cancel_main(ThreadCompletion& completion) noexcept {
  Member& self = static_cast<Message&>(completion).member;
  if (self.main_ != nullptr) self.main_->cancel();
}

void LoopGroup::Member::on_group_done(ThreadCompletion& completion) noexcept {
  Member& self = static_cast<Message&>(completion).member;
  self.group_done_ = true;
  if (self.done_waiter_) self.loop_->schedule(std::exchange(self.done_waiter_, {}));
}

LoopGroup::LoopGroup(LoopGroupOptions options) : options_(std::move(options)) {
  if (!options_.cpus.empty()) {
    std::vector<int> allowed = allowed_cpus();
    for (int cpu : options_.cpus)
      if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end())
        throw std::invalid_argument(
            "LoopGroup: CPU " + std::to_string(cpu) +
            " is not one this process may run on (allowed: " + list_of(allowed) + ")");
    if (options_.loops == 0) options_.loops = options_.cpus.size();
    if (options_.loops != options_.cpus.size())
      throw std::invalid_argument("LoopGroup: " + std::to_string(options_.loops) + " loops and " +
                                  std::to_string(options_.cpus.size()) +
                                  " CPUs to pin them to; give one CPU per loop");
  }
  if (options_.loops == 0) options_.loops = allowed_cpus().size();
  for (std::size_t i = 0; i < options_.loops; ++i)
    members_.push_back(std::unique_ptr<Member>(new Member(i)));
}

LoopGroup::~LoopGroup() = default;

LoopGroup::Member& LoopGroup::loop(std::size_t index) {
  if (index >= members_.size())
    throw std::out_of_range("LoopGroup::loop: no loop " + std::to_string(index) +
                            " in a group of " + std::to_string(members_.size()));
  return *members_[index];
}

LoopGroup& LoopGroup::current(const char* caller) {
  if (current_group_ == nullptr)
    throw std::logic_error(std::string(caller) +
                           ": this thread runs no loop of a LoopGroup; call it from a coroutine "
                           "of the group (or use group.loop(i) directly)");
  return *current_group_;
}

std::size_t LoopGroup::current_index(const char* caller) {
  current(caller);
  return current_index_;
}

void LoopGroup::run_erased(MainFn main) {
  if (running_) throw std::logic_error("LoopGroup::run: the group is running already");
  if (current_group_ != nullptr || Loop::current() != nullptr)
    throw std::logic_error("LoopGroup::run: called from a thread that runs a loop; run blocks");
  running_ = true;
  first_error_ = nullptr;
  start_failed_ = false;
  stopping_ = false;
  mains_left_ = members_.size();
  std::latch started(static_cast<std::ptrdiff_t>(members_.size()));
  std::vector<std::thread> threads;
  threads.reserve(members_.size());
  try {
    for (std::size_t i = 0; i < members_.size(); ++i)
      threads.emplace_back([this, i, &main, &started] { run_loop_thread(i, main, started); });
  } catch (...) {
    // A thread could not be made: those that run see start_failed_ and end at once.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_error_) first_error_ = std::current_exception();
    }
    start_failed_ = true;
    std::size_t missing = members_.size() - threads.size();
    mains_left_ -= missing;
    started.count_down(static_cast<std::ptrdiff_t>(missing));
  }
  for (std::thread& thread : threads) thread.join();
  for (auto& member : members_) {
    member->loop_ = nullptr;
    member->inbox_.reset();
    member->main_ = nullptr;
    member->group_done_ = false;
    member->done_waiter_ = {};
  }
  running_ = false;
  if (first_error_) std::rethrow_exception(std::exchange(first_error_, nullptr));
}

void LoopGroup::run_loop_thread(std::size_t index, const MainFn& main, std::latch& started) {
  Member& member = *members_[index];
  std::optional<Loop> loop;
  try {
    if (!options_.cpus.empty()) pin_this_thread(options_.cpus[index], member.name_);
    LoopOptions loop_options = options_.loop;
    loop_options.name = member.name_;
    loop.emplace(loop_options);
    member.inbox_ = loop->open_to_threads();  // the loop waits for posts while the group runs
    member.loop_ = &*loop;
  } catch (...) {
    // Recorded only: the other loops' inboxes are still being set up (no cancel to post; no
    // main starts anyway).
    std::lock_guard<std::mutex> lock(mutex_);
    if (!first_error_) first_error_ = std::current_exception();
    start_failed_ = true;
  }
  // No main starts before every loop can take calls (or the group has given up starting).
  started.arrive_and_wait();
  if (!loop) {
    main_finished(member);
    return;
  }
  current_group_ = this;
  current_index_ = index;
  try {
    if (!start_failed_) loop->run_until_complete(run_main(member, main));
  } catch (...) {  // the loop itself failed (run_main catches the main's own exceptions)
    main_failed(member, std::current_exception());
  }
  main_finished(member);
  try {
    loop->run_until_complete(wait_group_done(member));
  } catch (...) {
    main_failed(member, std::current_exception());
  }
  member.inbox_->drop_keep_alive();
  // Each loop closes by its own rules: its tasks are cancelled and awaited, calls it made are
  // answered (the other loops serve them until they close), nothing stays in flight.
  loop->close();
  current_group_ = nullptr;
}

Coro<void> LoopGroup::run_main(Member& member, const MainFn& main) {
  std::exception_ptr error;
  try {
    Task<void> task = create_task(main(member.index_));
    member.main_ = &task.core();
    if (stopping_) task.cancel();
    co_await task;
  } catch (...) {
    error = std::current_exception();
  }
  member.main_ = nullptr;
  if (error) main_failed(member, error);
}

Coro<void> LoopGroup::wait_group_done(Member& member) {
  co_await GroupDoneAwaiter{member.group_done_, member.done_waiter_};
}

void LoopGroup::main_finished(Member& member) noexcept {
  if (mains_left_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The last main: every loop may now close.
  for (auto& other : members_) {
    if (!other->inbox_) continue;
    bool posted = false;
    try {
      posted = member.loop_ != nullptr &&
               member.loop_->post_to(other->inbox_, other->group_done_message_);
    } catch (...) {
    }
    if (!posted) (void)other->inbox_->post(other->group_done_message_);
  }
}

void LoopGroup::main_failed(Member& member, const std::exception_ptr& error) noexcept {
  // A main cancelled because the group is stopping is not a failure of its own.
  if (stopping_ && detail::is_cancelled_error(error)) return;
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!first_error_) {
      first_error_ = error;
      first = true;
    }
  }
  if (!first) {
    try {
      detail::report_exception(member.loop_, {"LoopGroup: the main coroutine of " + member.name_ +
                                                  " failed after another loop's (run() rethrows "
                                                  "the first)",
                                              error, ""});
    } catch (...) {
    }
  }
  if (options_.on_error != LoopGroupOptions::OnError::cancel_others || stopping_.exchange(true))
    return;
  for (auto& other : members_) {
    if (other.get() == &member || !other->inbox_) continue;
    bool posted = false;
    try {
      posted = member.loop_ != nullptr && member.loop_->post_to(other->inbox_, other->cancel_main_);
    } catch (...) {
    }
    if (!posted && member.loop_ == nullptr) (void)other->inbox_->post(other->cancel_main_);
  }
}

LoopGroupOptions detail::per_core_options(std::size_t n, LoopGroupOptions options) {
  std::vector<int> allowed = allowed_cpus();
  if (n == 0 || n > allowed.size())
    throw std::invalid_argument(
        "run_per_core: " + std::to_string(n) + " loops asked for; this process may use " +
        std::to_string(allowed.size()) + " CPU(s) (" + list_of(allowed) + "), one loop each");
  options.loops = n;
  options.cpus.assign(allowed.begin(), allowed.begin() + static_cast<std::ptrdiff_t>(n));
  return options;
}

}  // namespace ringloop
