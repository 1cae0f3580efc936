# Sourced by the tests that hold the CUDA target (or a GPU) against the CPU target: the CPU
# side runs the direct convolutions (-DAERT_NO_WINOGRAD in CC, which aec build uses too).
# The CUDA kernels sum as the direct ones do; against Winograd's sums (other rounding) Adam
# turns the last-bit differences of nearly-zero gradients into steps of the learning rate,
# and ten steps drift past the tests' tolerances (runtime/aert_wino.h). The Winograd kernels
# have checks of their own: tests/dense/wino.c, the gradient and reference checks, tests/torch.
CC="${CC:-cc} -DAERT_NO_WINOGRAD"
export CC
