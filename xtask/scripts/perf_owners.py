"""Where a profile's samples go, by the innermost fmv (or candle) function on each stack.

usage: perf record -F 300 --call-graph dwarf,16384 -o p.data fmv ...
       perf script -i p.data -F comm,tid,ip,sym > stacks.txt
       python3 xtask/scripts/perf_owners.py stacks.txt

Each sample is counted under (owner, what): the owner is the innermost frame naming a function
of `fmv_models`, `fmv_core` or `candle_core` (closures skipped, so that a rayon closure counts
for the function that spawned it); what is the leaf frame's kind: `gemm`'s microkernel, other
`gemm` work (packing), `memset` and page clearing, or anything else. Prints the 40 largest
shares. Used for attempt 32 in docs/PERFORMANCE.md.
"""
import collections
import re
import sys

OWNER = re.compile(
    r"(fmv_models::[a-z_]+::[A-Za-z0-9_]+(?:::[a-z_]+)?|fmv_core::[a-z_:]+|candle_core::[a-z_]+::[a-z_]+)"
)


def kind(leaf):
    if "microkernel" in leaf:
        return "gemm kernel"
    if "gemm" in leaf:
        return "gemm other"
    if "memset" in leaf or "clear_page" in leaf:
        return "zeroing"
    return "other"


def owner(stack):
    for frame in stack:
        m = OWNER.search(frame)
        if m and "closure" not in m.group(1):
            return m.group(1)
    return "?"


def stacks(lines):
    stack = []
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            parts = line.strip().split(" ", 1)
            stack.append(parts[1] if len(parts) > 1 else "")
    if stack:
        yield stack


def main(path):
    counts = collections.Counter()
    with open(path) as f:
        for stack in stacks(f):
            counts[(owner(stack), kind(stack[0]))] += 1
    total = sum(counts.values())
    for (who, what), n in counts.most_common(40):
        print(f"{100 * n / total:5.1f} %  {who}  ({what})")


if __name__ == "__main__":
    main(sys.argv[1])
