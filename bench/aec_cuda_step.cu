/* aec_cuda_step.cu - times training steps of one generated model.cu on the GPU: its
 * forward and backward drivers and the optimizer kernel on device buffers (parameters,
 * gradients, Adam's moments, the arena, a fixed random batch), as the trainer will run
 * them once its arenas live on the device; the host glue's copies are not timed. Built by
 * tests/gpu/run.sh with nvcc around a folder of `aec build --target cuda`:
 *
 *   nvcc -std=c++17 -O3 -arch=sm_90 -Iruntime -IDIR bench/aec_cuda_step.cu DIR/model_cpu.o build/libaert.a ...
 *   aec_cuda_step STEPS      one JSON line: median ms per step after 3 warm-up steps, images/s */
#define AEC_NO_MAIN
#include "model.cu"

#include <algorithm>
#include <vector>

extern "C" {
#include "aert_internal.h"
}

template <class T> static T *filled(long n, const std::vector<T> &host) {
  T *p;
  AEC_CHECK(cudaMalloc(&p, sizeof(T) * (size_t)(n > 0 ? n : 1)));
  if (!host.empty()) AEC_CHECK(cudaMemcpy(p, host.data(), sizeof(T) * (size_t)n, cudaMemcpyHostToDevice));
  return p;
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 20;
  const aert_model *m = &aec_model;
  long np = m->param_floats, nx = (long)m->batch * m->in_size, nt = (long)m->batch * (m->target_size ? m->target_size : 1);
  std::vector<float> P(np), X(nx), T(nt), zeros(np, 0.0f), ones(AEC_CLASS_WEIGHTS, 1.0f);
  if (aert_init_params(m, P.data(), 3) != 0) return 2;
  for (long i = 0; i < nx; i++) X[i] = aert_uniform(11, i);
  for (long i = 0; i < nt; i++) T[i] = m->n_classes ? (float)(aert_hash64(i) % (uint64_t)m->n_classes) : aert_uniform(13, i);
  float *dP = filled(np, P), *dG = filled(np, zeros), *dm = filled(np, zeros), *dv = filled(np, zeros);
  float *dA = filled<float>(m->arena_floats, {}), *dX = filled(nx, X), *dT = filled(nt, T), *dcw = filled(AEC_CLASS_WEIGHTS, ones);
  double *sums = filled<double>(AEC_LOSS_SUMS, {}), *sums_host;
  uint64_t *seed = filled<uint64_t>(1, {5});
  AEC_CHECK(cudaMallocHost(&sums_host, sizeof(double) * AEC_LOSS_SUMS));
  run r = place(dP, dG, dA, dX, dT, seed, 1, 0, sums, sums_host, dcw, 0);   /* the default stream */
  cudaEvent_t t0, t1;
  AEC_CHECK(cudaEventCreate(&t0));
  AEC_CHECK(cudaEventCreate(&t1));
  std::vector<float> ms;
  for (int i = 0; i < 3 + steps; i++) {
    AEC_CHECK(cudaEventRecord(t0, 0));
    forward_kernels(&r);
    backward_kernels(&r);
    aec_cuda_optim_step(dP, dG, dm, dv, &m->optim, i + 1, m->optim.lr);
    AEC_CHECK(cudaEventRecord(t1, 0));
    AEC_CHECK(cudaEventSynchronize(t1));
    float t;
    AEC_CHECK(cudaEventElapsedTime(&t, t0, t1));
    if (i >= 3) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  double med = ms[ms.size() / 2];
  printf("{\"side\": \"aec-cuda\", \"model\": \"%s\", \"batch\": %d, \"steps\": %d, \"median_ms\": %.3f, \"images_per_s\": %.1f}\n",
         m->name, m->batch, steps, med, m->batch / med * 1e3);
  return 0;
}
