#!/usr/bin/env python3
"""Checks that every relative link in README.md and docs/*.md points at a file or folder that exists.

Links to web addresses and in-page anchors (#...) are not followed; a link's own #anchor is
dropped before the check. Exits 1 and prints one line per broken link.

Usage: check_doc_links.py [REPO_ROOT]   (default: the parent of this file's folder)
"""
import glob
import os
import re
import sys

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pages = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    broken = []
    links = 0
    for page in pages:
        if not os.path.isfile(page):
            broken.append(f"{os.path.relpath(page, root)}: missing")
            continue
        in_code = False
        with open(page, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.lstrip().startswith("```"):
                    in_code = not in_code
                    continue
                if in_code:
                    continue
                for m in LINK.finditer(line):
                    target = m.group(1) or m.group(2)
                    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                        continue
                    links += 1
                    path = target.split("#", 1)[0]
                    full = os.path.normpath(os.path.join(os.path.dirname(page), path))
                    if not os.path.exists(full):
                        broken.append(f"{os.path.relpath(page, root)}:{n}: broken link '{target}'")
    for b in broken:
        print(f"FAIL: {b}")
    print(f"check_doc_links: {len(pages)} pages, {links} relative links, {len(broken)} broken")
    if broken:
        print("repro: python3 tests/check_doc_links.py")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
