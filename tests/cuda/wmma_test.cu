/* wmma_test.cu - the GEMM of aert_cuda_kernels.h in the precision it is compiled for
 * (-DAECD_PRECISION=AECD_FP32, AECD_TF32 or AECD_BF16), and the emulator's tensor cores
 * (runtime/cuda_emu_wmma.h). Built by tests/cuda/precision.sh as host C++ and by nvcc.
 *
 *   wmma_test            aecd_gemm for three odd sizes and three tilings against a C loop
 *                        that rounds the operands as the precision does and adds the products
 *                        in ascending k (the emulator's documented order): bitwise equal;
 *                        then the conversions (tf32 ties away, bf16 ties to even, NaN);
 *                        prints "ok <precision>"
 *   wmma_test divergent  (tf32, bf16) half a warp calls mma_sync: the emulator must stop
 *   wmma_test misaligned (tf32, bf16) a load from a pointer off 32 bytes: the emulator must stop */
#include "aert_cuda_kernels.h"

#include <stdio.h>
#include <string.h>

#include <vector>

/* C = A B for row-major A (M x K), B (K x N), C (M x N), as dense layers call it. */
template <int M, int N, int K, int BM, int BN> __global__ void AECD_BOUNDS gemm(const float *A, const float *B, float *C) {
  aecd_gemm<M, N, K, BM, BN>([=](int i, int k) { return A[(long)i * K + k]; }, [=](int k, int j) { return B[(long)k * N + j]; },
                             [=](int i, int j, float s) { C[(long)i * N + j] = s; });
}

/* A value as the GEMM's operands hold it (tf32: to nearest, ties away from zero). */
static float operand(float v) {
#if AECD_PRECISION == AECD_TF32
  uint32_t u;
  memcpy(&u, &v, 4);
  u = (u + 0x1000u) & 0xffffe000u;   /* the test's values are finite */
  memcpy(&v, &u, 4);
  return v;
#elif AECD_PRECISION == AECD_BF16
  return __bfloat162float(__float2bfloat16(v));
#else
  return v;
#endif
}

template <int M, int N, int K, int BM, int BN> static int check_gemm() {
  std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
  uint32_t s = 12345u + M * N * K + BM * 64 + BN;
  auto next = [&s] { s = s * 1664525u + 1013904223u; return (float)(s >> 8) / 8388608.0f - 1.0f; };
  for (float &v : A) v = next();
  for (float &v : B) v = next();
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float acc = 0.0f;
      for (int k = 0; k < K; k++)
        acc = AECD_PRECISION == AECD_FP32 ? fmaf(A[i * K + k], B[k * N + j], acc) : acc + operand(A[i * K + k]) * operand(B[k * N + j]);
      R[i * N + j] = acc;
    }
  float *dA, *dB, *dC;
  AEC_CHECK(cudaMalloc(&dA, sizeof(float) * A.size()));
  AEC_CHECK(cudaMalloc(&dB, sizeof(float) * B.size()));
  AEC_CHECK(cudaMalloc(&dC, sizeof(float) * C.size()));
  AEC_CHECK(cudaMemcpy(dA, A.data(), sizeof(float) * A.size(), cudaMemcpyHostToDevice));
  AEC_CHECK(cudaMemcpy(dB, B.data(), sizeof(float) * B.size(), cudaMemcpyHostToDevice));
  void (*kernel)(const float *, const float *, float *) = gemm<M, N, K, BM, BN>;
  AEC_LAUNCH(kernel, dim3((N + BN - 1) / BN, (M + BM - 1) / BM), AECD_THREADS, 0, 0, (const float *)dA, (const float *)dB, dC);
  AEC_CHECK(cudaMemcpy(C.data(), dC, sizeof(float) * C.size(), cudaMemcpyDeviceToHost));
  AEC_CHECK(cudaFree(dA));
  AEC_CHECK(cudaFree(dB));
  AEC_CHECK(cudaFree(dC));
  int wrong = 0;
  for (int i = 0; i < M * N; i++) wrong += memcmp(&C[i], &R[i], sizeof(float)) != 0;
  if (wrong) printf("aecd_gemm<%d, %d, %d, %d, %d>: %d of %d values differ from the rounded C loop (C[0] %.9g, loop %.9g)\n", M, N, K, BM, BN,
                    wrong, M * N, C[0], R[0]);
  return wrong;
}

#if AECD_PRECISION != AECD_FP32
/* One 16 x 16 x K product by warp 0, of which only lanes 0-15 reach mma_sync when divergent. */
__global__ void one_mma(const aecd_operand *a, const aecd_operand *b, float *c, int divergent, int offset) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, 16, 16, AECD_MMA_K, aecd_mma_type, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, AECD_MMA_K, aecd_mma_type, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, AECD_MMA_K, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + offset, AECD_MMA_K);
  wmma::load_matrix_sync(fb, b, 16);
  if (!divergent || threadIdx.x < 16) wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

static int mistake(const char *what) {
  aecd_operand *a, *b;
  float *c;
  AEC_CHECK(cudaMalloc(&a, sizeof(aecd_operand) * (16 * AECD_MMA_K + 8)));
  AEC_CHECK(cudaMalloc(&b, sizeof(aecd_operand) * 16 * AECD_MMA_K));
  AEC_CHECK(cudaMalloc(&c, sizeof(float) * 256));
  AEC_CHECK(cudaMemset(a, 0, sizeof(aecd_operand) * (16 * AECD_MMA_K + 8)));
  AEC_CHECK(cudaMemset(b, 0, sizeof(aecd_operand) * 16 * AECD_MMA_K));
  AEC_LAUNCH(one_mma, dim3(1), 32, 0, 0, (const aecd_operand *)a, (const aecd_operand *)b, c, !strcmp(what, "divergent"),
             !strcmp(what, "misaligned") ? 1 : 0);
  AEC_CHECK(cudaDeviceSynchronize());
  printf("%s: the emulator did not stop\n", what);
  return 1;
}
#endif

/* The conversions, by their bits. */
static int check_conversions() {
#if AECD_PRECISION == AECD_FP32
  return 0;
#else
  struct { uint32_t in, tf32; unsigned short bf16; } cases[] = {
      {0x3f801000u, 0x3f802000u, 0x3f80},   /* half a tf32 step above 1: away from zero; bf16 down */
      {0xbf801000u, 0xbf802000u, 0xbf80},
      {0x3f803000u, 0x3f804000u, 0x3f80},   /* tf32 tie from an odd step: away again */
      {0x3f808000u, 0x3f808000u, 0x3f80},   /* a bf16 tie from an even step: stays */
      {0x3f818000u, 0x3f818000u, 0x3f82},   /* a bf16 tie from an odd step: up to even */
      {0x3f80ffffu, 0x3f810000u, 0x3f81},
      {0x7f800000u, 0x7f800000u, 0x7f80},   /* infinity */
  };
  int wrong = 0;
  for (const auto &c : cases) {
    float f;
    memcpy(&f, &c.in, 4);
#ifndef __CUDACC__   /* __float_to_tf32 is device code under nvcc */
    float t = nvcuda::wmma::__float_to_tf32(f);
    uint32_t tb;
    memcpy(&tb, &t, 4);
    if (tb != c.tf32) printf("__float_to_tf32(0x%08x) = 0x%08x, not 0x%08x\n", c.in, tb, c.tf32), wrong++;
#endif
    __nv_bfloat16 h = __float2bfloat16(f);
    unsigned short hb;
    memcpy(&hb, &h, 2);
    if (hb != c.bf16) printf("__float2bfloat16(0x%08x) = 0x%04x, not 0x%04x\n", c.in, hb, c.bf16), wrong++;
  }
  float nan = __bfloat162float(__float2bfloat16(NAN));
  if (nan == nan) printf("__float2bfloat16(NaN) is not a NaN\n"), wrong++;
  return wrong;
#endif
}

int main(int argc, char **argv) {
  static const char *const names[] = {"fp32", "tf32", "bf16"};
#if AECD_PRECISION != AECD_FP32
  if (argc > 1) return mistake(argv[1]);
#else
  (void)argc, (void)argv;
#endif
  int wrong = check_gemm<37, 45, 70, 64, 64>() + check_gemm<9, 83, 40, 16, 64>() + check_gemm<50, 20, 33, 32, 16>() + check_conversions();
  if (wrong) return 1;
  printf("ok %s\n", names[AECD_PRECISION]);
  return 0;
}
