/* on_device.cu - what model.cu's device computes where the gradients are, instead of on the
 * host, must be what the host computes. Built by tests/cuda/graph.sh against one generated
 * folder, as tests/cuda/compare.cu is:
 *
 *   on_device   prints what it checked; exit status 1 at the first disagreement
 *
 * The finite check (grads_nonfinite) finds the CPU device's first NaN or infinity of the
 * gradient arena: 1. after a clean step, none; 2. values written into the gradient arena
 * (grads, then grads_changed): the first of them, NaN or infinity; 3. NaN parameters, so
 * that backward itself makes the gradients non-finite. The clipping's kernels
 * (grad_norm_part, grad_clip_scale, grad_scale_at) scale a gradient to the bits of optim.c's
 * aert_clip_grad_norm: 4. over the limit; 5. within it. */
#define AEC_NO_MAIN
#include "model.cu"

#include <math.h>
#include <vector>

static int failures;

/* The device's answer against the expected one (its value as well: NaN or which infinity). */
static void expect(const char *what, aert_device *d, long want, float want_v) {
  float got_v = 0;
  long got = aert_device_grads_nonfinite(d, &got_v);
  bool same = got == want && (want < 0 || (isnan(got_v) == isnan(want_v) && (isnan(want_v) || got_v == want_v)));
  printf("%s: offset %ld (%g), expected %ld (%g)%s\n", what, got, got >= 0 ? got_v : 0.0, want, want >= 0 ? want_v : 0.0,
         same ? "" : "  <- differs");
  failures += !same;
}

/* One training step's forward and backward on d, from parameters P. */
static void step(aert_device *d, const std::vector<float> &P, const std::vector<float> &X) {
  memcpy(d->params, P.data(), sizeof(float) * P.size());
  aert_device_upload(d);
  aert_device_batch(d, X.data(), X.data());
  aert_losses l;
  aert_device_forward(d, 1, 7, &l);
  aert_device_backward(d, 7);
}

/* The clipping kernels on a gradient of random values in the tensors (zero in the padding
 * between them, as backward leaves it) against aert_clip_grad_norm on the host. */
static void check_clipping(const char *what, const aert_model *m, float clip, float magnitude, bool over) {
  long n = m->param_floats;
  std::vector<float> host(n, 0.0f), dev(n);
  for (int k = 0; k < m->n_params; k++)
    for (long i = 0; i < m->params[k].size; i++)
      host[m->params[k].offset + i] = magnitude * (2 * aert_uniform(17, m->params[k].offset + i) - 1);
  float *g, *scale;
  double *part, *norm, dev_norm;
  AEC_CHECK(cudaMalloc(&g, sizeof(float) * n));
  AEC_CHECK(cudaMalloc(&scale, sizeof(float)));
  AEC_CHECK(cudaMalloc(&part, sizeof(double) * AEC_NORM_CHUNKS));
  AEC_CHECK(cudaMalloc(&norm, sizeof(double)));
  AEC_CHECK(cudaMemcpy(g, host.data(), sizeof(float) * n, cudaMemcpyHostToDevice));
  AEC_LAUNCH(grad_norm_part, dim3((AEC_NORM_CHUNKS + AECD_THREADS - 1) / AECD_THREADS), AECD_THREADS, 0, 0, (const float *)g, part);
  AEC_LAUNCH(grad_clip_scale, dim3(1), dim3(1), 0, 0, (const double *)part, clip, scale, norm);
  AEC_LAUNCH(grad_scale_at, dim3((n + 1023) / 1024), AECD_THREADS, 0, 0, g, (const float *)scale);
  AEC_CHECK(cudaMemcpy(dev.data(), g, sizeof(float) * n, cudaMemcpyDeviceToHost));
  AEC_CHECK(cudaMemcpy(&dev_norm, norm, sizeof dev_norm, cudaMemcpyDeviceToHost));
  double host_norm = aert_clip_grad_norm(m, host.data(), clip);
  long differ = 0;
  for (long i = 0; i < n; i++) differ += memcmp(&host[i], &dev[i], sizeof(float)) != 0;
  printf("%s: norm %.17g (optim.c's %.17g), limit %g: %ld of %ld values differ from optim.c's\n", what, dev_norm, host_norm, clip,
         differ, n);
  failures += differ != 0 || memcmp(&dev_norm, &host_norm, sizeof dev_norm) != 0 || (host_norm > clip) != over;
  AEC_CHECK(cudaFree(g));
  AEC_CHECK(cudaFree(scale));
  AEC_CHECK(cudaFree(part));
  AEC_CHECK(cudaFree(norm));
}

int main(void) {
  const aert_model *m = &aec_model, cuda = cuda_descriptor();
  long n = m->param_floats;
  std::vector<float> P(n), X((size_t)m->batch * m->in_size);
  if (aert_init_params(m, P.data(), 3) != 0) return 2;
  for (size_t i = 0; i < X.size(); i++) X[i] = aert_uniform(11, i);
  aert_device dev, cpu;
  if (aert_device_open(&dev, &cuda, 1) != 0 || aert_device_open(&cpu, m, 1) != 0) return 2;
  step(&dev, P, X);
  expect("a clean step", &dev, -1, 0);

  long late = n - 3, early = n / 2;
  float *g = aert_device_grads(&dev);
  g[late] = NAN;
  g[early] = INFINITY;
  aert_device_grads_changed(&dev);
  expect("an infinity before a NaN", &dev, early, INFINITY);
  g = aert_device_grads(&dev);
  g[early] = 1;
  aert_device_grads_changed(&dev);
  expect("the NaN alone", &dev, late, NAN);

  for (int k = m->n_params / 2; k < m->n_params; k++)   /* a NaN in each tensor of the second half */
    P[m->params[k].offset + m->params[k].size / 2] = NAN;
  step(&dev, P, X);
  step(&cpu, P, X);
  float cv = 0;
  long want = aert_device_grads_nonfinite(&cpu, &cv);
  if (want < 0) printf("the NaN parameters left the CPU's gradients finite\n"), failures++;
  expect("NaN parameters", &dev, want, cv);
  aert_device_close(&dev);
  aert_device_close(&cpu);
  check_clipping("clipping over the limit", m, 0.5f, 1.0f, true);
  check_clipping("clipping within the limit", m, 0.5f, 1e-5f, false);
  return failures ? 1 : 0;
}
