/* aert_cuda_kernels.h - the device code that the kernels of a generated model.cu call with
 * compile-time sizes, as model.c calls aert_kernels.h: the tiled GEMM (dense layers, and
 * convolutions as implicit GEMM through loaders that read the folded sources), the
 * activations of the epilogues and their derivatives, column sums and block sums.
 * Every output is summed by one thread in a fixed order, and block sums reduce in a fixed
 * tree: no floating-point atomics, the same result for any order the threads run in.
 * The same file compiles under nvcc and as host C++ under the emulator (aert_cuda.h). */
#ifndef AERT_CUDA_KERNELS_H
#define AERT_CUDA_KERNELS_H

#include "aert_cuda.h"

#include <stdint.h>
#include <string.h>

#include "aert.h"
extern "C" {
#include "aert_internal.h"   /* aert_mul_rn, aert_add_rn: the optimizer as optim.c rounds it */
}

/* ---- the precision of the GEMMs (aec build --target cuda --precision) -------------------
 * model.cu defines AECD_PRECISION before it includes this file. fp32: the SIMT GEMM below.
 * tf32 and bf16: tensor cores through nvcuda::wmma (tf32 m16n16k8, bf16 m16n16k16), the
 * operands rounded as they are staged into shared memory, the sums in fp32; everything else
 * (epilogues, parameters, gradients' accumulation, the optimizer) stays fp32. */
#define AECD_FP32 0
#define AECD_TF32 1
#define AECD_BF16 2
#ifndef AECD_PRECISION
#define AECD_PRECISION AECD_FP32
#endif
#if AECD_PRECISION != AECD_FP32
#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <mma.h>
#else
#include "cuda_emu_wmma.h"
#endif
#endif

#define AECD_THREADS 256   /* threads of every block */
/* Every kernel's bounds: 256 threads and at least 4 blocks per SM, so at most 64 registers.
 * With the thread count alone ptxas kept the GEMMs at 32 registers and spilled. */
#define AECD_BOUNDS __launch_bounds__(AECD_THREADS, 4)

/* ---- activations, as aert_act_apply and aert_act_grad ------------------------------- */
template <aert_act A> __device__ __forceinline__ float aecd_act(float v, float alpha) {
  if constexpr (A == AERT_ACT_RELU) return v > 0 ? v : 0.0f;
  if constexpr (A == AERT_ACT_LEAKY_RELU) return v > 0 ? v : alpha * v;
  if constexpr (A == AERT_ACT_ELU) return v > 0 ? v : alpha * expm1f(v);
  if constexpr (A == AERT_ACT_SIGMOID) return 1 / (1 + expf(-v));
  if constexpr (A == AERT_ACT_TANH) return tanhf(v);
  return v;
}

/* The derivative through the activation's output y. */
template <aert_act A> __device__ __forceinline__ float aecd_act_grad(float y, float alpha) {
  if constexpr (A == AERT_ACT_RELU) return y > 0 ? 1.0f : 0.0f;
  if constexpr (A == AERT_ACT_LEAKY_RELU) return y > 0 ? 1.0f : alpha;
  if constexpr (A == AERT_ACT_ELU) return y > 0 ? 1.0f : y + alpha;
  if constexpr (A == AERT_ACT_SIGMOID) return y * (1 - y);
  if constexpr (A == AERT_ACT_TANH) return 1 - y * y;
  return 1.0f;
}

/* N(0, 1) of (seed, i): aert_normal's numbers, under the emulator bit for bit. On the GPU
 * cos(2 pi u) is cospif(2 u), which has no slow path for large arguments (cosf's needs a
 * local-memory stack frame); it and the GPU's logf may differ from glibc's in the last bit. */
__device__ __forceinline__ float aecd_normal(uint64_t seed, uint64_t i) {
  float u1 = aert_uniform(seed, 2 * i), u2 = aert_uniform(seed, 2 * i + 1);
#ifdef __CUDA_ARCH__
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
#else
  return aert_box_muller(u1, u2);
#endif
}

/* ---- bilinear upsampling, as aert_bilinear_tap of aert_kernels.h in float ----------
 * Output o of an upsample by f reads source (o + 0.5) / f - 0.5 (align_corners=False),
 * clamped at 0: its lower neighbour (returned), whether there is an upper one, and the
 * upper one's weight. */
__device__ __forceinline__ int aecd_bilinear_tap(int o, int f, int in, int *step, float *frac) {
  float src = ((float)o + 0.5f) / (float)f - 0.5f;
  src = src < 0 ? 0.0f : src;
  int lower = (int)src;
  *step = lower < in - 1;
  *frac = src - (float)lower;
  return lower;
}

/* ---- the tiled GEMM ------------------------------------------------------------------
 * C = A B for M x N x K, A and B read through loaders a(i, k) and b(k, j), each output
 * handed to store(i, j, sum). A block of 256 threads owns a BM x BN tile of C; the
 * threads load 32-deep slices of A and B into shared memory (the first barrier waits for
 * the loads, the second for every thread to finish reading them), and thread (ty, tx)
 * sums rows ty + 16 i and columns tx + 16 j of the tile over k in ascending order. The
 * block's tile is (blockIdx.y, blockIdx.x): the compiler launches (N / BN) x (M / BM) blocks,
 * rounded up. */

#if AECD_PRECISION == AECD_FP32
template <int M, int N, int K, int BM, int BN, class LoadA, class LoadB, class Store>
__device__ __forceinline__ void aecd_gemm(LoadA a, LoadB b, Store store) {
  constexpr int BK = 32, TM = BM / 16, TN = BN / 16;
  static_assert(BM % 16 == 0 && BN % 16 == 0 && BM <= 64 && BN <= 64, "tiles of 16, 32 or 64");
  __shared__ float As[BK][BM], Bs[BK][BN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  float acc[TM][TN];
  for (int i = 0; i < TM; i++)
    for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int e = tid; e < BM * BK; e += AECD_THREADS) {
      int r = e / BK, kk = e % BK;
      As[kk][r] = row0 + r < M && k0 + kk < K ? a(row0 + r, k0 + kk) : 0.0f;
    }
    for (int e = tid; e < BK * BN; e += AECD_THREADS) {
      int kk = e / BN, c = e % BN;
      Bs[kk][c] = col0 + c < N && k0 + kk < K ? b(k0 + kk, col0 + c) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk++) {
      float ar[TM], br[TN];
      for (int i = 0; i < TM; i++) ar[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < TN; j++) br[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < TM; i++)
    for (int j = 0; j < TN; j++) {
      int r = row0 + ty + 16 * i, c = col0 + tx + 16 * j;
      if (r < M && c < N) store(r, c, acc[i][j]);
    }
}
#else
/* The same GEMM on tensor cores: the same tiles, slices, barriers and epilogue ownership.
 * The slices are staged in the operand type (tf32 rounded to nearest, ties away, as
 * wmma::__float_to_tf32; bf16 to nearest even), A row-major BM x 32 and B row-major 32 x BN,
 * each row padded by 32 bytes (fewer bank conflicts, fragment pointers stay 32-byte
 * aligned). The tile has (BM / 16) (BN / 16) fragments of 16 x 16, numbered row by row;
 * warp w owns fragments w and w + 8 where they exist (one column of fragments, since 8 is a
 * multiple of BN / 16; a warp with none only stages) and adds each slice in k-steps of 8
 * (tf32) or 16 (bf16) with mma_sync, in fp32. After the last slice each warp
 * stores its fragments into shared memory (over the slices), and thread (ty, tx) hands rows
 * ty + 16 i and columns tx + 16 j to store, as the fp32 GEMM does. */
/* A pragma for nvcc alone (g++ would warn of an unknown one). */
#ifdef __CUDACC__
#define AECD_PRAGMA(x) _Pragma(#x)
#else
#define AECD_PRAGMA(x)
#endif

#if AECD_PRECISION == AECD_TF32
typedef float aecd_operand;
typedef nvcuda::wmma::precision::tf32 aecd_mma_type;
constexpr int AECD_MMA_K = 8;
__device__ __forceinline__ float aecd_to_operand(float v) { return nvcuda::wmma::__float_to_tf32(v); }
#else
typedef __nv_bfloat16 aecd_operand;
typedef __nv_bfloat16 aecd_mma_type;
constexpr int AECD_MMA_K = 16;
__device__ __forceinline__ __nv_bfloat16 aecd_to_operand(float v) { return __float2bfloat16(v); }
#endif

template <int BM, int BN> union alignas(32) aecd_mma_tiles {
  static constexpr int BK = 32, PAD = 32 / (int)sizeof(aecd_operand), APAD = BK + PAD, BPAD = BN + PAD, CPAD = BN + 8;
  struct { aecd_operand a[BM][APAD], b[BK][BPAD]; } in;   /* the slices */
  float c[BM][CPAD];                                      /* the sums, after the last slice */
};

template <int M, int N, int K, int BM, int BN, class LoadA, class LoadB, class Store>
__device__ __forceinline__ void aecd_gemm(LoadA a, LoadB b, Store store) {
  namespace wmma = nvcuda::wmma;
  typedef aecd_mma_tiles<BM, BN> tiles;
  constexpr int BK = tiles::BK, FK = AECD_MMA_K, FN = BN / 16, FRAGS = (BM / 16) * FN, PER_WARP = FRAGS > 8 ? 2 : 1;
  static_assert(BM % 16 == 0 && BN % 16 == 0 && BM <= 64 && BN <= 64, "tiles of 16, 32 or 64");
  __shared__ tiles sh;
  const int tid = threadIdx.x, warp = tid / 32;
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[PER_WARP];
  for (int f = 0; f < PER_WARP; f++)
    if (warp + 8 * f < FRAGS) wmma::fill_fragment(acc[f], 0.0f);
  for (int k0 = 0; k0 < K; k0 += BK) {
    AECD_PRAGMA(unroll 1)   /* unrolled (fully, or by 2 or 4), a conv's window loads spill under 64 registers */
    for (int e = tid; e < BM * BK; e += AECD_THREADS) {
      int r = e / BK, kk = e % BK;
      sh.in.a[r][kk] = aecd_to_operand(row0 + r < M && k0 + kk < K ? a(row0 + r, k0 + kk) : 0.0f);
    }
    for (int e = tid; e < BK * BN; e += AECD_THREADS) {
      int kk = e / BN, c = e % BN;
      sh.in.b[kk][c] = aecd_to_operand(col0 + c < N && k0 + kk < K ? b(k0 + kk, col0 + c) : 0.0f);
    }
    __syncthreads();
    if (warp < FRAGS)   /* the whole warp alike */
      for (int kk = 0; kk < BK; kk += FK) {
        wmma::fragment<wmma::matrix_a, 16, 16, FK, aecd_mma_type, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, FK, aecd_mma_type, wmma::row_major> fb;
        wmma::load_matrix_sync(fb, &sh.in.b[kk][warp % FN * 16], tiles::BPAD);   /* both fragments' column: 8 % FN == 0 */
        for (int f = 0; f < PER_WARP; f++)
          if (warp + 8 * f < FRAGS) {
            wmma::load_matrix_sync(fa, &sh.in.a[(warp + 8 * f) / FN * 16][kk], tiles::APAD);
            wmma::mma_sync(acc[f], fa, fb, acc[f]);
          }
      }
    __syncthreads();
  }
  for (int f = 0; f < PER_WARP; f++) {
    int frag = warp + 8 * f;
    if (frag < FRAGS) wmma::store_matrix_sync(&sh.c[frag / FN * 16][frag % FN * 16], acc[f], tiles::CPAD, wmma::mem_row_major);
  }
  __syncthreads();
  const int tx = tid % 16, ty = tid / 16;
  for (int i = 0; i < BM / 16; i++)
    for (int j = 0; j < BN / 16; j++) {
      int r = row0 + ty + 16 * i, c = col0 + tx + 16 * j;
      if (r < M && c < N) store(r, c, sh.c[ty + 16 * i][tx + 16 * j]);
    }
}
#endif

/* ---- column sums (bias gradients): db[c] += sum over rows of d[r][c] ------------------
 * A block takes 32 columns; its 8 groups of 32 threads sum the rows of one remainder
 * modulo 8 each, in row order and in double; the first group adds the 8 partial sums in
 * group order. Grid: (COLS + 31) / 32 blocks. */
template <long ROWS, int COLS, class Load>
__device__ __forceinline__ void aecd_col_sum(Load d, float *db) {
  __shared__ double part[8][32];
  const int lane = threadIdx.x % 32, group = threadIdx.x / 32, c = blockIdx.x * 32 + lane;
  double s = 0;
  if (c < COLS)
    for (long r = group; r < ROWS; r += 8) s += d(r, c);
  part[group][lane] = s;
  __syncthreads();
  if (group == 0 && c < COLS) {
    double t = 0;
    for (int g = 0; g < 8; g++) t += part[g][lane];
    db[c] += (float)t;
  }
}

/* ---- block sums (the losses): out = the sum of f(i) over i < n, in double ------------
 * One block: thread t sums i = t, t + 256, ... in order, then a tree halves the partial
 * sums in a fixed pattern. */
template <long N, class F>
__device__ __forceinline__ void aecd_block_sum(F f, double *out) {
  __shared__ double part[AECD_THREADS];
  double s = 0;
  for (long i = threadIdx.x; i < N; i += AECD_THREADS) s += f(i);
  part[threadIdx.x] = s;
  __syncthreads();
  for (int h = AECD_THREADS / 2; h > 0; h /= 2) {
    if ((int)threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = part[0];
}

/* ---- the optimizers, as runtime/optim.c's sgd() and adam() ----------------------------
 * The settings of one step, computed on the host exactly as optim.c computes them (bias
 * corrections in double, the update in float); the update of one value on the device. */
typedef struct {
  int kind;                    /* aert_opt_kind */
  int nesterov;
  float lr, wd, mu;            /* SGD: learning rate, weight decay, momentum */
  float step_size, bc2_sqrt, eps, one_b1, b2, one_b2, shrink;   /* Adam and AdamW */
} aecd_optim;

static inline aecd_optim aecd_optim_of(const aert_optim *h, long step, float lr) {
  aecd_optim o = {};
  o.kind = h->kind;
  o.nesterov = h->nesterov;
  o.lr = lr;
  o.mu = h->momentum;
  int decoupled = h->kind == AERT_OPT_ADAMW;
  double bc1 = 1.0 - pow(h->beta1, (double)step), bc2 = 1.0 - pow(h->beta2, (double)step);
  o.step_size = (float)(lr / bc1), o.bc2_sqrt = (float)sqrt(bc2), o.eps = h->eps;
  o.one_b1 = 1.0f - h->beta1, o.b2 = h->beta2, o.one_b2 = 1.0f - h->beta2;
  o.wd = h->kind == AERT_OPT_SGD ? h->weight_decay : decoupled ? 0.0f : h->weight_decay;
  o.shrink = decoupled ? 1.0f - lr * h->weight_decay : 1.0f;
  return o;
}

/* One parameter p[i] with its gradient and state (m: SGD's momentum buffer or Adam's first
 * moment; v: Adam's second moment). Each product and sum rounded on its own (aert_mul_rn,
 * aert_add_rn), as optim.c's (built without contraction): nvcc fuses a * b + c into one FMA
 * by default, and where Adam's second moment is tiny (its g * g underflows to a subnormal)
 * the FMA's single rounding moved parameters by 1.5e-5 of their largest in two steps. */
__device__ __forceinline__ void aecd_optim_update(aecd_optim o, float *p, const float *g, float *m, float *v, long i) {
  if (o.kind == AERT_OPT_SGD) {
    float gi = aert_add_rn(g[i], aert_mul_rn(o.wd, p[i]));
    if (o.mu != 0.0f && o.nesterov) {
      float b = m[i] = aert_add_rn(aert_mul_rn(o.mu, m[i]), gi);
      p[i] -= aert_mul_rn(o.lr, aert_add_rn(gi, aert_mul_rn(o.mu, b)));
    } else if (o.mu != 0.0f) {
      float d = m[i] = aert_add_rn(aert_mul_rn(o.mu, m[i]), gi);
      p[i] -= aert_mul_rn(o.lr, d);
    } else {
      p[i] -= aert_mul_rn(o.lr, gi);
    }
    return;
  }
  float pi = aert_mul_rn(p[i], o.shrink), gi = aert_add_rn(g[i], aert_mul_rn(o.wd, pi));
  float mi = aert_add_rn(m[i], aert_mul_rn(gi - m[i], o.one_b1));
  float vi = aert_add_rn(aert_mul_rn(v[i], o.b2), aert_mul_rn(aert_mul_rn(o.one_b2, gi), gi));
  m[i] = mi, v[i] = vi;
  p[i] = pi - aert_mul_rn(o.step_size, mi / aert_add_rn(sqrtf(vi) / o.bc2_sqrt, o.eps));
}

/* The sum of every thread's s over one block, handed to every thread: a fixed tree. */
__device__ __forceinline__ double aecd_block_total(double s) {
  __shared__ double part[AECD_THREADS];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int h = AECD_THREADS / 2; h > 0; h /= 2) {
    if ((int)threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
    __syncthreads();
  }
  double total = part[0];
  __syncthreads();   /* before the next call writes part */
  return total;
}

/* The elementwise loop: every index below N, each by one thread, over the whole grid. */
#define AECD_FOR(i, N) for (long i = blockIdx.x * (long)AECD_THREADS + threadIdx.x; i < (N); i += (long)gridDim.x * AECD_THREADS)

#endif
