"""Kernel tests run Triton under the CPU interpreter: set it before any kernel import."""

from __future__ import annotations

import os
import tempfile

os.environ["TRITON_INTERPRET"] = "1"
os.environ["NAS_KERNELS_POISON"] = "1"  # launchers fill outputs with NaN before the kernel runs
os.environ.setdefault("NAS_KERNEL_CACHE", os.path.join(tempfile.gettempdir(), "nas_kernels_tests"))
