// size_classes_props: the size-class table and size -> class mapping (DESIGN §2 size_classes).
// Covers the table half of DESIGN §8 Span/Accounting preconditions: rounding (the class chosen is
// the smallest that fits size and alignment), the waste bound (tail waste ≤ 12.5% of the span),
// monotonicity in size, alignment of every slot, and table consistency (ids, nelems, npages, tail
// waste, largest class = max_small_size); and the heap agrees: usable_size and find_object of an
// allocation report the class the table predicts.
#include <algorithm>

#include "support/heap_oracle.hpp"
#include "support/prop_runner.hpp"

namespace spanheap::props {
namespace {

const std::vector<testing::SizeClassInfo>& table() {
  static const auto t = testing::size_classes();
  return t;
}

const testing::SizeClassInfo* find_class(unsigned cls) {
  for (const auto& c : table())
    if (c.span_class == cls) return &c;
  return nullptr;
}

bool fits(const testing::SizeClassInfo& c, std::size_t size, std::size_t align) {
  return c.size >= size && c.size % align == 0;
}

rc::Gen<std::size_t> gen_align() {
  return rc::gen::weightedOneOf<std::size_t>(
      {{4, rc::gen::just<std::size_t>(16)},
       {3, rc::gen::map(rc::gen::inRange(0, 14), [](int k) { return std::size_t{1} << k; })}});
}

}  // namespace

TEST(SizeClasses, TableIsConsistent) {
  const auto& t = table();
  ASSERT_FALSE(t.empty());
  for (std::size_t i = 0; i < t.size(); ++i) {
    const auto& c = t[i];
    SCOPED_TRACE(::testing::Message() << "class " << c.span_class << " size " << c.size);
    EXPECT_EQ(c.span_class, i + 1);  // ids are 1..n; 0 is the large class
    EXPECT_GT(c.size, 0u);
    EXPECT_EQ(c.size % 8, 0u);
    if (i > 0) {
      EXPECT_GT(c.size, t[i - 1].size);
    }
    EXPECT_GE(c.npages, 1u);
    EXPECT_EQ(c.nelems, c.npages * page_size / c.size);
    EXPECT_GE(c.nelems, 1u);
    EXPECT_EQ(c.tail_waste, c.npages * page_size - std::size_t{c.nelems} * c.size);
    EXPECT_LE(c.tail_waste * 8, c.npages * page_size) << "tail waste above 12.5%";
  }
  EXPECT_EQ(t.back().size, max_small_size);
  EXPECT_EQ(testing::size_to_class(max_small_size + 1, 16), 0u);
}

// Rounding: the chosen class fits and no smaller class would.
SPANHEAP_PROP(SizeClasses, RoundsToSmallestFittingClass, 2000, 100, ()) {
  const std::size_t size = *rc::gen::inRange<std::size_t>(0, max_small_size + 1);
  const std::size_t align = *gen_align();
  const unsigned cls = testing::size_to_class(size, align);
  const auto* c = find_class(cls);
  if (cls == 0) {
    // Only when no class can hold it with that alignment.
    for (const auto& k : table()) RC_ASSERT(!fits(k, std::max<std::size_t>(size, 1), align));
    return;
  }
  RC_ASSERT(c != nullptr);
  RC_ASSERT(fits(*c, size, align));
  for (const auto& k : table())
    if (k.size < c->size) RC_ASSERT(!fits(k, std::max<std::size_t>(size, 1), align));
}

// Monotonicity: a bigger request never gets a smaller class (same alignment).
SPANHEAP_PROP(SizeClasses, Monotone, 2000, 100, ()) {
  const std::size_t a = *rc::gen::inRange<std::size_t>(0, max_small_size + 1);
  const std::size_t b = *rc::gen::inRange<std::size_t>(a, max_small_size + 1);
  const std::size_t align = *gen_align();
  const unsigned ca = testing::size_to_class(a, align), cb = testing::size_to_class(b, align);
  if (cb != 0) {
    RC_ASSERT(ca != 0u);
    RC_ASSERT(find_class(ca)->size <= find_class(cb)->size);
  }
}

// The heap agrees with the table: every slot of the class is aligned, usable_size is the class
// size, and find_object names the class.
SPANHEAP_PROP(SizeClasses, HeapHonoursTheTable, 200, 100, ()) {
  HeapSetup setup;
  setup.procs = 1;
  TestHeap h(setup);
  const auto sizes = *rc::gen::container<std::vector<std::size_t>>(
      rc::gen::inRange<std::size_t>(0, 3 * max_small_size));
  const std::size_t align = *gen_align();
  for (std::size_t size : sizes) {
    void* p = h.heap->allocate(size, align);
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    RC_ASSERT(addr != 0u);
    RC_ASSERT(addr % align == 0);
    const unsigned cls = testing::size_to_class(size, align);
    PointerInfo info = h.heap->find_object(p);
    RC_ASSERT(info.kind == PointerKind::object_start);
    RC_ASSERT(info.span_class == cls);
    RC_ASSERT(h.heap->usable_size(p) >= size);
    if (cls != 0) {
      RC_ASSERT(h.heap->usable_size(p) == find_class(cls)->size);
    } else {
      RC_ASSERT(addr % page_size == 0);  // a large object starts its span
    }
  }
  RC_ASSERT(h.errors.count() == 0u);
}

}  // namespace spanheap::props
