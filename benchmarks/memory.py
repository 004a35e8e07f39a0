"""Memory readings shared by the benchmark scripts."""

import os
import resource


def rss_mib() -> float:
    """Current resident set size (MiB) from Linux /proc; falls back to the peak elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
