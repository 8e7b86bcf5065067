"""benchenv - what every bench sets up before it imports the e2e harness: the build
directory (argv[1], default "build"), the binaries the harness starts from it
(SEGSPOOL_BIN and SEGSPOOL_EMU, unless already set), and tests/e2e on the import path."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
os.environ.setdefault("SEGSPOOL_BIN", os.path.join(BUILD, "segspool"))
os.environ.setdefault("SEGSPOOL_EMU", os.path.join(BUILD, "segspool-emu"))
