/* aert_cuda.h - what a CUDA source of aec includes: the real CUDA runtime under nvcc, the
 * emulator (cuda_emu.h) when the same file is compiled as host C++. The two spellings
 * that plain C++ cannot take are macros here:
 *
 *   AEC_LAUNCH(kernel, grid, block, shared_bytes, stream, args...)   kernel<<<...>>>(args...)
 *   AEC_DYNAMIC_SHARED(type, name)                                    extern __shared__ type name[]
 *
 * and AEC_CHECK(call) stops with the file, line and CUDA's message when a call fails. */
#ifndef AERT_CUDA_H
#define AERT_CUDA_H

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define AEC_LAUNCH(kernel, grid, block, shared, stream, ...) kernel<<<(grid), (block), (shared), (stream)>>>(__VA_ARGS__)
#define AEC_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#else
#include "cuda_emu.h"
#define AEC_LAUNCH(kernel, grid, block, shared, stream, ...) \
  aecu::launch(#kernel, __FILE__, __LINE__, kernel, (grid), (block), (shared), (stream), __VA_ARGS__)
#define AEC_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(aecu::dynamic_shared())
#endif

#include <stdio.h>
#include <stdlib.h>

#define AEC_CHECK(call)                                                                       \
  do {                                                                                        \
    cudaError_t err_ = (call);                                                                \
    if (err_ != cudaSuccess) {                                                                \
      fprintf(stderr, "%s:%d: CUDA error: %s (%s)\n", __FILE__, __LINE__, cudaGetErrorString(err_), #call); \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

#endif
