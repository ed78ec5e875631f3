"""Execute notebooks in place, top to bottom in a fresh kernel, and save them with their outputs.

    python tests/execute_notebooks.py notebooks/01_attention_as_soft_lookup.ipynb [...]

This is how every notebook in notebooks/ is saved; nbval then proves a fresh run reproduces it.
"""
import os
import sys
import time

import nbformat
from nbclient import NotebookClient


def execute(path, timeout=900):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False, coalesce_streams=True,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    start = time.perf_counter()
    client.execute()
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        print(f"{p}: executed in {execute(p):.1f} s", flush=True)
