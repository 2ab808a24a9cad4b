// A doubly linked intrusive list: the node lives inside the object it links, so linking and
// unlinking never allocate and an object can leave the list from the middle in O(1). The loop
// uses it for operations waiting for CQ room and for the tasks it owns.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstddef>

#include <ringloop/loop/assert.hpp>

namespace ringloop::detail {

struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;

  bool linked() const noexcept { return prev != nullptr; }
};

// T derives from ListNode (possibly through a tag base to sit in several lists).
template <class T, class Node = ListNode>
class IntrusiveList {
 public:
  IntrusiveList() noexcept { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() { RINGLOOP_ASSERT(empty(), "an intrusive list was destroyed while linked"); }

  bool empty() const noexcept { return head_.next == &head_; }
  std::size_t size() const noexcept { return size_; }

  void push_back(T& item) noexcept {
    Node& node = item;
    RINGLOOP_ASSERT(!node.linked(), "an object was linked into two lists at once");
    node.prev = head_.prev;
    node.next = &head_;
    head_.prev->next = &node;
    head_.prev = &node;
    ++size_;
  }

  static void erase_from_any(T& item) noexcept {
    Node& node = item;
    RINGLOOP_ASSERT(node.linked(), "unlinking an object that is in no list");
    node.prev->next = node.next;
    node.next->prev = node.prev;
    node.prev = node.next = nullptr;
  }

  void erase(T& item) noexcept {
    erase_from_any(item);
    --size_;
  }

  T& front() noexcept {
    RINGLOOP_ASSERT(!empty(), "front() of an empty list");
    return static_cast<T&>(*static_cast<Node*>(head_.next));
  }

  T& pop_front() noexcept {
    T& item = front();
    erase(item);
    return item;
  }

  // Calls fn on every item; fn may unlink the item it is given (and no other).
  template <class Fn>
  void for_each(Fn&& fn) {
    for (ListNode* node = head_.next; node != &head_;) {
      ListNode* next = node->next;
      fn(static_cast<T&>(*static_cast<Node*>(node)));
      node = next;
    }
  }

 private:
  Node head_;
  std::size_t size_ = 0;
};

}  // namespace ringloop::detail
