"""Running Triton kernels under the interpreter in tests (shared by the kernel test modules).

``TRITON_INTERPRET=1`` only takes effect if it is set before the *first* ``import triton`` of the
process, so a test module calls `request_interpreter()` before importing triton. If triton was imported
earlier in the pytest process, the module's interpreter tests are skipped in-process and one test reruns
them with `rerun_with_interpreter` in a fresh subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys


def request_interpreter(has_cuda: bool) -> None:
    """Ask for the interpreter unless triton is already imported or a GPU runs the compiled kernels."""
    if "triton" not in sys.modules and not has_cuda:
        os.environ["TRITON_INTERPRET"] = "1"  # must precede the first `import triton`


def rerun_with_interpreter(test_file: str, *pytest_args: str) -> str:
    """Run pytest on `test_file` in a fresh process with the interpreter on; fail with its output if any
    test fails, else return its stdout (for the caller's pass-count check)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file, *pytest_args],
        env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout
