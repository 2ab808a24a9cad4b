// A FIFO of intrusive nodes whose anchor is one pointer: the nodes form a circle, and the anchor
// points at the first (whose prev is the last). IntrusiveList's anchor is a sentinel node and a
// count, 24 bytes; this one is 8, for a record there are millions of, most of whom never have
// more than one node linked (a task's waiters: usually just the gather or awaiter of it).
// Nodes are ListNodes, so linked() reads the same; an unlinked node has null prev and next.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <ringloop/loop/assert.hpp>
#include <ringloop/loop/detail/intrusive_list.hpp>

namespace ringloop::detail {

// T derives from ListNode.
template <class T>
class IntrusiveRing {
 public:
  IntrusiveRing() noexcept = default;
  IntrusiveRing(const IntrusiveRing&) = delete;
  IntrusiveRing& operator=(const IntrusiveRing&) = delete;
  ~IntrusiveRing() { RINGLOOP_ASSERT(empty(), "an intrusive ring was destroyed while linked"); }

  bool empty() const noexcept { return first_ == nullptr; }

  void push_back(T& item) noexcept {
    ListNode& node = item;
    RINGLOOP_ASSERT(!node.linked(), "an object was linked into two lists at once");
    if (first_ == nullptr) {
      node.prev = node.next = &node;
      first_ = &node;
      return;
    }
    ListNode* last = first_->prev;
    node.prev = last;
    node.next = first_;
    last->next = &node;
    first_->prev = &node;
  }

  // Unlinks item, which must be in this ring.
  void erase(T& item) noexcept {
    ListNode& node = item;
    RINGLOOP_ASSERT(node.linked(), "unlinking an object that is in no list");
    if (node.next == &node) {
      first_ = nullptr;
    } else {
      node.prev->next = node.next;
      node.next->prev = node.prev;
      if (first_ == &node) first_ = node.next;
    }
    node.prev = node.next = nullptr;
  }

  T& pop_front() noexcept {
    RINGLOOP_ASSERT(!empty(), "pop_front() of an empty ring");
    T& item = static_cast<T&>(*first_);
    erase(item);
    return item;
  }

 private:
  ListNode* first_ = nullptr;
};

}  // namespace ringloop::detail
