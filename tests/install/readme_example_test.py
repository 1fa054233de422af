#!/usr/bin/env python3
"""README.md quotes each example file verbatim, as one fenced code block.

   readme_example_test.py README.md EXAMPLE...

The examples themselves are built and run by tests/integration/examples, so
what the README shows is what is tested."""
import re
import sys

readme = open(sys.argv[1], encoding="utf-8").read()
blocks = [m.group(1) for m in re.finditer(r"^```[a-z+]*\n(.*?)^```$", readme, re.M | re.S)]
failed = False
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8").read()
    if text in blocks:
        print(f"ok: README.md quotes {path} verbatim")
    else:
        print(f"FAIL: README.md has no code block identical to {path}")
        failed = True
sys.exit(1 if failed else 0)
