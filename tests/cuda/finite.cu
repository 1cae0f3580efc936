/* finite.cu - the finite check of model.cu's device (grads_nonfinite): the first NaN or
 * infinity of the gradient arena, found by the check kernels where the gradients are, must
 * be the one the CPU device finds on the host. Built by tests/cuda/graph.sh against one
 * generated folder, as tests/cuda/compare.cu is:
 *
 *   finite      prints what it checked; exit status 1 at the first disagreement
 *
 * 1. after a clean step: none; 2. values written into the gradient arena (grads, then
 * grads_changed): the first of them, NaN or infinity; 3. a NaN parameter, so that backward
 * itself makes the gradients non-finite: the CPU device's offset and kind. */
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

  const aert_param *last = &m->params[m->n_params - 1];   /* the output layer's bias */
  P[last->offset + last->size / 2] = NAN;
  step(&dev, P, X);
  step(&cpu, P, X);
  float cv = 0;
  long want = aert_device_grads_nonfinite(&cpu, &cv);
  if (want < 0) printf("the NaN parameter left the CPU's gradients finite\n"), failures++;
  expect("a NaN parameter", &dev, want, cv);
  aert_device_close(&dev);
  aert_device_close(&cpu);
  return failures ? 1 : 0;
}
