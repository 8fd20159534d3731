"""
C{python -m pooled_http}: the C{pooled-http} command (see L{pooled_http.cli}).
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
