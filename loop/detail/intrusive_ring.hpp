// A FIFO of intrusive nodes whose anchor is one pointer: the nodes form a circle, and the anchor
// points at the first (whose prev is the last). IntrusiveList's anchor is a sentinel node and a
// count, 24 bytes; this one is 8, for a record there are millions of, most of whom never have
// more than one node linked (a task's waiters: usually just the gather or awaiter of it).
// Nodes are ListNodes, so linked() reads the same; an unlinked node has null prev and next.
//
// A ring with no nodes can hold, in the same word, one pointer to an Alt instead (tagged in the
// low bit): a task's watcher, one record through which a gather of a million tasks watches them
// all, where a node per task would cost each 32 bytes. The owner decides where the Alt goes when
// a node comes (a task moves its watcher aside first: nodes and an Alt never share the word).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstdint>

#include <ringloop/loop/assert.hpp>
#include <ringloop/loop/detail/intrusive_list.hpp>

namespace ringloop::detail {

// A ring that holds no Alt (the default).
struct NoRingAlt {};

// T derives from ListNode; Alt is any type aligned to at least 2.
template <class T, class Alt = NoRingAlt>
class IntrusiveRing {
 public:
  IntrusiveRing() noexcept = default;
  IntrusiveRing(const IntrusiveRing&) = delete;
  IntrusiveRing& operator=(const IntrusiveRing&) = delete;
  ~IntrusiveRing() { RINGLOOP_ASSERT(empty(), "an intrusive ring was destroyed while linked"); }

  // Neither a node nor an Alt.
  bool empty() const noexcept { return word_ == 0; }
  bool has_nodes() const noexcept { return word_ != 0 && (word_ & kAltTag) == 0; }

  void push_back(T& item) noexcept {
    ListNode& node = item;
    RINGLOOP_ASSERT(!node.linked(), "an object was linked into two lists at once");
    RINGLOOP_ASSERT(alt() == nullptr, "a node pushed onto a ring that holds an Alt");
    ListNode* first = first_node();
    if (first == nullptr) {
      node.prev = node.next = &node;
      word_ = reinterpret_cast<std::uintptr_t>(&node);
      return;
    }
    ListNode* last = first->prev;
    node.prev = last;
    node.next = first;
    last->next = &node;
    first->prev = &node;
  }

  // Unlinks item, which must be in this ring.
  void erase(T& item) noexcept {
    ListNode& node = item;
    RINGLOOP_ASSERT(node.linked(), "unlinking an object that is in no list");
    if (node.next == &node) {
      word_ = 0;
    } else {
      node.prev->next = node.next;
      node.next->prev = node.prev;
      if (first_node() == &node) word_ = reinterpret_cast<std::uintptr_t>(node.next);
    }
    node.prev = node.next = nullptr;
  }

  T& pop_front() noexcept {
    RINGLOOP_ASSERT(has_nodes(), "pop_front() of a ring with no nodes");
    T& item = static_cast<T&>(*first_node());
    erase(item);
    return item;
  }

  // The Alt held in place of nodes, or null.
  Alt* alt() const noexcept {
    return (word_ & kAltTag) != 0 ? reinterpret_cast<Alt*>(word_ & ~kAltTag) : nullptr;
  }
  void set_alt(Alt& alt) noexcept {
    RINGLOOP_ASSERT(empty(), "an Alt set on a ring that is not empty");
    word_ = reinterpret_cast<std::uintptr_t>(&alt) | kAltTag;
  }
  Alt* take_alt() noexcept {
    Alt* held = alt();
    if (held != nullptr) word_ = 0;
    return held;
  }

 private:
  static constexpr std::uintptr_t kAltTag = 1;

  ListNode* first_node() const noexcept {
    return (word_ & kAltTag) != 0 ? nullptr : reinterpret_cast<ListNode*>(word_);
  }

  std::uintptr_t word_ = 0;
};

}  // namespace ringloop::detail
