/* emu_test.cu - proves the CUDA emulator (runtime/cuda_emu.h) on kernels whose answers a
 * plain C loop gives, and that it reports the mistakes it promises to. The same file is
 * compiled by nvcc for sm_90 and sm_80 (tests/cuda/run.sh), so the kernels are real CUDA.
 *
 *   emu_test             every good kernel against its C reference; prints "ok"
 *   emu_test CASE        one mistake, which the emulator must stop with (exit status 3):
 *                        partial-barrier, host-pointer, memcpy-direction, block-too-big,
 *                        shared-too-big, warp-deadlock, stack-overflow, out-of-bounds (for ASan) */
#include "aert_cuda.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define TILE 16

/* C = A B for row-major M x K and K x N, a TILE x TILE tile of C per block: each thread
 * loads one value of each input tile, then sums over the tile; the first barrier waits for
 * the loads, the second for every thread to finish reading before the next loads. */
__global__ void sgemm_tiled(const float *A, const float *B, float *C, int M, int N, int K) {
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    As[threadIdx.y][threadIdx.x] = row < M && k0 + (int)threadIdx.x < K ? A[row * K + k0 + threadIdx.x] : 0.0f;
    Bs[threadIdx.y][threadIdx.x] = col < N && k0 + (int)threadIdx.y < K ? B[(k0 + threadIdx.y) * N + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; k++) acc = fmaf(As[threadIdx.y][k], Bs[k][threadIdx.x], acc);
#ifndef DROP_BARRIER
    __syncthreads();
#endif
  }
  if (row < M && col < N) C[row * N + col] = acc;
}

/* Per block, the sum of its 256 values: a tree inside each warp by shuffles, then the
 * warps' sums in dynamic shared memory, added by the first warp. */
__global__ void block_sum(const float *x, float *out) {
  AEC_DYNAMIC_SHARED(float, partial);
  float v = x[blockIdx.x * blockDim.x + threadIdx.x];
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
    for (int d = 16; d > 0; d /= 2) v += __shfl_xor_sync(0xffffffffu, v, d);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
  }
}

/* Counts of positive values per warp (ballot), and a histogram of bytes (atomics). */
__global__ void ballot_and_histogram(const float *x, const unsigned char *bytes, int n, int *positive, int *hist) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned b = __ballot_sync(0xffffffffu, i < n && x[i] > 0.0f);
  if (threadIdx.x % 32 == 0) positive[i / 32] = __popc(b);
  if (i < n) atomicAdd(&hist[bytes[i] % 16], 1);
}

__global__ void scale(float *x, float s, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= s;
}

/* ---- mistakes -------------------------------------------------------------------------- */
__global__ void partial_barrier(float *x) {
  if (threadIdx.x < 16) return;
  x[threadIdx.x] = 1.0f;
  __syncthreads();
}

__global__ void warp_deadlock(float *x) {
  float v = x[threadIdx.x];
  if (threadIdx.x < 16) v = __shfl_down_sync(0xffffffffu, v, 1);   /* lanes 16-31 never come */
  else __syncthreads();
  x[threadIdx.x] = v;
}

__global__ void read_past_end(const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i % n] = x[i];   /* the launch has more threads than x has values */
}

#ifndef __CUDACC__
/* A thread whose stack overflows (the emulator's, not a GPU's: nvcc would need a stack
 * frame for it, which tests/cuda/run.sh forbids). */
__global__ void deep_stack(float *x) {
  volatile char big[1 << 20];   /* over the emulator's 64 KiB stacks */
  big[threadIdx.x] = 1;
  x[threadIdx.x] = big[threadIdx.x];
}
#endif

/* ---- host side ------------------------------------------------------------------------- */
static uint64_t rng = 88172645463325252ull;
static float uniform(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static float *to_device(const float *h, size_t n) {
  float *d;
  AEC_CHECK(cudaMalloc(&d, n * sizeof *d));
  AEC_CHECK(cudaMemcpy(d, h, n * sizeof *d, cudaMemcpyHostToDevice));
  return d;
}

static int check_sgemm(void) {
  const int M = 37, N = 45, K = 70;   /* not multiples of the tile: the edges are read guarded */
  static float a[M * K], b[K * N], c[M * N], want[M * N];
  for (int i = 0; i < M * K; i++) a[i] = uniform();
  for (int i = 0; i < K * N; i++) b[i] = uniform();
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {   /* the kernel's order: tiles of k, zeros past K */
      float acc = 0.0f;
      for (int k0 = 0; k0 < K; k0 += TILE)
        for (int k = k0; k < k0 + TILE; k++) acc = fmaf(k < K ? a[i * K + k] : 0.0f, k < K ? b[k * N + j] : 0.0f, acc);
      want[i * N + j] = acc;
    }
  float *da = to_device(a, M * K), *db = to_device(b, K * N), *dc;
  AEC_CHECK(cudaMalloc(&dc, sizeof c));
  AEC_LAUNCH(sgemm_tiled, dim3((N + TILE - 1) / TILE, (M + TILE - 1) / TILE), dim3(TILE, TILE), 0, 0, da, db, dc, M, N, K);
  AEC_CHECK(cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost));
  int wrong = 0;
  for (int i = 0; i < M * N; i++) wrong += memcmp(&c[i], &want[i], sizeof(float)) != 0;
  if (wrong) printf("sgemm_tiled: %d of %d values differ from the C loop\n", wrong, M * N);
  cudaFree(da), cudaFree(db), cudaFree(dc);
  return wrong;
}

static int check_block_sum(void) {
  const int blocks = 5, threads = 256;
  static float x[blocks * threads], out[blocks];
  for (int i = 0; i < blocks * threads; i++) x[i] = uniform();
  float *dx = to_device(x, blocks * threads), *dout;
  AEC_CHECK(cudaMalloc(&dout, sizeof out));
  AEC_LAUNCH(block_sum, dim3(blocks), dim3(threads), threads / 32 * sizeof(float), 0, dx, dout);
  AEC_CHECK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
  int wrong = 0;
  for (int bl = 0; bl < blocks; bl++) {   /* the same trees in C */
    float warp[8];
    for (int w = 0; w < 8; w++) {
      float v[32];
      for (int l = 0; l < 32; l++) v[l] = x[bl * threads + w * 32 + l];
      for (int d = 16; d > 0; d /= 2)
        for (int l = 0; l < 32; l++) v[l] += l + d < 32 ? v[l + d] : v[l];
      warp[w] = v[0];
    }
    float v[32];
    for (int l = 0; l < 32; l++) v[l] = l < 8 ? warp[l] : 0.0f;
    for (int d = 16; d > 0; d /= 2) {
      float u[32];
      for (int l = 0; l < 32; l++) u[l] = v[l] + v[l ^ d];
      memcpy(v, u, sizeof v);
    }
    if (memcmp(&out[bl], &v[0], sizeof(float))) { printf("block_sum: block %d gives %.9g, the C tree %.9g\n", bl, out[bl], v[0]); wrong++; }
  }
  cudaFree(dx), cudaFree(dout);
  return wrong;
}

static int check_ballot_and_histogram(void) {
  const int n = 1000, threads = 128, blocks = (n + threads - 1) / threads;
  static float x[blocks * threads];
  static unsigned char bytes[n];
  int positive[blocks * threads / 32], hist[16], want_pos[blocks * threads / 32] = {0}, want_hist[16] = {0};
  for (int i = 0; i < n; i++) { x[i] = uniform(); bytes[i] = (unsigned char)(uniform() * 127 + 128); }
  for (int i = 0; i < n; i++) { want_pos[i / 32] += x[i] > 0.0f; want_hist[bytes[i] % 16]++; }
  float *dx = to_device(x, blocks * threads);
  unsigned char *dbytes;
  int *dpos, *dhist;
  AEC_CHECK(cudaMalloc(&dbytes, n));
  AEC_CHECK(cudaMemcpy(dbytes, bytes, n, cudaMemcpyHostToDevice));
  AEC_CHECK(cudaMalloc(&dpos, sizeof positive));
  AEC_CHECK(cudaMalloc(&dhist, sizeof hist));
  AEC_CHECK(cudaMemset(dhist, 0, sizeof hist));
  AEC_LAUNCH(ballot_and_histogram, dim3(blocks), dim3(threads), 0, 0, dx, dbytes, n, dpos, dhist);
  AEC_CHECK(cudaMemcpy(positive, dpos, sizeof positive, cudaMemcpyDeviceToHost));
  AEC_CHECK(cudaMemcpy(hist, dhist, sizeof hist, cudaMemcpyDeviceToHost));
  int wrong = memcmp(positive, want_pos, sizeof positive) != 0;
  wrong += memcmp(hist, want_hist, sizeof hist) != 0;
  if (wrong) printf("ballot_and_histogram: counts differ from the C loop\n");
  cudaFree(dx), cudaFree(dbytes), cudaFree(dpos), cudaFree(dhist);
  return wrong;
}

/* A graph captured once (a copy in from pinned memory, two launches) replays exactly, twice;
 * the second replay copies what the host wrote since. */
static int check_graph(void) {
  const int n = 300;
  float *h, got[n];
  AEC_CHECK(cudaMallocHost(&h, sizeof(float) * n));
  for (int i = 0; i < n; i++) h[i] = uniform();
  float *d;
  AEC_CHECK(cudaMalloc(&d, sizeof(float) * n));
  cudaStream_t s;
  AEC_CHECK(cudaStreamCreate(&s));
  cudaGraph_t g;
  cudaGraphExec_t exec;
  AEC_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  AEC_CHECK(cudaMemcpyAsync(d, h, sizeof(float) * n, cudaMemcpyHostToDevice, s));
  AEC_LAUNCH(scale, dim3((n + 127) / 128), dim3(128), 0, s, d, 2.0f, n);
  AEC_LAUNCH(scale, dim3((n + 127) / 128), dim3(128), 0, s, d, 0.5f, n);
  AEC_CHECK(cudaStreamEndCapture(s, &g));
  AEC_CHECK(cudaGraphInstantiate(&exec, g, 0));
  int wrong = 0;
  for (int rep = 0; rep < 2; rep++) {
    AEC_CHECK(cudaGraphLaunch(exec, s));
    AEC_CHECK(cudaStreamSynchronize(s));
    AEC_CHECK(cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) wrong += got[i] != h[i] * 2.0f * 0.5f;
    for (int i = 0; i < n; i++) h[i] += 1.0f;
  }
  if (wrong) printf("graph: %d values differ after the replays\n", wrong);
  cudaGraphExecDestroy(exec), cudaGraphDestroy(g), cudaStreamDestroy(s), cudaFree(d), cudaFreeHost(h);
  return wrong;
}

static int mistake(const char *which) {
  float *d, h[64] = {0};
  AEC_CHECK(cudaMalloc(&d, sizeof h));
  AEC_CHECK(cudaMemset(d, 0, sizeof h));
  if (!strcmp(which, "partial-barrier")) AEC_LAUNCH(partial_barrier, dim3(1), dim3(32), 0, 0, d);
  else if (!strcmp(which, "host-pointer")) AEC_LAUNCH(scale, dim3(1), dim3(64), 0, 0, h, 2.0f, 64);
  else if (!strcmp(which, "memcpy-direction")) AEC_CHECK(cudaMemcpy(d, h, sizeof h, cudaMemcpyDeviceToHost));
  else if (!strcmp(which, "block-too-big")) AEC_LAUNCH(scale, dim3(1), dim3(2048), 0, 0, d, 2.0f, 64);
  else if (!strcmp(which, "shared-too-big")) AEC_LAUNCH(block_sum, dim3(1), dim3(256), 64 * 1024, 0, d, d);
  else if (!strcmp(which, "warp-deadlock")) AEC_LAUNCH(warp_deadlock, dim3(1), dim3(32), 0, 0, d);
#ifndef __CUDACC__
  else if (!strcmp(which, "stack-overflow")) AEC_LAUNCH(deep_stack, dim3(1), dim3(32), 0, 0, d);
#endif
  else if (!strcmp(which, "out-of-bounds")) AEC_LAUNCH(read_past_end, dim3(1), dim3(96), 0, 0, d, d, 64);
  else if (!strcmp(which, "captured-pageable-copy") || !strcmp(which, "legacy-stream-in-capture")) {
    cudaStream_t s;
    AEC_CHECK(cudaStreamCreate(&s));
    AEC_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    if (which[0] == 'c') AEC_CHECK(cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, s));
    else AEC_CHECK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));
  }
  else if (!strcmp(which, "free-host")) AEC_CHECK(cudaFreeHost(h));
  else if (!strcmp(which, "null-event")) AEC_CHECK(cudaStreamWaitEvent(0, nullptr, 0));
  else { fprintf(stderr, "emu_test: unknown case '%s'\n", which); return 2; }
  AEC_CHECK(cudaDeviceSynchronize());
  AEC_CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  printf("the mistake '%s' went unreported\n", which);
  return 1;
}

int main(int argc, char **argv) {
  if (argc > 1) return mistake(argv[1]);
  int wrong = check_sgemm() + check_block_sum() + check_ballot_and_histogram() + check_graph();
  if (wrong) return 1;
  printf("ok\n");
  return 0;
}
