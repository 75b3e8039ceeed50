"""GPU kernels with a PyTorch reference beside each: searched activations, recurrent cells, block-sparse
matmul. `kernels.dispatch.use_triton` picks Triton (CUDA, or CPU under ``TRITON_INTERPRET=1`` with
``NAS_KERNELS=triton``) or the PyTorch path. This package imports nothing else of ours."""
