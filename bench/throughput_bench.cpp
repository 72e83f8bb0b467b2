// bench/throughput_bench.cpp: allocator throughput workloads (Google Benchmark), one source for
// every allocator; bench/allocators.hpp picks the allocator at compile time and
// bench/CMakeLists.txt builds one binary per allocator. docs/performance.md has the results.
//
// Workloads (each op is counted in items_per_second; ns/op = 1e9 / items_per_second):
//   churn           a ring of live objects of random size 8-512 B, one random slot replaced
//                   (free + allocate) per op; one ring per thread, 1 and 2 threads.
//   churn_small     the same with a cache-resident ring of 1024 objects, one thread.
//   xthread_exchange  larson-like: two threads share one array of slots; each op allocates an
//                   object and swaps it into a random slot, freeing what was there, which the
//                   other thread allocated about half of the time.
//   xthread_pc      producer/consumer: thread 0 allocates, thread 1 frees, handing every object
//                   over a bounded single-producer single-consumer queue (op = one object).
//   burst           allocate 4096 objects of random size 8-512 B, then free them all (op = one
//                   allocate + its free).
//   sizes/<lo>-<hi> churn over a ring of objects whose sizes are spanheap's size classes in
//                   (lo, hi], and into large objects (sizes/large): covers every class.
// Every benchmark also reports peak_rss_mib (getrusage ru_maxrss of the process, so ci/bench runs
// each benchmark in its own process), minflt_per_kop (the process's minor page faults during the
// measured loop per 1,000 ops: an allocator that gives pages back and faults them in again pays
// here) and, for spanheap, the cycles it ran and its longest pause, both in the loop.
//
// Besides the --benchmark_* flags: --smoke (tiny run time, for ctest), --seconds S (minimum time
// per benchmark), --iterations N (exactly N iterations a thread, for instruction counts), --seed N
// (the random sizes and slots; default 1).
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <spanheap/version.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "allocators.hpp"
#include "spanheap/spanheap.hpp"
#include "spanheap/testing.hpp"

namespace spanheap::bench {

namespace {
std::uint64_t g_seed = 1;
std::string g_repro;  // the command line, printed when a benchmark fails
}  // namespace

#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
spanheap::Heap& bench_heap() {
  static spanheap::Heap heap([] {
    spanheap::Options o = spanheap::Options::from_env();
    // Any report is a failed run: print it with the repro line and stop.
    o.error_handler = [](const spanheap::ErrorReport& r) {
      std::fprintf(stderr, "%s\nrepro: %s\n", r.message.c_str(), g_repro.c_str());
      std::abort();
    };
    return o;
  }());
  return heap;
}
#endif

namespace {

// splitmix64: cheap, and every allocator sees the same sequence for the same seed.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

// Precomputed (slot, size) pairs, so the measured loop spends no time drawing random numbers.
struct Draws {
  static constexpr std::size_t count = 1 << 16;  // power of two: the loop masks, never divides
  std::vector<std::uint32_t> slot;
  std::vector<std::uint32_t> size;
  Draws(std::uint64_t seed, std::size_t slots, const std::vector<std::uint32_t>& sizes)
      : slot(count), size(count) {
    Rng rng(seed);
    for (std::size_t i = 0; i < count; i++) {
      slot[i] = static_cast<std::uint32_t>(rng.next() % slots);
      size[i] = sizes[rng.next() % sizes.size()];
    }
  }
};

std::vector<std::uint32_t> range_sizes(std::uint32_t lo, std::uint32_t hi) {
  std::vector<std::uint32_t> v;
  for (std::uint32_t s = lo; s <= hi; s++) v.push_back(s);
  return v;
}

// spanheap's size classes in (lo, hi]: the same sizes for every allocator.
std::vector<std::uint32_t> class_sizes(std::size_t lo, std::size_t hi) {
  std::vector<std::uint32_t> v;
  for (const auto& c : spanheap::testing::size_classes())
    if (c.size > lo && c.size <= hi) v.push_back(static_cast<std::uint32_t>(c.size));
  return v;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// Minor page faults of the whole process so far (every thread's).
long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

[[noreturn, gnu::noinline, gnu::cold]] void allocation_failed(benchmark::State& state,
                                                              std::size_t size) {
  std::fprintf(stderr, "%s: allocation of %zu bytes failed (thread %d)\nrepro: %s\n",
               Allocator::name(), size, state.thread_index(), g_repro.c_str());
  std::abort();
}

// Forced inline, with its failure report out of line: left to the compiler, GCC inlined it into
// the loops of some allocators' binaries and not others', which cost the others ~8 instructions
// an op of harness (a call, a frame) that no allocator's code asked for.
[[gnu::always_inline]] inline void* checked_allocate(benchmark::State& state, std::size_t size) {
  void* p = Allocator::allocate(size);
  if (p == nullptr) [[unlikely]]
    allocation_failed(state, size);
  // Touch the object, as a program would: an allocator that hands out untouched pages does not
  // get their page faults for free.
  static_cast<volatile char*>(p)[0] = 1;
  return p;
}

#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
// The longest pause of the cycles run between two snapshots (the measured loop), not the
// process's: the setup's cycles (filling a ring, an earlier benchmark's) are not the loop's. Exact
// when the loop ran no cycle or one, or when one of its cycles set the process's maximum; else the
// upper edge of the highest pause bucket the loop's cycles added to (a bound, at most twice the
// pause).
double loop_pause_max_us(const spanheap::Stats& before, const spanheap::Stats& after) {
  const std::uint64_t cycles = after.cycles - before.cycles;
  if (cycles == 0) return 0.0;
  if (cycles == 1 || after.pause_max_ns > before.pause_max_ns)
    return static_cast<double>(cycles == 1 ? after.pause_last_ns : after.pause_max_ns) / 1000.0;
  for (std::size_t i = spanheap::pause_buckets - 1; i > 0; i--) {
    if (after.pause_histogram[i] != before.pause_histogram[i])
      return i + 1 == spanheap::pause_buckets ? static_cast<double>(after.pause_max_ns) / 1000.0
                                              : static_cast<double>(std::uint64_t{1} << i);
  }
  return 1.0;  // bucket 0: under a microsecond
}
#endif

// Per-benchmark extras. peak RSS is the process's, so every thread reports the same value and the
// average over threads is that value; page faults are the process's too, counted by thread 0.
// start() goes right before the measured loop, so that setting up the workload (filling a ring)
// is not counted as its faults.
struct Extras {
#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
  spanheap::Stats before = bench_heap().stats();
#endif
  long faults_at_start = 0;
  void start() { faults_at_start = minor_faults(); }
  // `items`: this thread's ops, as given to SetItemsProcessed.
  void finish(benchmark::State& state, std::int64_t items) {
    state.counters["peak_rss_mib"] =
        benchmark::Counter(peak_rss_mib(), benchmark::Counter::kAvgThreads);
    // Thread 0 alone: it starts counting after the shared setup (xthread_exchange's slots), and
    // every thread has left the loop (a barrier) before it reads the count again.
    if (state.thread_index() == 0) {
      const double ops = static_cast<double>(items) * state.threads();
      state.counters["minflt_per_kop"] =
          ops > 0 ? static_cast<double>(minor_faults() - faults_at_start) * 1000.0 / ops : 0.0;
    }
#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
    if (state.thread_index() == 0) {
      const spanheap::Stats after = bench_heap().stats();
      state.counters["cycles"] = static_cast<double>(after.cycles - before.cycles);
      state.counters["pause_max_us"] = loop_pause_max_us(before, after);
      // Owner collections: none under the quarantine policy (ci/bench's report checks it).
      state.counters["collections"] = static_cast<double>(after.collections - before.collections);
      if (after.errors != before.errors) state.SkipWithError("spanheap reported errors");
    }
#endif
  }
};

// ---------------------------------------------------------------------------------------------
// churn and sizes: replace one random slot of a private ring per op.
void ring_churn(benchmark::State& state, std::size_t ring_size,
                const std::vector<std::uint32_t>& sizes) {
  Extras extras;
  const Draws draws(g_seed * 1000003 + static_cast<std::uint64_t>(state.thread_index()), ring_size,
                    sizes);
  std::vector<void*> ring(ring_size);
  Rng fill(g_seed + 7);
  for (auto& p : ring) p = checked_allocate(state, sizes[fill.next() % sizes.size()]);
  std::size_t i = 0;
  extras.start();
  for (auto _ : state) {
    const std::size_t k = i++ & (Draws::count - 1);
    void*& slot = ring[draws.slot[k]];
    Allocator::deallocate(slot);
    slot = checked_allocate(state, draws.size[k]);
  }
  for (void* p : ring) Allocator::deallocate(p);
  state.SetItemsProcessed(state.iterations());
  extras.finish(state, state.iterations());
}

constexpr std::size_t churn_ring = 1 << 16;  // ~17 MiB live per thread at 8-512 B

void BM_churn(benchmark::State& state) { ring_churn(state, churn_ring, range_sizes(8, 512)); }

// The same churn over 1024 objects (~260 KiB, cache-resident): what is left is the allocator's own
// instructions and atomics, not the ring's cache misses.
void BM_churn_small(benchmark::State& state) { ring_churn(state, 1024, range_sizes(8, 512)); }

void BM_sizes(benchmark::State& state) {
  const auto lo = static_cast<std::size_t>(state.range(0));
  const auto hi = static_cast<std::size_t>(state.range(1));
  std::vector<std::uint32_t> sizes;
  std::size_t ring = 1024;
  if (lo >= spanheap::max_small_size) {
    // Large objects: a few sizes past the last class, up to 1 MiB; a small ring keeps the live
    // set near 16 MiB.
    sizes = {40 << 10, 64 << 10, 100 << 10, 256 << 10, 1 << 20};
    ring = 48;
  } else {
    sizes = class_sizes(lo, hi);
    ring = std::clamp<std::size_t>((std::size_t{8} << 20) / hi, 64, 4096);
  }
  ring_churn(state, ring, sizes);
}

// ---------------------------------------------------------------------------------------------
// xthread_exchange: two threads, one shared slot array.
constexpr std::size_t exchange_slots = 1 << 14;
std::unique_ptr<std::atomic<void*>[]> g_slots;

void BM_xthread_exchange(benchmark::State& state) {
  Extras extras;
  const auto sizes = range_sizes(8, 512);
  const Draws draws(g_seed * 1000003 + static_cast<std::uint64_t>(state.thread_index()),
                    exchange_slots, sizes);
  if (state.thread_index() == 0) {
    // The other threads wait at the loop's start barrier until this is done.
    g_slots = std::make_unique<std::atomic<void*>[]>(exchange_slots);
    for (std::size_t j = 0; j < exchange_slots; j++) g_slots[j].store(checked_allocate(state, 64));
  }
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  extras.start();
  for (auto _ : state) {
    const std::size_t k = i++ & (Draws::count - 1);
    void* fresh = checked_allocate(state, draws.size[k]);
    Allocator::deallocate(g_slots[draws.slot[k]].exchange(fresh, std::memory_order_acq_rel));
  }
  // Every thread has left the loop (its end is a barrier) before thread 0 frees the slots.
  if (state.thread_index() == 0) {
    for (std::size_t j = 0; j < exchange_slots; j++) Allocator::deallocate(g_slots[j].load());
    g_slots.reset();
  }
  state.SetItemsProcessed(state.iterations());
  extras.finish(state, state.iterations());
}

// ---------------------------------------------------------------------------------------------
// xthread_pc: a bounded SPSC queue from the producer (thread 0) to the consumer (thread 1). Both
// threads run the same number of iterations, so every object produced is consumed.
struct SpscQueue {
  static constexpr std::size_t capacity = 1024;
  alignas(64) std::atomic<std::size_t> head{0};  // next slot to pop (consumer)
  alignas(64) std::atomic<std::size_t> tail{0};  // next slot to push (producer)
  alignas(64) void* items[capacity]{};

  void push(void* p) {
    const std::size_t t = tail.load(std::memory_order_relaxed);
    unsigned spins = 0;
    while (t - head.load(std::memory_order_acquire) == capacity)
      if (++spins > 64) std::this_thread::yield();
    items[t % capacity] = p;
    tail.store(t + 1, std::memory_order_release);
  }
  void* pop() {
    const std::size_t h = head.load(std::memory_order_relaxed);
    unsigned spins = 0;
    while (tail.load(std::memory_order_acquire) == h)
      if (++spins > 64) std::this_thread::yield();
    void* p = items[h % capacity];
    head.store(h + 1, std::memory_order_release);
    return p;
  }
};
std::unique_ptr<SpscQueue> g_queue;

void BM_xthread_pc(benchmark::State& state) {
  Extras extras;
  const auto sizes = range_sizes(8, 512);
  const Draws draws(g_seed * 1000003, 1, sizes);
  if (state.thread_index() == 0) g_queue = std::make_unique<SpscQueue>();
  std::size_t i = 0;
  extras.start();
  if (state.thread_index() == 0) {
    for (auto _ : state)
      g_queue->push(checked_allocate(state, draws.size[i++ & (Draws::count - 1)]));
  } else {
    for (auto _ : state) Allocator::deallocate(g_queue->pop());
  }
  if (state.thread_index() == 0) g_queue.reset();
  state.SetItemsProcessed(state.iterations());
  extras.finish(state, state.iterations());
}

// ---------------------------------------------------------------------------------------------
// burst: allocate a batch, then free all of it.
constexpr std::size_t burst_objects = 4096;

void BM_burst(benchmark::State& state) {
  Extras extras;
  const Draws draws(g_seed * 1000003, 1, range_sizes(8, 512));
  std::vector<void*> batch(burst_objects);
  std::size_t i = 0;
  extras.start();
  for (auto _ : state) {
    for (auto& p : batch) p = checked_allocate(state, draws.size[i++ & (Draws::count - 1)]);
    for (void* p : batch) Allocator::deallocate(p);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(burst_objects));
  extras.finish(state, state.iterations() * static_cast<std::int64_t>(burst_objects));
}

// --iterations N: every benchmark runs exactly N iterations (per thread) instead of for a time, so
// that instruction counts (callgrind) of two builds count the same operations: with a time
// budget, a slower run does fewer, and the ring's fill and teardown weigh more in it.
std::int64_t g_iterations = 0;

benchmark::internal::Benchmark* fixed(benchmark::internal::Benchmark* b) {
  return g_iterations > 0 ? b->Iterations(g_iterations) : b;
}

void register_benchmarks() {
  fixed(benchmark::RegisterBenchmark("churn", BM_churn)->Threads(1)->Threads(2)->UseRealTime());
  fixed(benchmark::RegisterBenchmark("churn_small", BM_churn_small)->UseRealTime());
  fixed(benchmark::RegisterBenchmark("xthread_exchange", BM_xthread_exchange)
            ->Threads(2)
            ->UseRealTime());
  fixed(benchmark::RegisterBenchmark("xthread_pc", BM_xthread_pc)->Threads(2)->UseRealTime());
  fixed(benchmark::RegisterBenchmark("burst", BM_burst)->UseRealTime());
  // Every size class, in bands, then large objects.
  fixed(benchmark::RegisterBenchmark("sizes", BM_sizes)
            ->Args({0, 128})
            ->Args({128, 1024})
            ->Args({1024, 8192})
            ->Args({8192, 32768})
            ->Args({32768, 1 << 20})
            ->ArgNames({"lo", "hi"})
            ->UseRealTime());
}

}  // namespace
}  // namespace spanheap::bench

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  using namespace spanheap::bench;
  // Our flags first; everything else goes to Google Benchmark.
  std::vector<std::string> args;
  args.emplace_back(argv[0]);
  // The heap settings in effect belong to the repro line (Options::from_env reads them).
  for (const char* var :
       {"SPANHEAP_PROCS", "SPANHEAP_SWEEPERS", "SPANHEAP_FLUSH", "SPANHEAP_GC_PERCENT",
        "SPANHEAP_MEMORY_LIMIT", "SPANHEAP_CHECKS", "SPANHEAP_POISON", "SPANHEAP_CLOBBER",
        "SPANHEAP_COLLECT_EVERY", "SPANHEAP_VERIFY", "SPANHEAP_TRACE", "SPANHEAP_REUSE",
        "SPANHEAP_BINDING", "SPANHEAP_ARENA_BYTES", "SPANHEAP_COMMIT_BYTES"}) {
    if (const char* value = std::getenv(var)) g_repro += std::string(var) + "=" + value + " ";
  }
  for (int i = 0; i < argc; i++) {
    g_repro += (i ? " " : "");
    g_repro += argv[i];
  }
  std::string min_time;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--smoke") {
      min_time = "0.01";
    } else if (a == "--seconds") {
      min_time = value("--seconds");
    } else if (a == "--iterations") {
      g_iterations = std::strtoll(value("--iterations").c_str(), nullptr, 10);
      if (g_iterations <= 0) {
        std::fprintf(stderr, "--iterations needs a positive count\n");
        std::exit(2);
      }
    } else if (a == "--seed") {
      g_seed = std::strtoull(value("--seed").c_str(), nullptr, 10);
    } else {
      args.push_back(a);
    }
  }
  if (!min_time.empty()) args.insert(args.begin() + 1, "--benchmark_min_time=" + min_time);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  int n = static_cast<int>(cargs.size());
  benchmark::Initialize(&n, cargs.data());
  if (benchmark::ReportUnrecognizedArguments(n, cargs.data())) return 2;
  benchmark::AddCustomContext("allocator", Allocator::name());
  benchmark::AddCustomContext("seed", std::to_string(g_seed));
#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
  bench_heap_ptr = &bench_heap();
  // ci/bench runs this binary twice, with the default reuse policy and with SPANHEAP_REUSE=
  // next_cycle; the JSON says which one each file measured.
  benchmark::AddCustomContext(
      "spanheap_reuse",
      bench_heap().options().reuse == spanheap::ReusePolicy::owner ? "owner" : "next_cycle");
#endif
  if (!Allocator::self_check()) {
    std::fprintf(
        stderr,
        "%s: allocate() does not reach %s in this binary (wrong library linked?)\nrepro: %s\n",
        Allocator::name(), Allocator::name(), g_repro.c_str());
    return 1;
  }
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
