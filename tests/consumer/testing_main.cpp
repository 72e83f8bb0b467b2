// A consumer of spanheap::testing: a heap over the fake OS memory, one injected failure that must
// surface as an out_of_memory report, and a snapshot of the heap.
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <cstdio>

int main() {
  spanheap::testing::FakeOsMemory os;
  spanheap::testing::RecordingHandler reports;
  spanheap::Options options;
  options.procs = 1;
  options.sweepers = 0;
  options.gc_percent = 0;
  options.os = &os;
  options.error_handler = reports.handler();
  spanheap::Heap heap(options);

  os.fail_reserves(1);
  if (heap.allocate(64) != nullptr || reports.count(spanheap::ErrorKind::out_of_memory) != 1) {
    std::fprintf(stderr, "consumer_testing: the injected reserve failure was not reported\n");
    return 1;
  }
  void* p = heap.allocate(64);
  spanheap::testing::HeapSnapshot snap = spanheap::testing::snapshot(heap);
  if (p == nullptr || snap.spans.empty()) {
    std::fprintf(stderr, "consumer_testing: no span after a successful allocation\n");
    return 1;
  }
  heap.free(p);
  std::printf("consumer_testing: ok (%zu span(s))\n", snap.spans.size());
  return 0;
}
