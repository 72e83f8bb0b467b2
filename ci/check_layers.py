#!/usr/bin/env python3
"""Include ranks of lib/src: every file includes only files of a lower rank.

The rank table and its exceptions are written once, in docs/design.md ("Layers"): a table whose
first column is the rank and whose second names the files (`stem`, for stem.hpp and stem.cpp),
and, when an include must go up, a table of the upward includes that are allowed, each with its
reason (headed `| upward include | why |`; without it no include may go up). This script reads
both and checks every `#include "..."` line of lib/src (unit tests and their helpers excepted):

  - the included file's rank is below the including file's (a file may include its own header);
  - every file of lib/src has a rank (a new file must be placed in the table);
  - every listed exception still occurs (a stale exception would hide a future one);
  - no public header of the product (lib/include/spanheap, testing.hpp aside) includes the
    testing seam, which ranks above every file of the library.

  ci/check_layers.py              check the tree
  ci/check_layers.py --self-test  show that a planted upward include, a stale exception and a
                                  public header that includes the seam all fail
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
SRC = ROOT / "lib" / "src"
PUBLIC = ROOT / "lib" / "include" / "spanheap"
SEAM = "testing.hpp"

# Quoted includes are lib/src's own files; <spanheap/testing.hpp> is the testing seam, ranked as
# `testing`. The product's other public headers (<spanheap/spanheap.hpp>, the invariant rules of
# <spanheap/invariants.hpp>) are below every rank, so they must not include the seam themselves.
INCLUDE = re.compile(r'^\s*#\s*include\s+(?:"([^"]+)"|<(spanheap/testing\.hpp)>)')
STEM = re.compile(r"`([a-z_]+)`")
EDGE = re.compile(r"`([a-z_]+\.(?:hpp|cpp))` → `((?:spanheap/)?[a-z_]+\.hpp)`")


def layers_section(text):
    start = text.find("\n## Layers\n")
    if start < 0:
        raise SystemExit(f"{DESIGN}: no '## Layers' section")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def table_rows(section, first_header, required=True):
    """The rows (lists of cells) of the table whose first header cell is `first_header`; none
    when the table is absent and not `required`."""
    rows, inside = [], False
    for line in section.splitlines():
        if not line.startswith("|"):
            if inside:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not inside:
            inside = cells[0] == first_header
            continue
        if set(cells[0]) <= set("-: "):
            continue
        rows.append(cells)
    if not rows and required:
        raise SystemExit(f"{DESIGN}: no table headed '| {first_header} |' in '## Layers'")
    return rows


def read_table(text):
    section = layers_section(text)
    ranks = {}
    for cells in table_rows(section, "rank"):
        if not cells[0].isdigit():
            raise SystemExit(f"{DESIGN}: rank '{cells[0]}' is not a number")
        for stem in STEM.findall(cells[1]):
            if stem in ranks:
                raise SystemExit(f"{DESIGN}: `{stem}` has two ranks")
            ranks[stem] = int(cells[0])
    exceptions = set()
    # No upward include is allowed unless a table headed `| upward include | why |` lists it.
    for cells in table_rows(section, "upward include", required=False):
        edge = EDGE.fullmatch(cells[0])
        if edge is None:
            raise SystemExit(f"{DESIGN}: exception '{cells[0]}' is not `file` → `header.hpp`")
        exceptions.add(edge.groups())
    return ranks, exceptions


def source_files():
    """{file name: text} of lib/src, without the unit tests and their helpers."""
    return {
        p.name: p.read_text()
        for p in sorted(SRC.iterdir())
        if p.suffix in (".hpp", ".cpp")
        and not p.stem.endswith("_test")
        and p.name != "test_util.hpp"
    }


def public_headers():
    """{file name: text} of the product's public headers: lib/include/spanheap but the seam."""
    return {p.name: p.read_text() for p in sorted(PUBLIC.glob("*.hpp")) if p.name != SEAM}


def violations(ranks, exceptions, files, public):
    out, seen = [], set()
    for name, text in public.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if m is not None and m.group(2) is not None:
                out.append(f"lib/include/spanheap/{name}:{lineno}: includes the testing seam "
                           f"({m.group(2)}), which ranks above every file that includes {name}")
    for name, text in files.items():
        stem = name.rsplit(".", 1)[0]
        if stem not in ranks:
            out.append(f"lib/src/{name}: not in the rank table of docs/design.md (Layers)")
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if m is None:
                continue
            header = m.group(1) or m.group(2)
            target = header.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if target == stem:
                continue
            if target not in ranks:
                out.append(f"lib/src/{name}:{lineno}: includes {header}, which has no rank")
            elif ranks[target] >= ranks[stem]:
                if (name, header) in exceptions:
                    seen.add((name, header))
                    continue
                out.append(
                    f"lib/src/{name}:{lineno}: upward include of {header} "
                    f"(rank {ranks[target]}) from rank {ranks[stem]}"
                )
    for name, header in sorted(exceptions - seen):
        out.append(f"docs/design.md: exception `{name}` → `{header}` no longer occurs: remove it")
    return out


def self_test(ranks, exceptions, files, public):
    """The checker must flag a planted upward include, a stale exception and a public header
    that includes the seam."""
    lowest = min(ranks, key=ranks.get)
    highest = max((s for s in ranks if f"{s}.hpp" in files), key=ranks.get)
    planted = dict(files)
    victim = next(n for n in files if n.rsplit(".", 1)[0] == lowest)
    planted[victim] = files[victim] + f'\n#include "{highest}.hpp"\n'
    found = violations(ranks, exceptions, planted, public)
    if not any("upward include" in v and highest in v for v in found):
        return [f"self-test: a planted #include \"{highest}.hpp\" in {victim} was not flagged"]
    stale = set(exceptions) | {(victim, f"{highest}.hpp")}
    if not any("no longer occurs" in v for v in violations(ranks, stale, files, public)):
        return ["self-test: a stale exception was not flagged"]
    header = next(iter(public))
    leaky = dict(public)
    leaky[header] = public[header] + f"\n#include <spanheap/{SEAM}>\n"
    if not any("testing seam" in v for v in violations(ranks, exceptions, files, leaky)):
        return [f"self-test: a planted #include <spanheap/{SEAM}> in {header} was not flagged"]
    print(f"self-test: a planted upward include ({victim} → {highest}.hpp), a stale exception"
          f" and the seam included by a public header ({header}) are all flagged")
    return []


def main(argv):
    ranks, exceptions = read_table(DESIGN.read_text())
    files = source_files()
    public = public_headers()
    found = violations(ranks, exceptions, files, public)
    if "--self-test" in argv:
        found += self_test(ranks, exceptions, files, public)
    for v in found:
        print(v, file=sys.stderr)
    if found:
        print(f"{len(found)} layering violation(s); the ranks are in docs/design.md (Layers)",
              file=sys.stderr)
        return 1
    print(f"layers: {len(files)} files of lib/src, {len(ranks)} ranked concepts, "
          f"{len(exceptions)} documented exception(s), no upward include; "
          f"{len(public)} public headers below the seam")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
