/* emu_speed.cu - how fast the emulator (runtime/cuda_emu.h) runs one generated model.cu: the
 * forward and backward drivers and the optimizer kernel on device buffers, as
 * bench/aec_cuda_step.cu times them on a GPU, here as host C++. The FLOPs are the
 * compiler's count per step (the descriptor's timed_flops, forward and backward), so
 * MFLOP/s compares emulator versions on one model; on a shared machine the rate per second
 * of CPU time (all OpenMP threads together) says more than the rate per second of wall time.
 * Built against one generated folder:
 *
 *   g++ -std=gnu++20 -O2 -fopenmp -Iruntime -IDIR -x c++ tests/cuda/emu_speed.cu -x none DIR/model_cpu.o build/libaert.a ...
 *   emu_speed STEPS     one line: the model, the batch, the median wall and CPU seconds of
 *                       a step, and MFLOP/s of each */
#define AEC_NO_MAIN
#include "model.cu"

#include <algorithm>
#include <chrono>
#include <time.h>
#include <vector>

static float *filled(long n, const std::vector<float> &host) {
  float *p;
  AEC_CHECK(cudaMalloc(&p, sizeof(float) * (size_t)(n > 0 ? n : 1)));
  if (!host.empty()) AEC_CHECK(cudaMemcpy(p, host.data(), sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
  return p;
}

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 3;
  const aert_model *m = &aec_model;
  long np = m->param_floats, nx = (long)m->batch * m->in_size, nt = (long)m->batch * (m->target_size ? m->target_size : 1);
  std::vector<float> P(np), X(nx), T(nt), zeros(np, 0.0f), ones(AEC_CLASS_WEIGHTS, 1.0f);
  if (aert_init_params(m, P.data(), 3) != 0) return 2;
  for (long i = 0; i < nx; i++) X[i] = aert_uniform(11, i);
  for (long i = 0; i < nt; i++) T[i] = m->n_classes ? (float)(aert_hash64(i) % (uint64_t)m->n_classes) : aert_uniform(13, i);
  float *dP = filled(np, P), *dG = filled(np, zeros), *dm = filled(np, zeros), *dv = filled(np, zeros);
  float *dA = filled(m->arena_floats, {}), *dX = filled(nx, X), *dT = filled(nt, T), *dcw = filled(AEC_CLASS_WEIGHTS, ones);
  double *sums;
  AEC_CHECK(cudaMalloc(&sums, sizeof(double) * AEC_LOSS_SUMS));
  run r = place(dP, dG, dA, dX, dT, 5, 1, 0, sums, dcw);
  double flops = 0;
  for (int k = 0; k < m->n_timed; k++) flops += m->timed_flops[k][0] + m->timed_flops[k][1];
  std::vector<double> secs, cpu;
  for (int i = 0; i < 1 + steps; i++) {   /* one warm-up step: stacks and shared memory */
    auto t0 = std::chrono::steady_clock::now();
    double c0 = cpu_seconds();
    aert_losses losses;
    forward_kernels(&r, &losses);
    backward_kernels(&r);
    aec_cuda_optim_step(dP, dG, dm, dv, &m->optim, i + 1, m->optim.lr);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) secs.push_back(s), cpu.push_back(cpu_seconds() - c0);
  }
  std::sort(secs.begin(), secs.end());
  std::sort(cpu.begin(), cpu.end());
  double med = secs[secs.size() / 2], cmed = cpu[cpu.size() / 2];
  printf("%s batch %d: %.1f MFLOP a step; median of %d: %.3f s wall, %.1f MFLOP/s; %.3f s CPU, %.1f MFLOP/s\n", m->name, m->batch,
         flops / 1e6, steps, med, flops / med / 1e6, cmed, flops / cmed / 1e6);
  return 0;
}
