"""
The C{pooled-http} command.

C{pooled-http fetch} fetches many URLs concurrently through a
L{pooled_http.HTTPConnectionPool} and writes one JSON line per URL;
C{pooled-http demo} (also what the command does with no arguments) compares
the pool with Twisted's own on a local synthetic site.

The command needs the C{cli} extra (C{pip install 'pooled_http[cli]'}, which
brings rich); the library does not.  This module imports neither rich nor
the reactor: L{main} loads the rest of the command when it runs, and says
how to install the extra when it is missing.

The modules of the command, in the order a run uses them:

    - C{_options}: the command line and its checks;
    - C{_command}: the C{fetch} and C{demo} runs, their output and signals;
    - C{_sources}: where the URLs come from;
    - C{_urls}: which URLs can be fetched, and how failures are named;
    - C{_fetcher}: the requests in flight, one result per URL;
    - C{_pools}: the command's side of the pool;
    - C{_tally}: results and running counts;
    - C{_report}: the progress bar and the summary tables (rich);
    - C{_demosite}, C{_demo}: the demo's local site and its side-by-side run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._options import EXIT_FAILED, UsageError, buildParser

__all__ = ["main", "buildParser", "UsageError"]

#: What the command prints, on one line, when the C{cli} extra is missing.
INSTALL_HINT = (
    "pooled-http needs the 'cli' extra, which is not installed; "
    "install it with: pip install 'pooled_http[cli]'"
)

#: The top-level modules the C{cli} extra brings.
_EXTRA_MODULES = frozenset({"rich"})


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the C{pooled-http} command, or, if the C{cli} extra is not
    installed, print L{INSTALL_HINT} on standard error.

    @param argv: The arguments (default: C{sys.argv[1:]}); none at all runs
        C{demo}.
    @return: The exit status: 0 when every URL was fetched, 1 when some
        failed (or the C{cli} extra is missing), 2 for a bad command line,
        130 when interrupted.
    """
    try:
        from ._command import run
    except ImportError as e:
        if (e.name or "").partition(".")[0] not in _EXTRA_MODULES:
            raise
        sys.stderr.write(INSTALL_HINT + "\n")
        return EXIT_FAILED
    return run(argv)
