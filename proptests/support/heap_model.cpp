// heap_model: commands of the stateful heap model (see heap_model.hpp). Each command's apply()
// is the model's prediction, run() drives the heap through the CheckedHeap and compares the heap's
// sweepgen and flush_gen with the model before the CheckedHeap checks everything else.
#include "heap_model.hpp"

#include <fmt/core.h>

#include <algorithm>

namespace spanheap::props {
namespace {

unsigned class_nelems(std::size_t size, std::size_t align) {
  const unsigned cls = testing::size_to_class(size, align);
  for (const auto& c : testing::size_classes())
    if (c.span_class == cls) return c.nelems;
  return 1;
}

std::string proc_name(unsigned proc) {
  return proc == facade ? std::string("facade") : fmt::format("P{}", proc);
}

// The P a command runs on: a facade call enters the calling thread's own P, which is
// facade_first_proc (the oracle checks that after every facade call).
unsigned running_proc(unsigned proc) { return proc == facade ? facade_first_proc : proc; }

// A free may flush the idle stale P that caches the object's span, which the model cannot name.
void forget_stale(Model& m) {
  for (auto& s : m.stale)
    if (s == Staleness::stale) s = Staleness::unknown;
}

}  // namespace

void finish_command(const Command& cmd, const Model& s0, Sut& sut, const Step& step) {
  std::vector<std::string> v = sut.checked.finish(step);
  const Model s1 = cmd.nextState(s0);
  const HeapSnapshot& snap = sut.checked.last();
  const std::uint32_t want_sg = sut.initial_sweepgen + 2 * s1.cycles;
  if (snap.sweepgen != want_sg)
    v.insert(v.begin(),
             fmt::format("model: sweepgen {} but the model expects {}", snap.sweepgen, want_sg));
  for (std::size_t i = 0; i < s1.stale.size() && i < snap.procs.size(); ++i) {
    if (s1.stale[i] == Staleness::unknown) continue;
    const bool stale = snap.procs[i].flush_gen_delta == -2;
    if (stale != (s1.stale[i] == Staleness::stale))
      v.insert(v.begin(), fmt::format("model: P{} is {} but the model expects it {}", i,
                                      stale ? "stale" : "current",
                                      s1.stale[i] == Staleness::stale ? "stale" : "current"));
  }
  if (!v.empty()) {
    std::ostringstream os;
    cmd.show(os);
    RC_FAIL(fmt::format("after {}:\n{}", os.str(), join(v)));
  }
}

namespace {

struct Allocate : Command {
  unsigned proc;
  std::size_t size;
  std::size_t align;
  Allocate(unsigned p, std::size_t s, std::size_t a) : proc(p), size(s), align(a) {}
  bool small() const { return testing::size_to_class(size, align) != 0; }
  void checkPreconditions(const Model& m) const override {
    if (proc == facade) RC_PRE(small() || m.facade_warm);
  }
  void apply(Model& m) const override {
    m.live[m.next_id++] = ModelObject{size, align};
    m.stale[running_proc(proc)] = Staleness::current;
    if (proc == facade) m.facade_warm = m.facade_warm || small();
  }
  void run(const Model& m, Sut& sut) const override {
    Step step;
    step.op = Op::allocate;
    step.proc = proc == facade ? -1 : static_cast<int>(proc);
    step.size = size;
    step.align = align;
    void* p = proc == facade ? sut.checked.allocate_facade(step, size, align)
                             : sut.checked.allocate(step, proc, size, align);
    sut.ptr[m.next_id] = reinterpret_cast<std::uintptr_t>(p);
    finish_command(*this, m, sut, step);
  }
  void show(std::ostream& os) const override {
    os << "allocate(" << proc_name(proc) << ", " << size << ", align " << align << ")";
  }
};

struct Fill : Command {
  unsigned proc;
  std::size_t size;
  unsigned count;
  Fill(unsigned p, std::size_t s, unsigned c) : proc(p), size(s), count(c) {}
  void apply(Model& m) const override {
    for (unsigned i = 0; i < count; ++i) m.live[m.next_id++] = ModelObject{size, 16};
    m.stale[running_proc(proc)] = Staleness::current;
    if (proc == facade)
      m.facade_warm = m.facade_warm || (count > 0 && testing::size_to_class(size, 16) != 0);
  }
  void run(const Model& m, Sut& sut) const override {
    Step step;
    step.op = Op::fill;
    step.proc = proc == facade ? -1 : static_cast<int>(proc);
    step.size = size;
    // Through the facade, the first call leaves the thread bound to its P (when the heap binds)
    // and the others enter by that binding, the bound fast path: no snapshot between them revokes
    // it.
    for (unsigned i = 0; i < count; ++i) {
      void* p = proc == facade ? sut.checked.allocate_facade(step, size, 16)
                               : sut.checked.allocate(step, proc, size, 16);
      sut.ptr[m.next_id + static_cast<int>(i)] = reinterpret_cast<std::uintptr_t>(p);
    }
    finish_command(*this, m, sut, step);
  }
  void show(std::ostream& os) const override {
    os << "fill(" << proc_name(proc) << ", " << count << " x " << size << ")";
  }
};

struct Free : Command {
  unsigned proc;
  int id;
  Free(unsigned p, int i) : proc(p), id(i) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(m.live.count(id) == 1);
    if (proc == facade) {
      RC_PRE(m.facade_warm);
    } else {
      RC_PRE(proc < m.setup.procs);
    }
  }
  void apply(Model& m) const override {
    m.live.erase(id);
    // The freeing P flushes if stale; the heap may also flush the idle stale P that caches the
    // object's span (the oracle checks that exactly), which the model cannot name.
    forget_stale(m);
    m.stale[running_proc(proc)] = Staleness::current;
  }
  void run(const Model& m, Sut& sut) const override {
    Step step;
    step.op = Op::free;
    step.proc = proc == facade ? -1 : static_cast<int>(proc);
    const std::uintptr_t p = sut.ptr.at(id);
    if (p == 0) RC_FAIL(fmt::format("object #{} was never allocated", id));
    if (proc == facade) {
      sut.checked.free_facade(step, p);
    } else {
      sut.checked.free(step, proc, p);
    }
    finish_command(*this, m, sut, step);
  }
  void show(std::ostream& os) const override {
    os << "free(" << proc_name(proc) << ", #" << id << ")";
  }
};

// Commands without arguments beyond an optional P.
struct Simple : Command {
  Op op;
  unsigned proc;
  std::size_t bytes;
  Simple(Op o, unsigned p = 0, std::size_t b = 0) : op(o), proc(p), bytes(b) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(proc < m.setup.procs); }
  void apply(Model& m) const override {
    const bool lazy = m.setup.flush == FlushPolicy::lazy;
    switch (op) {
      case Op::wake:
      case Op::flush_idle:
        m.stale[proc] = Staleness::current;
        break;
      case Op::ragged_barrier:
        std::fill(m.stale.begin(), m.stale.end(), Staleness::current);
        break;
      case Op::begin_cycle:
        ++m.cycles;
        std::fill(m.stale.begin(), m.stale.end(), lazy ? Staleness::stale : Staleness::current);
        break;
      case Op::collect:
        ++m.cycles;
        std::fill(m.stale.begin(), m.stale.end(), Staleness::current);
        break;
      case Op::flush_all:
        for (auto& s : m.stale)
          if (s == Staleness::stale) s = Staleness::unknown;
        break;
      default:
        break;
    }
  }
  void run(const Model& m, Sut& sut) const override {
    Step step;
    step.op = op;
    step.proc = static_cast<int>(proc);
    Heap& heap = sut.checked.heap();
    switch (op) {
      case Op::wake:
        heap.proc(proc).wake();
        break;
      case Op::idle:
        break;
      case Op::flush_idle:
        step.result_bool = testing::flush_idle(heap, proc);
        break;
      case Op::ragged_barrier:
        testing::ragged_barrier(heap);
        step.proc = -1;
        break;
      case Op::sweep_one:
        step.result_bool = heap.sweep_one();
        step.proc = -1;
        break;
      case Op::proportional_sweep:
        step.result_count = testing::proportional_sweep(heap, bytes);
        step.proc = -1;
        break;
      case Op::begin_cycle:
        testing::begin_cycle(heap);
        step.proc = -1;
        break;
      case Op::collect:
        heap.collect();
        step.proc = -1;
        break;
      case Op::flush_all:
        testing::flush_all(heap);
        step.proc = -1;
        break;
      default:
        RC_FAIL("not a simple command");
    }
    finish_command(*this, m, sut, step);
  }
  void show(std::ostream& os) const override {
    os << to_string(op);
    if (op == Op::wake || op == Op::idle || op == Op::flush_idle) os << "(P" << proc << ")";
    if (op == Op::proportional_sweep) os << "(" << bytes << " bytes)";
  }
};

}  // namespace

CommandPtr make_allocate(unsigned proc, std::size_t size, std::size_t align) {
  return std::make_shared<const Allocate>(proc, size, align);
}
CommandPtr make_fill(unsigned proc, std::size_t size, unsigned count) {
  return std::make_shared<const Fill>(proc, size, count);
}
CommandPtr make_free(unsigned proc, int id) { return std::make_shared<const Free>(proc, id); }
CommandPtr make_facade_allocate(std::size_t size, std::size_t align) {
  return make_allocate(facade, size, align);
}
CommandPtr make_facade_fill(std::size_t size, unsigned count) {
  return make_fill(facade, size, count);
}
CommandPtr make_facade_free(int id) { return make_free(facade, id); }
CommandPtr make_wake(unsigned proc) { return std::make_shared<const Simple>(Op::wake, proc); }
CommandPtr make_idle(unsigned proc) { return std::make_shared<const Simple>(Op::idle, proc); }
CommandPtr make_flush_idle(unsigned proc) {
  return std::make_shared<const Simple>(Op::flush_idle, proc);
}
CommandPtr make_ragged_barrier() { return std::make_shared<const Simple>(Op::ragged_barrier); }
CommandPtr make_sweep_one() { return std::make_shared<const Simple>(Op::sweep_one); }
CommandPtr make_proportional_sweep(std::size_t bytes) {
  return std::make_shared<const Simple>(Op::proportional_sweep, 0, bytes);
}
CommandPtr make_begin_cycle() { return std::make_shared<const Simple>(Op::begin_cycle); }
CommandPtr make_collect() { return std::make_shared<const Simple>(Op::collect); }
CommandPtr make_flush_all() { return std::make_shared<const Simple>(Op::flush_all); }

rc::Gen<CommandPtr> gen_command(const Model& model, const CommandMix& mix) {
  const unsigned procs = model.setup.procs;
  // rapidcheck's inRange draws from a range scaled by the case's size: at the small sizes of most
  // cases it would offer only P0 and only the first commands of the mix. At the nominal size the
  // draw is uniform (and still shrinks towards 0).
  auto proc = rc::gen::resize(rc::kNominalSize, rc::gen::inRange<unsigned>(0, procs));
  std::vector<int> ids;
  for (const auto& [id, o] : model.live) ids.push_back(id);
  const std::vector<std::size_t> sizes = mix.small_sizes;

  auto small_size = rc::gen::weightedOneOf<std::size_t>(
      {{6, rc::gen::elementOf(sizes)}, {1, rc::gen::inRange<std::size_t>(0, max_small_size + 1)}});
  auto align = rc::gen::weightedOneOf<std::size_t>(
      {{8, rc::gen::just<std::size_t>(16)},
       {1, rc::gen::element<std::size_t>(1, 8, 64, 256, 4096, page_size)}});

  std::vector<std::pair<std::size_t, rc::Gen<CommandPtr>>> options;
  auto add = [&](unsigned weight, rc::Gen<CommandPtr> g) {
    if (weight > 0) options.emplace_back(weight, std::move(g));
  };
  add(mix.allocate, rc::gen::exec([=] { return make_allocate(*proc, *small_size, *align); }));
  add(mix.allocate_large, rc::gen::exec([=] {
        return make_allocate(
            *proc, *rc::gen::inRange<std::size_t>(max_small_size + 1, 40 * page_size), *align);
      }));
  add(mix.fill, rc::gen::exec([=] {
        const std::size_t size = *rc::gen::elementOf(sizes);
        return make_fill(*proc, size, class_nelems(size, 16) + 1);
      }));
  if (!ids.empty())
    add(mix.free, rc::gen::exec([=] { return make_free(*proc, *rc::gen::elementOf(ids)); }));
  add(mix.allocate_facade,
      rc::gen::exec([=] { return make_facade_allocate(*small_size, *align); }));
  add(mix.fill_facade, rc::gen::exec([=] {
        const std::size_t size = *rc::gen::elementOf(sizes);
        return make_facade_fill(size, class_nelems(size, 16) + 1);
      }));
  // Offered once the model's preconditions hold, so that no generated facade command is dropped.
  if (model.facade_warm) {
    add(mix.allocate_large_facade, rc::gen::exec([=] {
          return make_facade_allocate(
              *rc::gen::inRange<std::size_t>(max_small_size + 1, 40 * page_size), *align);
        }));
    // Half of them free the newest object: most often in the span the facade's P allocates
    // from, where the free takes the fast path (free_in_cache) rather than the general one.
    if (!ids.empty())
      add(mix.free_facade, rc::gen::exec([=] {
            return make_facade_free(*rc::gen::weightedOneOf<int>(
                {{1, rc::gen::elementOf(ids)}, {1, rc::gen::just(ids.back())}}));
          }));
  }
  add(mix.wake, rc::gen::exec([=] { return make_wake(*proc); }));
  add(mix.idle, rc::gen::exec([=] { return make_idle(*proc); }));
  add(mix.flush_idle, rc::gen::exec([=] { return make_flush_idle(*proc); }));
  add(mix.ragged_barrier, rc::gen::exec([] { return make_ragged_barrier(); }));
  add(mix.sweep_one, rc::gen::exec([] { return make_sweep_one(); }));
  add(mix.proportional_sweep, rc::gen::exec([] {
        return make_proportional_sweep(*rc::gen::inRange<std::size_t>(1, 1 << 20));
      }));
  add(mix.begin_cycle, rc::gen::exec([] { return make_begin_cycle(); }));
  add(mix.collect, rc::gen::exec([] { return make_collect(); }));
  add(mix.flush_all, rc::gen::exec([] { return make_flush_all(); }));
  for (const auto& [weight, make] : mix.extra) add(weight, make(model));

  // weightedOneOf takes an initializer_list; pick the index by weight ourselves.
  std::size_t total = 0;
  for (const auto& o : options) total += o.first;
  const auto pick = rc::gen::resize(rc::kNominalSize, rc::gen::inRange<std::size_t>(0, total));
  return rc::gen::mapcat(pick, [options](std::size_t r) {
    for (const auto& o : options) {
      if (r < o.first) return o.second;
      r -= o.first;
    }
    return options.back().second;
  });
}

void run_script(const std::vector<CommandPtr>& commands, Model& model, Sut& sut) {
  for (const CommandPtr& c : commands) {
    c->checkPreconditions(model);
    c->run(model, sut);
    c->apply(model);
  }
}

void check_stateful(const HeapSetup& setup, const CommandMix& mix, CheckSet checks) {
  HeapSetup s = setup;
  s.reuse = *rc::gen::element(ReusePolicy::next_cycle, ReusePolicy::owner);
  RC_TAG(s.reuse == ReusePolicy::owner ? "reuse=owner" : "reuse=next_cycle");
  Sut sut(s, checks);
  Model model(s);
  check_generated(model, sut, mix);
}

void check_generated(const Model& model, Sut& sut, const CommandMix& mix) {
  const auto commands =
      *rc::state::gen::commands(model, [mix](const Model& m) { return gen_command(m, mix); });
  // The distribution of sequence lengths shows up in the property's success message.
  RC_CLASSIFY(commands.size() < 10, "under 10 commands");
  RC_CLASSIFY(commands.size() >= 10 && commands.size() < 50, "10-49 commands");
  RC_CLASSIFY(commands.size() >= 50, "50+ commands");
  rc::state::runAll(commands, model, sut);
  // Whether the facade commands reached the fast paths they model (FacadeReachesFastPaths
  // asserts it on a script; here the summary shows how often generated cases do).
  const CheckedHeap::FacadeCounts& calls = sut.checked.facade_counts();
  RC_CLASSIFY(calls.fast_allocations > 0, "facade allocation on a fast path");
  RC_CLASSIFY(calls.fast_frees > 0, "facade free on a fast path");
}

}  // namespace spanheap::props
