"""Print the fuzz counts (cases, outcomes, crashes with their origin) at the end of the run."""

from __future__ import annotations

from hypothesis import settings

from tests.fuzz import harness

# `pytest tests/fuzz --hypothesis-profile=streamlin-fuzz-fresh` ignores saved failing examples (a fresh
# campaign); combine with STREAMLIN_FUZZ_EXAMPLES=2000 for a long one.
settings.register_profile("streamlin-fuzz-fresh", database=None)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not harness.STATS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("streamlin fuzz counts")
    total = sum(c["cases"] for c in harness.STATS.values())
    crashes = sum(c["crash"] for c in harness.STATS.values())
    for target in sorted(harness.STATS):
        counts = harness.STATS[target]
        rest = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "cases")
        write(f"{target:<34} {counts['cases']:>6} cases: {rest}")
    violations = sum(v["count"] for v in harness.VIOLATIONS.values())
    write(f"{'total':<34} {total:>6} cases, {crashes} crashes (non-StreamlinError exceptions),"
          f" {violations} other property violations")
    for (target, name, origin), entry in sorted(harness.CRASHES.items()):
        write(f"  CRASH {target}: {name} at {origin} (x{entry['count']}): {entry['message'][:160]}")
        if entry["reproducer"]:
            write(f"        reproducer: {entry['reproducer'][:400]}")
    for (target, kind), entry in sorted(harness.VIOLATIONS.items()):
        write(f"  VIOLATION {target}: {kind} (x{entry['count']}): {entry['message'][:400]}")
