/* aec_cuda_step.cu - times training steps of one generated model.cu on the GPU: its
 * forward and backward drivers and the optimizer kernel on device buffers (parameters,
 * gradients, Adam's moments, the arena, a fixed random batch), as the trainer runs them
 * on its compute stream, launched one by one and as one replayed CUDA graph; the host
 * glue's copies are not timed. Built by tests/gpu/run.sh with nvcc around a folder of
 * `aec build --target cuda`:
 *
 *   nvcc -std=c++17 -O3 -arch=sm_90 -Iruntime -IDIR bench/aec_cuda_step.cu DIR/model_cpu.o build/libaert.a ...
 *   aec_cuda_step STEPS      one JSON line: median ms per step after 3 warm-up steps (plain
 *                            launches, and graph_median_ms: the step replayed as a graph), images/s */
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

/* One step's launches on r->stream: forward, backward, and the optimizer with its settings
 * copied from pinned *o_host into *o_dev, as the trainer's step block does. */
static void step_launches(const run *r, float *dP, float *dG, float *dm, float *dv, aecd_optim *o_dev, const aecd_optim *o_host) {
  forward_kernels(r);
  backward_kernels(r);
  AEC_CHECK(cudaMemcpyAsync(o_dev, o_host, sizeof *o_dev, cudaMemcpyHostToDevice, r->stream));
  AEC_LAUNCH(optim_step_at, dim3((aec_model.param_floats + 1023) / 1024), AECD_THREADS, 0, r->stream, dP, (const float *)dG, dm, dv,
             (const aecd_optim *)o_dev);
}

/* The median ms of `steps` steps after 3 warm-up ones: launched one by one, or (graph) as the
 * replay of one captured step. */
static double median_step(const run *r, int steps, bool graph, float *dP, float *dG, float *dm, float *dv, aecd_optim *o_dev,
                          aecd_optim *o_host) {
  cudaGraphExec_t exec = NULL;
  if (graph) {
    cudaGraph_t g;
    AEC_CHECK(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeGlobal));
    step_launches(r, dP, dG, dm, dv, o_dev, o_host);
    AEC_CHECK(cudaStreamEndCapture(r->stream, &g));
    AEC_CHECK(cudaGraphInstantiate(&exec, g, 0));
    AEC_CHECK(cudaGraphDestroy(g));
  }
  cudaEvent_t t0, t1;
  AEC_CHECK(cudaEventCreate(&t0));
  AEC_CHECK(cudaEventCreate(&t1));
  std::vector<float> ms;
  for (int i = 0; i < 3 + steps; i++) {
    AEC_CHECK(cudaStreamSynchronize(r->stream));
    *o_host = aecd_optim_of(&aec_model.optim, i + 1, aec_model.optim.lr);
    AEC_CHECK(cudaEventRecord(t0, r->stream));
    if (graph) AEC_CHECK(cudaGraphLaunch(exec, r->stream));
    else step_launches(r, dP, dG, dm, dv, o_dev, o_host);
    AEC_CHECK(cudaEventRecord(t1, r->stream));
    AEC_CHECK(cudaEventSynchronize(t1));
    float t;
    AEC_CHECK(cudaEventElapsedTime(&t, t0, t1));
    if (i >= 3) ms.push_back(t);
  }
  if (exec) AEC_CHECK(cudaGraphExecDestroy(exec));
  AEC_CHECK(cudaEventDestroy(t0));
  AEC_CHECK(cudaEventDestroy(t1));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
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
  cudaStream_t stream;
  AEC_CHECK(cudaStreamCreate(&stream));
  aecd_optim *o_dev = filled<aecd_optim>(1, {}), *o_host;
  AEC_CHECK(cudaMallocHost(&o_host, sizeof *o_host));
  run r = place(dP, dG, dA, dX, dT, seed, 1, 0, sums, sums_host, dcw, stream);
  double med = median_step(&r, steps, false, dP, dG, dm, dv, o_dev, o_host);
  double graph = median_step(&r, steps, true, dP, dG, dm, dv, o_dev, o_host);
  /* the plain launches ran first: under --gemm cublaslt they made the plans outside the capture */
  static const char *const side[] = {"aec-cuda", "aec-cuda-tf32", "aec-cuda-bf16"};   /* by AECD_PRECISION */
#if defined(AECD_LT) && AECD_LT
  const char *lt = "-cublaslt";   /* --gemm cublaslt */
#else
  const char *lt = "";
#endif
  printf("{\"side\": \"%s%s\", \"model\": \"%s\", \"batch\": %d, \"steps\": %d, \"median_ms\": %.3f, \"graph_median_ms\": %.3f, "
         "\"images_per_s\": %.1f}\n", side[AECD_PRECISION], lt, m->name, m->batch, steps, med, graph, m->batch / med * 1e3);
  return 0;
}
