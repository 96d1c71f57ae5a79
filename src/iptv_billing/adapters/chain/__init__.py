"""Anchoring transparency-log checkpoints on an EVM chain (see ``anchor.py``).

py-evm and py_ecc raise the interpreter's recursion limit (to 12,000 and 100,000) when first
imported (the EVM's 1,024-deep call stack needs it). In a web server that turns a deeply
nested JSON body into a C stack overflow (a crash) instead of a RecursionError (a 400). The
anchor contract makes no nested calls, so the limit is put back as soon as ``eth`` are loaded.
"""

import sys

_limit = sys.getrecursionlimit()
import eth  # noqa: E402, F401  (imported here, once, so that the limit can be restored)
import py_ecc  # noqa: E402, F401

sys.setrecursionlimit(_limit)
