// The fast paths' free into a span some P caches when the freeing thread's P is not its bare
// owner (free_into_cached_span, free.cpp): a thread freeing what another thread allocated, and an
// owner freeing into its span after other Ps have. Valid frees stay off the general checks
// (testing::held_frees does not move) and land where the general path would put them (the remote
// bits, or the owner's `free` bits); every bad or double free still reaches the general path and
// is reported at the call; and a span uncached while the free waited for its lock is judged again.
// The owner is a thread bound to its P (the default binding), so the test thread's calls run on
// the other P.
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "affinity.hpp"
#include "heap_state.hpp"
#include "page_map.hpp"
#include "poison.hpp"  // the ASan interface in an ASan build
#include "span.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

// A thread that runs the closures given to run(), one at a time, and keeps its P bound between
// them.
class OwnerThread {
 public:
  OwnerThread() : thread_([this] { loop(); }) {}
  ~OwnerThread() {
    run([this] { quit_ = true; });
    thread_.join();
  }
  void run(std::function<void()> f) {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = std::move(f);
    cv_.notify_all();
    cv_.wait(lock, [this] { return !job_; });
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      cv_.wait(lock, [this] { return static_cast<bool>(job_); });
      job_();
      job_ = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool quit_ = false;
  std::thread thread_;
};

Options bound_procs(testing::RecordingHandler& rec) {
  Options o = test::deterministic(2, rec);
  o.reuse = ReusePolicy::owner;
  o.binding = ProcBinding::automatic;
  return o;
}

detail::Span& span_of(Heap& heap, const void* p) {
  detail::Span* s = detail::span_of(heap.state(), reinterpret_cast<std::uintptr_t>(p));
  EXPECT_NE(s, nullptr);
  return *s;
}

bool remote_bit(Heap& heap, const void* p) {
  const detail::Span& s = span_of(heap, p);
  const auto i =
      static_cast<unsigned>((reinterpret_cast<std::uintptr_t>(p) - s.start) / s.elem_size);
  return (s.remote_bits[i / 64].load() >> (i % 64) & 1) != 0;
}

// The test thread's P, bound by a few calls of its own (a thread's first call takes the general
// path); the owner's is the other one.
unsigned bind_this_thread(Heap& heap) {
  for (int k = 0; k < 4; k++) heap.free(heap.allocate(16));
  return detail::last_used_proc.p;
}

// A heap of two Ps with binding on, and the owner's thread, bound to one of them once it has run
// a call; the test thread's calls then bind the other (skipped where binding falls back to off).
class RemoteFastFree : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::binding(heap) == ProcBinding::off) GTEST_SKIP() << "no membarrier: binding is off";
  }
  testing::RecordingHandler rec;
  Heap heap{bound_procs(rec)};
  OwnerThread owner;
};

ErrorKind take_one(testing::RecordingHandler& rec, const char* what) {
  const auto reports = rec.take();
  EXPECT_EQ(reports.size(), 1u) << what;
  return reports.empty() ? ErrorKind::corruption : reports[0].kind;
}

TEST_F(RemoteFastFree, ValidFreesStayOffTheGeneralPathAndBadOnesAreReportedAtTheCall) {
  unsigned owner_p = 0;
  void *x = nullptr, *y = nullptr, *z = nullptr, *keep = nullptr;
  owner.run([&] {
    x = heap.allocate(64);
    y = heap.allocate(64);
    z = heap.allocate(64);
    keep = heap.allocate(64);
    owner_p = detail::last_used_proc.p;
  });
  ASSERT_NE(bind_this_thread(heap), owner_p);
  ASSERT_EQ(span_of(heap, x).cache_owner(), static_cast<int>(owner_p));

  // Another P's valid free: the remote bit, through the fast path.
  std::uint64_t held = testing::held_frees(heap);
  heap.free(x);
  EXPECT_EQ(testing::held_frees(heap), held) << "a valid remote free took the general path";
  EXPECT_TRUE(remote_bit(heap, x)) << "the remote free is not in the remote bits";
  EXPECT_TRUE(span_of(heap, x).remote_pending()) << "the remote flag was not set";
  EXPECT_TRUE(heap.find_object(x).pending_free);
  EXPECT_EQ(rec.count(), 0u);

  // Its second free, a bad pointer into the span and a free slot: reported at the call.
  heap.free(x);
  EXPECT_EQ(take_one(rec, "a second remote free of x"), ErrorKind::double_free);
  heap.free(static_cast<char*>(keep) + 8);
  EXPECT_EQ(take_one(rec, "an interior pointer"), ErrorKind::interior_free);
  const detail::Span& s = span_of(heap, x);
  void* never = reinterpret_cast<void*>(s.start + (s.nelems - 1) * s.elem_size);
  ASSERT_FALSE(heap.find_object(never).kind == PointerKind::object_start &&
               !heap.find_object(never).pending_free);
  heap.free(never);
  EXPECT_EQ(take_one(rec, "a free slot of the owner's span"), ErrorKind::invalid_free);

  // The owner's valid free into its span with remote frees pending: its own bits, no general
  // path; then its free of x, which the other P freed: a double free at the call.
  held = testing::held_frees(heap);
  owner.run([&] { heap.free(y); });
  EXPECT_EQ(testing::held_frees(heap), held) << "the owner's free after a remote one was general";
  EXPECT_FALSE(remote_bit(heap, y));
  EXPECT_TRUE(heap.find_object(y).pending_free);
  owner.run([&] { heap.free(x); });
  EXPECT_EQ(take_one(rec, "the owner's free of x after the remote free"), ErrorKind::double_free);

  // The owner frees z first; the other P's free of z is the double free, at the call.
  owner.run([&] { heap.free(z); });
  heap.free(z);
  EXPECT_EQ(take_one(rec, "a remote free of z after the owner's"), ErrorKind::double_free);
  EXPECT_FALSE(remote_bit(heap, z));

  EXPECT_VERIFIED(heap);
  testing::flush_all(heap);  // the merge
  EXPECT_EQ(rec.count(), 0u) << "the merge reported a double free already reported";
  EXPECT_TRUE(heap.find_object(x).pending_free) << "the merge lost the remote free";
  owner.run([&] { heap.free(keep); });
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

// The free reads the span unlocked, then waits for its lock; meanwhile the owner evicts the span
// to central (it exhausts max_owned_spans more spans of the class). Under the lock the free must
// see that no P caches the span any more and leave it to the general path, which sets the span's
// `free` bit: a remote bit there would be a free nobody merges (INV-S6).
TEST_F(RemoteFastFree, ASpanUncachedWhileTheFreeAwaitsItsLockIsJudgedAgain) {
  unsigned owner_p = 0;
  void* x = nullptr;
  std::vector<void*> more;
  owner.run([&] {
    x = heap.allocate(64);
    owner_p = detail::last_used_proc.p;
  });
  ASSERT_NE(bind_this_thread(heap), owner_p);
  detail::Span& s = span_of(heap, x);
  bool evicted = false;
  testing::set_protocol_hook(heap,
                             [&](testing::ProtocolPoint) {
                               if (evicted) return;
                               evicted = true;
                               owner.run([&] {
                                 // As test::evict_to_central: a refill's look at the oldest owned
                                 // spans moves them to the front, so the span may be looked at a
                                 // few times before it is the one evicted.
                                 const unsigned limit =
                                     4 * (testing::max_owned_spans() + 4) * s.nelems;
                                 while (s.cache_owner() >= 0 && more.size() < limit)
                                   more.push_back(heap.allocate(64));
                               });
                             },
                             {testing::ProtocolPoint::remote_free_before_lock});
  const std::uint64_t held = testing::held_frees(heap);
  heap.free(x);
  testing::set_protocol_hook(heap, {});
  ASSERT_TRUE(evicted) << "the free did not take the fast path into another P's span";
  EXPECT_EQ(s.cache_owner(), -1) << "the owner did not evict the span";
  EXPECT_GT(testing::held_frees(heap), held) << "the free did not go on to the general path";
  EXPECT_FALSE(remote_bit(heap, x)) << "a remote bit on a span no P caches (INV-S6)";
  EXPECT_TRUE(heap.find_object(x).pending_free) << "the free was lost";
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
  owner.run([&] {
    for (void* p : more) heap.free(p);
  });
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

// What a remote free does after setting the slot's remote bit — count the free and, under
// poison_freed, poison the object — is done before it releases free_lock: from then on the owner
// may collect the slot and hand it out again. Here the owner does exactly that at the point right
// after the free recorded it (remote_free_recorded): the object it gets back must be live, counted
// once and, in an ASan build, unpoisoned (a poison after the lock would fall on the live
// object). Threads unbound (poison_freed keeps them off the bound paths), each steered to its own
// P.
TEST(RemoteFreeWindow, TheOwnerReusingASlotRightAfterItsRemoteFreeGetsItLive) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.reuse = ReusePolicy::owner;
  o.debug.poison_freed = true;  // a no-op without ASan
  Heap heap(o);
  OwnerThread owner;
  constexpr std::size_t size = 128;
  std::vector<void*> v;
  owner.run([&] {
    ASSERT_TRUE(testing::prefer_proc(heap, 0));
    v.push_back(heap.allocate(size));
    const unsigned n = span_of(heap, v[0]).nelems;
    while (v.size() < n) v.push_back(heap.allocate(size));
  });
  ASSERT_FALSE(v.empty());
  detail::Span& s = span_of(heap, v[0]);
  ASSERT_EQ(s.cache_owner(), 0) << "the owner's span is not cached by its P";
  for (void* obj : v) ASSERT_EQ(&span_of(heap, obj), &s) << "one span's objects";
  ASSERT_TRUE(testing::prefer_proc(heap, 1));
  const unsigned threshold = testing::collect_threshold(s.nelems);
  ASSERT_GE(threshold, 2u);
  // All but the last free that makes the span worth collecting; the first of them takes the
  // general path (the thread's first call), the others the fast path's remote free.
  for (unsigned k = 0; k + 1 < threshold; k++) heap.free(v[k]);
  void* const x = v[threshold - 1];
  std::vector<void*> again;
  bool reused = false;
  testing::set_protocol_hook(heap,
                             [&](testing::ProtocolPoint) {
                               if (reused) return;
                               reused = true;
                               // The owner's current span is full: its next allocations collect it,
                               // lowest slot first.
                               owner.run([&] {
                                 for (unsigned k = 0; k < threshold; k++)
                                   again.push_back(heap.allocate(size));
                               });
                             },
                             {testing::ProtocolPoint::remote_free_recorded});
  heap.free(x);
  testing::set_protocol_hook(heap, {});
  ASSERT_TRUE(reused) << "the free did not take the fast path's remote free";
  ASSERT_NE(std::find(again.begin(), again.end(), x), again.end())
      << "the owner did not collect the slot and hand it out again";
  const PointerInfo info = heap.find_object(x);
  EXPECT_EQ(info.kind, PointerKind::object_start);
  EXPECT_FALSE(info.pending_free);
#if defined(SPANHEAP_ASAN)
  EXPECT_EQ(__asan_region_is_poisoned(x, size), nullptr)
      << "the free poisoned the slot after its owner had handed it out again";
#endif
  const Stats st = heap.stats();
  EXPECT_EQ(st.frees, threshold);
  EXPECT_EQ(st.collected_objects, threshold);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
  owner.run([&] {
    for (void* obj : again) static_cast<unsigned char*>(obj)[size - 1] = 1;  // live: writable
    for (void* obj : again) heap.free(obj);
    for (std::size_t k = threshold; k < v.size(); k++) heap.free(v[k]);
  });
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

}  // namespace
}  // namespace spanheap
