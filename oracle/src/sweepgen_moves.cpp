// sweepgen_moves: see sweepgen_moves.hpp.
#include <spanheap/oracle/sweepgen_moves.hpp>

#include <iterator>

namespace spanheap::oracle {
namespace {

constexpr SweepgenMove moves[] = {
    {-2, -2, 0, 0, 0, false, "", ""},
    {-2, 0, sweeper, 0, 0, true, "INV-S1",
     "an unswept span was swept by a step that sweeps nothing (a flush or a no-op)"},
    {-2, 3, 0, sweeper | allocating_owner, 0, true, "INV-S1",
     "an unswept span was swept and cached by a step that did not allocate on that P"},
    {1, 1, 0, 0, owner | barrier, false, "INV-S4", "a stale cached span survived its P's flush"},
    {1, 0, owner | barrier, 0, 0, true, "INV-S4",
     "a stale cached span was swept by someone other than its P or the barrier"},
    {1, 3, 0, owner, 0, true, "INV-S4",
     "a stale cached span was swept and recached by someone other than its P"},
    {0, 0, 0, 0, 0, false, "", ""},
    {0, 3, 0, allocating_owner, 0, false, "INV-S3",
     "a span was cached by a step that does not allocate on that P"},
    {3, 3, 0, 0, flush_all, false, "INV-S3", "flush_all left a span cached"},
    {3, 0, allocating_owner | flush_all, 0, 0, false, "INV-S3",
     "a current cached span was uncached by a step that neither refills on its P nor flushes all"},
};

}  // namespace

MoveVerdict judge_sweepgen_move(std::int64_t from, std::int64_t to, unsigned actors) noexcept {
  for (const SweepgenMove& m : moves) {
    if (m.from != from || m.to != to) continue;
    const bool ok = (m.needs_any == 0 || (actors & m.needs_any) != 0) &&
                    (actors & m.needs_all) == m.needs_all && (actors & m.forbids) == 0;
    return {ok, m.sweeps, m.invariant, m.rule};
  }
  return {false, false, "INV-S1", "a move the sweepgen table does not allow"};
}

}  // namespace spanheap::oracle
