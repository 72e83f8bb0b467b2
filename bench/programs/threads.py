"""A multi-threaded CPython workload for the malloc shim (ci/selfhost, ci/bench part programs).

Run with PYTHONMALLOC=malloc so every object goes through malloc: threads build and drop dicts,
lists, strings and JSON documents, so objects are freed on threads other than the one that made
them (the GIL hands the interpreter around every few milliseconds).

    python3 threads.py [ROUNDS]
"""
import json
import re
import sys
import threading
import zlib

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
shared = []
lock = threading.Lock()


def work(seed: int) -> None:
    word = re.compile(r"[a-z]+\d+-(\d+)")  # the key's index: its sum is > 0 for every seed
    for r in range(ROUNDS):
        d = {f"key{seed}-{i}": [i, str(i) * (i % 7), {"n": i}] for i in range(5000)}
        doc = json.dumps(d)
        back = json.loads(doc)
        assert len(back) == len(d)
        total = sum(int(m.group(1)) for m in word.finditer(" ".join(back)))
        assert total > 0
        packed = zlib.compress(doc.encode(), 6)
        assert zlib.decompress(packed).decode() == doc
        with lock:  # hand objects to other threads, which drop them
            shared.append(back)
            if len(shared) > 4:
                shared.pop(0)
        del d, back


# A thread's exception does not end the process by itself: collect them, so that a failed check
# (a wrong answer from memory the allocator handed out twice, say) fails the run.
failures = []
threading.excepthook = lambda args: failures.append(f"{args.thread.name}: {args.exc_value!r}")
threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failures:
    sys.exit("python workload: FAILED: " + "; ".join(failures))
print("python workload: ok")
