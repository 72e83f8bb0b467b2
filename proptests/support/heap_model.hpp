// heap_model: the rc::state model and commands shared by the stateful property files. The model
// is what rapidcheck can know without running the heap — the heap's sweepgen, which Ps are stale,
// which objects are live — so it can generate and shrink valid command sequences; every command's
// run() drives the real heap through a CheckedHeap (heap_oracle.hpp), which compares each snapshot
// with the previous one and with the object shadow. See docs/property-tests.md.
#pragma once

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <vector>

#include "heap_oracle.hpp"

namespace spanheap::props {

struct ModelObject {
  std::size_t size = 0;
  std::size_t align = 16;
};

// P staleness as the model knows it: flush_all may or may not retire flush_gen of an empty cache.
enum class Staleness : std::uint8_t { current, stale, unknown };

struct Model {
  HeapSetup setup;
  unsigned cycles = 0;  // begin_cycle/collect so far: sweepgen = initial + 2 * cycles
  std::vector<Staleness> stale;
  std::map<int, ModelObject> live;  // id -> object, freed objects leave the model
  int next_id = 0;
  // A facade allocation of a small class has run. Until then the oracle may not know the
  // facade's P (without a binding to show it, only the span such an allocation caches names it),
  // so facade frees and large facade allocations wait for one.
  bool facade_warm = false;

  explicit Model(const HeapSetup& s) : setup(s), stale(s.procs, Staleness::current) {}
};

struct Sut {
  explicit Sut(const HeapSetup& setup, CheckSet checks = {})
      : checked(setup, checks), initial_sweepgen(checked.last().sweepgen) {}
  CheckedHeap checked;
  std::uint32_t initial_sweepgen;
  std::map<int, std::uintptr_t> ptr;  // model id -> address
};

using Command = rc::state::Command<Model, Sut>;
using CommandPtr = std::shared_ptr<const Command>;

// Which commands a generator offers, by weight (0 = never).
struct CommandMix {
  unsigned allocate = 30;
  unsigned allocate_large = 4;
  unsigned fill = 4;
  unsigned free = 25;
  unsigned wake = 5;
  unsigned idle = 1;
  unsigned flush_idle = 4;
  unsigned ragged_barrier = 3;
  unsigned sweep_one = 8;
  unsigned proportional_sweep = 3;
  unsigned begin_cycle = 5;
  unsigned collect = 3;
  unsigned flush_all = 2;
  // The facade (Heap::allocate / Heap::free on the calling thread's own P: the fast paths).
  unsigned allocate_facade = 10;
  unsigned allocate_large_facade = 1;
  unsigned fill_facade = 2;
  unsigned free_facade = 10;
  // Sizes for small allocations: a few classes keep spans shared and refills frequent.
  std::vector<std::size_t> small_sizes = {8, 16, 48, 256, 1024, 3072, 8192, 32768};
  // Commands a property file adds to the mix (error_props: bad frees), with their weights.
  std::vector<std::pair<unsigned, std::function<rc::Gen<CommandPtr>(const Model&)>>> extra;
};

// A generator of one command for the given model state, with the mix's weights.
rc::Gen<CommandPtr> gen_command(const Model& model, const CommandMix& mix);

// Commands, also usable directly to script the Go-bug scenarios.
// Allocations take the model's next ids (0, 1, 2, ... in script order); frees name them.
// `proc` may be `facade`: the call goes to the heap itself (Heap::allocate, Heap::free), whose
// fast paths enter the calling thread's own P: facade_first_proc (heap_oracle.hpp), which the
// model treats the command as running on and the oracle checks after the call (it learns the P
// from the thread's binding, or without one from the span a small facade allocation came from:
// hence a facade free or large allocation needs `Model::facade_warm`).
inline constexpr unsigned facade = ~0u;
CommandPtr make_allocate(unsigned proc, std::size_t size, std::size_t align = 16);
CommandPtr make_fill(unsigned proc, std::size_t size, unsigned count);
CommandPtr make_free(unsigned proc, int id);
CommandPtr make_facade_allocate(std::size_t size, std::size_t align = 16);
CommandPtr make_facade_fill(std::size_t size, unsigned count);
CommandPtr make_facade_free(int id);
CommandPtr make_wake(unsigned proc);
CommandPtr make_idle(unsigned proc);
CommandPtr make_flush_idle(unsigned proc);
CommandPtr make_ragged_barrier();
CommandPtr make_sweep_one();
CommandPtr make_proportional_sweep(std::size_t bytes);
CommandPtr make_begin_cycle();
CommandPtr make_collect();
CommandPtr make_flush_all();

// The end of every command's run(): the CheckedHeap's checks, then the heap's sweepgen and
// flush_gen against the model's next state; fails the property with every violation.
void finish_command(const Command& cmd, const Model& s0, Sut& sut, const Step& step);

// Runs `commands` from `model` on `sut` (checking preconditions), advancing `model`.
void run_script(const std::vector<CommandPtr>& commands, Model& model, Sut& sut);

// A generated command sequence from `model` on `sut` (after a scripted prefix, say).
void check_generated(const Model& model, Sut& sut, const CommandMix& mix);

// The whole stateful property: a fresh heap, then a generated command sequence.
void check_stateful(const HeapSetup& setup, const CommandMix& mix, CheckSet checks = {});

}  // namespace spanheap::props
