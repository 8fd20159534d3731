"""
Build the API documentation of pooled_http from its docstrings with
pydoctor, warnings as errors (as CI runs it)::

    python docs/build.py [--output DIR]

Links to Twisted and to Python's builtins resolve through Sphinx
inventories made here, offline: Twisted's from the installed Twisted (with
pydoctor's own C{--make-intersphinx}), Python's from the C{builtins}
module.  The pages link to the public documentation sites of both.
"""

from __future__ import annotations

import argparse
import builtins
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = ROOT / "src" / "pooled_http"

TWISTED_DOCS = "https://docs.twisted.org/en/stable/api/"
PYTHON_DOCS = "https://docs.python.org/3/"

# The Twisted packages pooled_http's docstrings link into.
TWISTED_PARTS = ("web", "internet", "python", "logger", "trial")


def pythonInventory(path: Path) -> None:
    """
    Write a Sphinx inventory of Python's builtins: constants, exceptions,
    functions and types, pointing at their entries in Python's docs.
    """
    lines = []
    for name in sorted(dir(builtins)):
        if name.startswith("_"):
            continue
        value = getattr(builtins, name)
        if name in ("None", "True", "False", "NotImplemented", "Ellipsis"):
            lines.append(f"{name} py:data -1 library/constants.html#{name} -")
        elif isinstance(value, type) and issubclass(value, BaseException):
            lines.append(f"{name} py:exception -1 library/exceptions.html#{name} -")
        elif isinstance(value, type):
            lines.append(f"{name} py:class -1 library/functions.html#{name} -")
        elif callable(value):
            lines.append(f"{name} py:function -1 library/functions.html#{name} -")
    header = (
        b"# Sphinx inventory version 2\n# Project: Python\n# Version: 3\n"
        b"# The rest of this file is compressed with zlib.\n"
    )
    path.write_bytes(header + zlib.compress("\n".join(lines).encode() + b"\n"))


def twistedInventory(path: Path) -> None:
    """
    Write a Sphinx inventory of the installed Twisted with pydoctor.
    """
    import twisted

    base = Path(twisted.__file__).resolve().parent
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pydoctor",
                "--make-intersphinx",
                "--project-name=Twisted",
                f"--html-output={out}",
                "-q",
                "-q",
                *(str(base / part) for part in TWISTED_PARTS),
            ],
            check=True,
        )
        data = (Path(out) / "objects.inv").read_bytes()
    # pydoctor names the parts as top-level packages (web, internet, ...):
    # put them back under twisted, names and pages alike.
    header, _, body = data.partition(b"zlib.\n")
    lines = []
    for line in zlib.decompress(body).decode().splitlines():
        name, kind, priority, uri, display = line.split(" ", 4)
        lines.append(f"twisted.{name} {kind} {priority} twisted.{uri} {display}")
    path.write_bytes(header + b"zlib.\n" + zlib.compress("\n".join(lines).encode()))


def main(argv: list[str] | None = None) -> int:
    """
    Build the documentation; return pydoctor's exit code (non-zero on any
    warning).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--output", default=str(ROOT / "build" / "apidocs"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        python = Path(tmp) / "python.inv"
        twisted = Path(tmp) / "twisted.inv"
        pythonInventory(python)
        twistedInventory(twisted)
        command = [
            sys.executable,
            "-m",
            "pydoctor",
            "--project-name=pooled_http",
            f"--project-base-dir={ROOT}",
            "--docformat=epytext",
            f"--html-output={args.output}",
            f"--intersphinx-file={python}::{PYTHON_DOCS}",
            f"--intersphinx-file={twisted}::{TWISTED_DOCS}",
            "--warnings-as-errors",
            "-q",
            str(PACKAGE),
        ]
        result = subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"})
    if result.returncode == 0:
        print(f"docs: {args.output}/index.html")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
