"""Write the lock file from a virtual environment: `python .ci/write_lock.py VENV requirements/lock.txt`.

Every installed distribution at its exact version, except the project itself and torch (the Makefile
pins torch explicitly: TORCH_SPEC). Written atomically, sorted, with a header saying how to refresh it.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

venv, out = Path(sys.argv[1]), Path(sys.argv[2])
frozen = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable", "--all"],
                        capture_output=True, text=True, check=True).stdout.splitlines()
skip = {"torch", "pip", "setuptools", "wheel", "lvlm-atlas"}
lines = sorted((ln for ln in frozen if ln and "==" in ln and ln.split("==")[0].lower() not in skip),
               key=str.lower)
py = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
                    capture_output=True, text=True, check=True).stdout.strip()
header = [
    "# Exact versions with which `make test` passed (Python " + py + ", Linux x86-64).",
    "# torch is not listed: the Makefile pins it (TORCH_SPEC, default torch==2.13.0, the CPU build here).",
    "# Refresh: `make lock` (resolves the newest versions pyproject.toml allows, runs the tests, rewrites this file).",
]
out.parent.mkdir(parents=True, exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".lock-")
with os.fdopen(fd, "w", encoding="utf-8") as fh:
    fh.write("\n".join(header + lines) + "\n")
os.replace(tmp, out)
print(f"wrote {out}: {len(lines)} distributions")
