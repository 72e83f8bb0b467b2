// sweeper: see sweeper.hpp.
#include "sweeper.hpp"

#include <new>
#include <system_error>
#include <thread>

#include "cache.hpp"
#include "heap_state.hpp"
#include "proc.hpp"
#include "report.hpp"
#include "sweep.hpp"

namespace spanheap::detail {

bool sweep_done(const HeapState& heap) noexcept {
  const SweepState& ss = heap.sweep;
  // Order matters: each counter is monotone within a cycle except `active`, which an owner
  // raises before it lowers `unswept`.
  return ss.stale_procs.load(std::memory_order_seq_cst) == 0 &&
         ss.unswept.load(std::memory_order_seq_cst) == 0 &&
         ss.active.load(std::memory_order_seq_cst) == 0;
}

bool ensure_swept(HeapState& heap, Span* span, ProcState* self) {
  const std::uint32_t sg = heap.sg();
  for (unsigned spins = 0;; spins++) {
    if (span->state.load(std::memory_order_acquire) != SpanState::in_use) return false;
    const std::uint32_t g = span->sweepgen.load(std::memory_order_acquire);
    if (g == sg || g == sg + 3) return true;  // swept: sg, or sg+3 (Go #27997: accept both)
    if (g == sg - 2) {
      Central& central = heap.central[span->cls()];
      SweepOwner owner;
      {
        LockGuard lock(central.mu);
        owner = try_acquire(heap, central, span);
      }
      if (owner) {
        // free() judges the pointer against this span's slots, so the span must not vanish into
        // the page heap because our own sweep emptied it (the next cycle frees it).
        sweep_for_free(heap, std::move(owner));
        return false;  // the span may have been freed: the caller looks the pointer up again
      }
    } else if (g == sg + 1) {
      // Stale cached span: its P must flush it. Help if that P is idle (the ragged barrier's
      // job, done early); otherwise its holder flushes at acquire, so wait.
      const int owner_p = span->cache_owner(std::memory_order_acquire);
      if (owner_p >= 0 && static_cast<unsigned>(owner_p) < heap.nprocs) {
        ProcState& p = heap.proc(static_cast<unsigned>(owner_p));
        if (try_take_idle(heap, p)) {
          if (cache_is_stale(heap.sg(), p.cache))
            cache_flush(heap, p, FlushKind::barrier, /*keep_empty=*/true);
          release_proc(p);
          continue;
        }
      }
      // The owner may be stopped by a stop-the-world that is waiting for our P: waiting here
      // would deadlock. Give our P up, take it back after the restart, and let the caller look
      // the pointer up again (the cycle may have moved on meanwhile). Found by stw_flush_stress.
      if (self != nullptr && heap.world.stopped.load(std::memory_order_seq_cst)) {
        const unsigned i = self->index;
        release_proc(*self);
        acquire_proc(heap, i);
        return false;
      }
    } else if (g != sg - 1) {
      SPANHEAP_CHECK(&heap, false, "span with an impossible sweepgen (INV-S1)");
      return true;
    }
    if (spins > 64) std::this_thread::yield();
  }
}

namespace {

// Parks until a cycle leaves work (work_epoch moves past `seen`) or the heap shuts down; returns
// false on shutdown.
bool park(SweepState& ss, std::uint32_t& seen) {
  for (;;) {
    if (ss.shutdown.load(std::memory_order_acquire)) return false;
    const std::uint32_t epoch = ss.work_epoch.load(std::memory_order_acquire);
    if (epoch != seen) {
      seen = epoch;
      return true;
    }
    ss.work_epoch.wait(seen, std::memory_order_acquire);
  }
}

void sweeper_main(HeapState* heap, std::uint32_t seen) {
  for (;;) {
    if (!park(heap->sweep, seen)) return;
    // One span per slot acquisition: the world can stop between any two spans (Go #73499: a
    // sweeper must never hold off a stop-the-world).
    for (;;) {
      ProcState& slot = acquire_sweep_slot(*heap);
      const bool swept = sweep_one(*heap, SweepKind::background);
      release_proc(slot);
      if (!swept) break;
    }
  }
}

}  // namespace

void start_background_sweepers(HeapState& heap) {
  while (heap.sweeper_threads.size() < heap.sweepers_wanted) {
    const auto i = static_cast<unsigned>(heap.sweeper_threads.size());
    try {
      if (SPANHEAP_UNLIKELY(heap.fail_thread_starts != 0)) {
        heap.fail_thread_starts--;
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                "injected by testing::fail_thread_starts");
      }
      // Started parked at the current epoch: the wake that follows hands it this cycle's work.
      heap.sweeper_threads.emplace_back(sweeper_main, &heap,
                                        heap.sweep.work_epoch.load(std::memory_order_relaxed));
    } catch (const std::system_error& e) {
      // Not fatal: allocating threads sweep proportionally and on demand, and the next cycle's
      // termination sweeps the rest, as with Options::sweepers = 0. Not retried: one report.
      heap.sweepers_wanted = i;
      report(&heap, ErrorKind::out_of_memory, nullptr,
             "cannot start background sweeper {} of {} ({}); continuing with {}", i + 1,
             heap.options.sweepers, e.what(), i);
      return;
    }
  }
}

void stop_background_sweepers(HeapState& heap) {
  heap.sweep.shutdown.store(true, std::memory_order_release);
  heap.sweep.work_epoch.fetch_add(1, std::memory_order_release);
  heap.sweep.work_epoch.notify_all();
  for (std::thread& t : heap.sweeper_threads) t.join();
  heap.sweeper_threads.clear();
}

void forget_background_sweepers(HeapState& heap) {
  // std::thread is only a handle: end each one's lifetime without its destructor (which would
  // terminate on a joinable thread) and without pthread_join/detach on a thread that is not ours.
  for (std::thread& t : heap.sweeper_threads) new (&t) std::thread();
  heap.sweeper_threads.clear();
}

void wake_background_sweepers(HeapState& heap) {
  // Started lazily, at the first cycle that leaves work (a heap that never cycles, or a fork()
  // child that execs at once, never pays for threads).
  if (heap.sweeper_threads.size() < heap.sweepers_wanted) start_background_sweepers(heap);
  if (heap.sweeper_threads.empty()) return;
  heap.sweep.work_epoch.fetch_add(1, std::memory_order_release);
  heap.sweep.work_epoch.notify_all();
}

}  // namespace spanheap::detail
