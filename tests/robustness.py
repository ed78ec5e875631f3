"""The robustness run: execute notebooks with every seed shifted, and fail on the first error.

    python tests/robustness.py --shift 1 --shift 2 notebooks/*.ipynb

Each notebook is executed in a fresh kernel, from a copy in memory (nothing is saved), with
``ATTNKIT_SEED_SHIFT`` set to the shift (see attnkit/seeding.py: data splits, initial weights,
dropout masks and batch orders all change) and the book's ``notebooks/`` as working directory. Outputs are
not compared: what must hold is every assertion the chapter makes. A failure names the
notebook, the cell as nbval names it (``Cell N`` counts code cells from 0), its first line and
the error. Runs go two at a time (``--jobs``), each kernel with one BLAS thread; each run's time
is printed. Exit status 1 when any run failed.
"""
import argparse
import multiprocessing
import os
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

SHIFT_VARIABLE = "ATTNKIT_SEED_SHIFT"  # the same name as attnkit.seeding.SHIFT_VARIABLE
# The chapters' working directory, also for a copy kept elsewhere.
NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


def failing_line(traceback):
    """The source line IPython marks with an arrow in a traceback (the cell's own, the last one)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", traceback or "")
    marked = re.findall(r"^\s*-+>\s*\d+\s+(.*)$", plain, re.M)
    return marked[-1].strip()[:100] if marked else ""


def run(task):
    """Execute one notebook under one shift; returns (path, shift, seconds, failure or None)."""
    path, shift, timeout, cwd = task
    nb = nbformat.read(path, as_version=4)
    code_number = {}  # index among all cells -> nbval's "Cell N" (index among code cells)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            code_number[index] = len(code_number)
    current = {"index": None}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    # The kernel is a child of this worker and inherits its environment; a worker runs one
    # notebook at a time, so setting the variables here is safe.
    os.environ[SHIFT_VARIABLE] = str(shift)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ.pop("JPY_SESSION_NAME", None)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            on_cell_start=on_cell_start, resources={"metadata": {"path": cwd}},
                            # not the kernel's warning that it talks over local TCP, per notebook
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        index = current["index"]
        cell = nb.cells[index] if index is not None else None
        where = "before the first cell" if cell is None else (
            f"Cell {code_number.get(index, '?')} (starts {cell.source.strip().splitlines()[0][:60]!r})"
            if cell.source.strip() else f"Cell {code_number.get(index, '?')}")
        if isinstance(exc, CellExecutionError):
            error = f"{exc.ename}: {exc.evalue}"
            line = failing_line(exc.traceback)
            if line:  # a bare assert has no message: name its line
                error += f" at {line!r}"
        elif isinstance(exc, CellTimeoutError):
            error = f"timed out after {timeout} s"
        else:
            error = f"the kernel died: {exc}"
        failure = f"{where}: {error}"
    return path, shift, time.perf_counter() - start, failure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", help="notebooks to execute")
    parser.add_argument("--shift", type=int, action="append",
                        help="seed shift (repeat for several; default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default 2)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed a cell")
    parser.add_argument("--cwd", default=NOTEBOOKS,
                        help="working directory of the kernels (default: the book's notebooks/)")
    args = parser.parse_args(argv)
    shifts = args.shift or [1]
    if 0 in shifts:
        parser.error("shift 0 is the saved run, which nbval checks: give 1, 2, ...")
    missing = [p for p in args.notebooks if not os.path.isfile(p)]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    # In the order given, shift by shift: list the slowest notebooks first to balance the jobs.
    tasks = [(p, s, args.timeout, args.cwd) for s in shifts for p in args.notebooks]
    start = time.perf_counter()
    failures = []
    # "spawn": fresh workers, not forks of a process that may hold threads.
    with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for path, shift, seconds, failure in pool.imap_unordered(run, tasks):
            status = "ok" if failure is None else "FAILED"
            print(f"shift {shift}  {seconds:6.1f} s  {status:6}  {path}", flush=True)
            if failure is not None:
                failures.append(f"{path} (shift {shift}): {failure}")
                print(f"    {failure}", flush=True)
    total = time.perf_counter() - start
    print(f"robustness: {len(tasks) - len(failures)} of {len(tasks)} runs passed "
          f"(shifts {', '.join(map(str, shifts))}) in {total:.0f} s with {args.jobs} jobs")
    if failures:
        print("Failed:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
