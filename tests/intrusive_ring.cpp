// IntrusiveRing, the one-pointer FIFO a task keeps its waiters in: order, and unlinking from
// any place (an awaiter that leaves early: wait_for's timeout, a removed done callback).
#include <catch2/catch.hpp>

#include <vector>

#include <ringloop/loop/detail/intrusive_ring.hpp>

namespace {

struct Item : ringloop::detail::ListNode {
  explicit Item(int v) : value(v) {}
  int value;
};

std::vector<int> drain(ringloop::detail::IntrusiveRing<Item>& ring) {
  std::vector<int> order;
  while (!ring.empty()) order.push_back(ring.pop_front().value);
  return order;
}

}  // namespace

TEST_CASE("IntrusiveRing is a FIFO whose anchor is one pointer", "[intrusive_ring]") {
  STATIC_REQUIRE(sizeof(ringloop::detail::IntrusiveRing<Item>) == sizeof(void*));
  ringloop::detail::IntrusiveRing<Item> ring;
  CHECK(ring.empty());
  Item a(1), b(2), c(3);
  ring.push_back(a);
  ring.push_back(b);
  ring.push_back(c);
  CHECK(a.linked());
  CHECK(drain(ring) == std::vector<int>{1, 2, 3});
  CHECK_FALSE(a.linked());
  CHECK_FALSE(c.linked());

  // One item: it is first and last.
  ring.push_back(b);
  CHECK(drain(ring) == std::vector<int>{2});
}

TEST_CASE("IntrusiveRing unlinks an item from its front, middle or back", "[intrusive_ring]") {
  ringloop::detail::IntrusiveRing<Item> ring;
  Item a(1), b(2), c(3), d(4);
  for (Item* item : {&a, &b, &c, &d}) ring.push_back(*item);

  ring.erase(b);  // middle
  CHECK_FALSE(b.linked());
  ring.erase(a);  // front: the next becomes first
  ring.erase(d);  // back: the one before becomes last
  ring.push_back(a);
  CHECK(drain(ring) == std::vector<int>{3, 1});

  // The only item leaves: the ring is empty and takes new items.
  ring.push_back(c);
  ring.erase(c);
  CHECK(ring.empty());
  ring.push_back(d);
  ring.push_back(b);
  CHECK(drain(ring) == std::vector<int>{4, 2});
}

TEST_CASE("IntrusiveRing holds one Alt in place of nodes, in the same word", "[intrusive_ring]") {
  struct Watcher {
    int id;
  };
  STATIC_REQUIRE(sizeof(ringloop::detail::IntrusiveRing<Item, Watcher>) == sizeof(void*));
  ringloop::detail::IntrusiveRing<Item, Watcher> ring;
  Watcher watcher{7};
  ring.set_alt(watcher);
  CHECK_FALSE(ring.empty());
  CHECK_FALSE(ring.has_nodes());
  CHECK(ring.alt() == &watcher);
  CHECK(ring.take_alt() == &watcher);
  CHECK(ring.empty());
  CHECK(ring.take_alt() == nullptr);
  // Nodes again once the Alt has left; none of them reads as an Alt.
  Item a(1), b(2);
  ring.push_back(a);
  ring.push_back(b);
  CHECK(ring.has_nodes());
  CHECK(ring.alt() == nullptr);
  ring.erase(a);
  CHECK(ring.pop_front().value == 2);
  CHECK(ring.empty());
}
