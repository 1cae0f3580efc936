/* compare.cu - one training step of a model on the CPU target (model.c) and on the CUDA
 * target (model.cu, its kernels under the emulator), from the same initial parameters and
 * the same batch: the loss terms, the output and every parameter gradient must agree; then
 * two steps of each optimizer (SGD plain, with momentum and Nesterov, Adam, AdamW) from that
 * gradient, the runtime's aert_optim_step against model.cu's optim_step kernel.
 * Built by tests/cuda/target.sh against one generated folder:
 *
 *   cc -DAEC_NO_MAIN -c DIR/model.c -o model_cpu.o ...
 *   g++ -std=gnu++20 -fopenmp -Iruntime -IDIR -x c++ tests/cuda/compare.cu -x none model_cpu.o build/libaert.a ...
 *   compare TOL      prints the worst differences; exit status 1 when one is over TOL
 *   compare TOL --low FLOOR
 *                    a build with tf32 or bf16 GEMMs (aec build --precision): the step within
 *                    TOL, each gradient by its norm (below), the optimizer still within 1e-5
 *                    (it is fp32 in every build); exit status 4 when the step's largest
 *                    difference is not over FLOOR (the tensor cores were not used)
 *   compare TOL STEPS STEP_TOL SGD_TOL
 *                    then STEPS training steps on random batches, the CPU device
 *                    (device_cpu.c) against model.cu's, each driven as the trainer drives
 *                    it (accumulation and clipping included): with the spec's optimizer
 *                    every step's loss within TOL and at the end every parameter tensor
 *                    within STEP_TOL of its largest value (Adam magnifies rounding, see
 *                    training_steps); the same steps with plain SGD (its first step moving
 *                    a parameter by at most 1e-3 of the largest), losses within TOL and
 *                    parameters within SGD_TOL (a bias whose gradient sums thousands of
 *                    pixels that nearly cancel carries that sum's rounding into each step)
 *
 * A difference is taken relative to the largest magnitude of its tensor (or of the loss),
 * since sums in another order differ by rounding in proportion to the terms, not the result.
 * With --low a gradient's is its norm's, |g - g'| / |g|: a ReLU whose input is near zero
 * passes a gradient in one precision and not in the other, so single values may differ by
 * their whole size while the tensor as a whole stays within the format's rounding. */
#define AEC_NO_MAIN
#include "model.cu"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <vector>


/* |a - b| / |a| in the 2-norm (0 when both are zero; infinite with a NaN). */
static double norm_diff(const float *a, const float *b, long n) {
  double aa = 0, dd = 0;
  for (long i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    aa += (double)a[i] * a[i], dd += d * d;
  }
  if (dd != dd) return INFINITY;
  return aa > 0 ? sqrt(dd / aa) : sqrt(dd);
}

static double worst_diff(const float *a, const float *b, long n) {
  double big = 0, worst = 0;
  for (long i = 0; i < n; i++) big = fmax(big, fabs(a[i]));
  for (long i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d != d) return INFINITY;   /* a NaN on either side */
    worst = fmax(worst, d);
  }
  return big > 0 ? worst / big : worst;
}

/* Two steps of m's optimizer from P with gradient G, on the host and on the device: the
 * largest difference of the parameters, relative to their largest magnitude. */
static double optimizer_steps(const aert_model *m, const std::vector<float> &P, const std::vector<float> &G) {
  long n = m->param_floats;
  aert_optimizer o;
  if (aert_optim_init(&o, m) != 0) return INFINITY;
  for (long i = 0; i < n; i++) o.m[i] = 0, o.v ? o.v[i] = 0 : 0;
  std::vector<float> host = P, dev(n);
  float *dp, *dg, *dm, *dv = NULL;
  AEC_CHECK(cudaMalloc(&dp, sizeof(float) * n));
  AEC_CHECK(cudaMalloc(&dg, sizeof(float) * n));
  AEC_CHECK(cudaMalloc(&dm, sizeof(float) * n));
  AEC_CHECK(cudaMemcpy(dp, P.data(), sizeof(float) * n, cudaMemcpyHostToDevice));
  AEC_CHECK(cudaMemcpy(dg, G.data(), sizeof(float) * n, cudaMemcpyHostToDevice));
  AEC_CHECK(cudaMemset(dm, 0, sizeof(float) * n));
  if (o.v) {
    AEC_CHECK(cudaMalloc(&dv, sizeof(float) * n));
    AEC_CHECK(cudaMemset(dv, 0, sizeof(float) * n));
  }
  for (long step = 1; step <= 2; step++) {
    aert_optim_step(&o, m, host.data(), G.data(), m->optim.lr);
    aec_cuda_optim_step(dp, dg, dm, dv, &m->optim, step, m->optim.lr);
  }
  AEC_CHECK(cudaMemcpy(dev.data(), dp, sizeof(float) * n, cudaMemcpyDeviceToHost));
  aert_optim_free(&o);
  return worst_diff(host.data(), dev.data(), n);
}

/* The batch of training step `step`: uniform inputs, targets as main's. */
static void random_batch(const aert_model *m, int step, std::vector<float> &X, std::vector<float> &T) {
  for (size_t i = 0; i < X.size(); i++) X[i] = aert_uniform(101 + (uint64_t)step, i);
  for (size_t i = 0; i < T.size(); i++)
    T[i] = !m->n_classes ? aert_uniform(203 + (uint64_t)step, i) : (i + (size_t)step) % 7 == 3 ? -1.0f
                                                                  : (float)(aert_hash64(i + 7919 * (size_t)step) % (uint64_t)m->n_classes);
}

/* STEPS training steps from P on the CPU device and on model.cu's, as the trainer drives a
 * device, with optimizer o. After each update model.cu's device takes the CPU's parameters
 * again (its optimizer state stays its own), so that every step starts both from the same
 * point: left to run apart they differ by rounding after one step, and a ReLU whose input
 * then rounds to the other side of zero changes a gradient visibly, which later steps
 * spread (on an AMD EPYC without AVX-512, conv_ae's d.b ended 2e-2 of its largest apart
 * after ten SGD steps although every step agreed). Even from the same point a step can meet
 * such a kink (img2img's d2.2.b: one of its 32 gradients 1.4% apart), so the check is the
 * update of the whole model in the 2-norm, |u_cpu - u_cuda| / |u_cpu| (a kink there 3e-3;
 * a wrong step, a stale gradient or optimizer state, order 1; parameters kept from one step
 * to the next are the trainers' comparison in target.sh); the worst tensor, relative
 * to its largest value, is printed beside it. Returns the worst step of each: the loss
 * relative to its magnitude, the update, the tensor.
 * Adam's step is lr m / (sqrt(v) + eps): for a gradient that is nearly zero it is about lr
 * whatever the gradient's size, so a rounding-level difference there moves the parameter
 * by a visible fraction of lr; SGD's step is lr g, and its differences stay at rounding. */
struct drift { double loss, updates, params; };
static drift training_steps(const aert_model *m, const aert_model *cuda_m, const aert_optim &o, const std::vector<float> &P,
                            int steps) {
  aert_model cpu = *m, cuda = *cuda_m;
  cpu.device = NULL;
  cpu.optim = cuda.optim = o;
  aert_device dc, dd;
  if (aert_device_open(&dc, &cpu, 1) != 0 || aert_device_open(&dd, &cuda, 1) != 0) return {INFINITY, INFINITY, INFINITY};
  memcpy(dc.params, P.data(), sizeof(float) * m->param_floats);
  memcpy(dd.params, P.data(), sizeof(float) * m->param_floats);
  aert_device_upload(&dc);
  aert_device_upload(&dd);
  std::vector<float> X(m->batch * m->in_size), T(m->batch * (m->target_size ? m->target_size : 1));
  int acc = o.accumulate > 1 ? o.accumulate : 1;
  long n = m->param_floats;
  std::vector<float> before = P, uc(n), ud(n);   /* the parameters before an update, the two updates */
  double lw = 0, pw = 0, uw = 0;
  const char *at = "all equal";
  for (int step = 0; step < steps; step++) {
    random_batch(m, step, X, T);
    float l[2];
    aert_device *d[2] = {&dc, &dd};
    for (int k = 0; k < 2; k++) {
      aert_device_batch(d[k], X.data(), T.data());
      l[k] = aert_device_forward(d[k], 1, 17 + (uint64_t)step, NULL);
      aert_device_backward(d[k], 17 + (uint64_t)step);
      (void)aert_device_grads(d[k]);   /* the trainer's NaN check reads them */
      if (acc > 1) aert_device_accumulate(d[k], step % acc == 0);
      if ((step + 1) % acc == 0) aert_device_step(d[k], acc > 1 ? acc : 0, o.lr);
    }
    lw = fmax(lw, worst_diff(&l[0], &l[1], 1));
    if ((step + 1) % acc != 0) continue;
    aert_device_download(&dc);
    aert_device_download(&dd);
    for (long i = 0; i < n; i++) uc[i] = dc.params[i] - before[i], ud[i] = dd.params[i] - before[i];
    double w = norm_diff(uc.data(), ud.data(), n);
    if (w > uw) uw = w;
    for (int k = 0; k < m->n_params; k++) {
      const aert_param *p = &m->params[k];
      w = worst_diff(dc.params + p->offset, dd.params + p->offset, p->size);
      if (w > pw) pw = w, at = p->name;
    }
    memcpy(dd.params, dc.params, sizeof(float) * n);
    memcpy(before.data(), dc.params, sizeof(float) * n);
    aert_device_upload(&dd);
  }
  const char *kind = o.kind == AERT_OPT_ADAM ? "adam" : o.kind == AERT_OPT_ADAMW ? "adamw" : o.nesterov ? "sgd nesterov"
                   : o.momentum > 0 ? "sgd momentum" : "sgd";
  printf("; %s: losses %.1e, updates %.1e, parameters %.1e (%s)", kind, lw, uw, pw, at);
  aert_device_close(&dc);
  aert_device_close(&dd);
  return {lw, uw, pw};
}

int main(int argc, char **argv) {
  double tol = argc > 1 ? atof(argv[1]) : 1e-5;
  bool low = argc > 3 && !strcmp(argv[2], "--low");
  double floor_ = low ? atof(argv[3]) : 0;
  const aert_model *m = &aec_model, cuda = cuda_descriptor();
  if (m->set_class_weights) {   /* weights = auto: what a trainer would set, on both sides */
    float w[AERT_MAX_CLASSES];
    for (int c = 0; c < m->n_classes; c++) w[c] = 0.5f + 0.25f * (float)c;
    m->set_class_weights(w);
    cuda.set_class_weights(w);
  }
  std::vector<float> P(m->param_floats), Gc(m->param_floats), Ac(m->arena_floats);
  if (aert_init_params(m, P.data(), 3) != 0) return 2;
  std::vector<float> X(m->batch * m->in_size), T(m->batch * (m->target_size ? m->target_size : 1));
  for (size_t i = 0; i < X.size(); i++) X[i] = aert_uniform(11, i);
  for (size_t i = 0; i < T.size(); i++)
    T[i] = !m->n_classes ? aert_uniform(13, i) : i % 7 == 3 ? -1.0f   /* a skipped (ignored) label */
                                                : (float)(aert_hash64(i) % (uint64_t)m->n_classes);
  aert_device dev;   /* model.cu's device, driven as the trainer drives it */
  if (aert_device_open(&dev, &cuda, 1) != 0) return 2;
  memcpy(dev.params, P.data(), sizeof(float) * m->param_floats);
  aert_device_upload(&dev);
  aert_losses lc, ld;
  std::vector<float> Pc = P;   /* training updates batch norm's running statistics in it */
  m->forward(Pc.data(), Ac.data(), X.data(), T.data(), 1, 5, &lc);
  m->backward(Pc.data(), Gc.data(), Ac.data(), X.data(), T.data(), 5);
  aert_device_batch(&dev, X.data(), T.data());
  ld.total = aert_device_forward(&dev, 1, 5, &ld);
  std::vector<float> out(aert_device_output(&dev), aert_device_output(&dev) + m->batch * m->out_size), lat;
  if (aert_device_latent(&dev)) lat.assign(aert_device_latent(&dev), aert_device_latent(&dev) + m->batch * m->latent_size);
  aert_device_backward(&dev, 5);
  const float *Gd = aert_device_grads(&dev);
  aert_device_download(&dev);
  double worst = worst_diff(&lc.total, &ld.total, 1), w;
  printf("loss %.9g / %.9g", lc.total, ld.total);
  w = worst_diff(Pc.data(), dev.params, m->param_floats);
  if (w > 0) printf(", parameters after the forward pass %.1e", w);
  worst = fmax(worst, w);
  for (int t = 0; t < m->n_loss_terms; t++) worst = fmax(worst, worst_diff(&lc.term[t], &ld.term[t], 1));
  w = worst_diff(m->output(Ac.data()), out.data(), m->batch * m->out_size);
  printf(", output %.1e", w);
  worst = fmax(worst, w);
  if (m->latent(Ac.data())) {
    w = worst_diff(m->latent(Ac.data()), lat.data(), m->batch * m->latent_size);
    printf(", latent %.1e", w);
    worst = fmax(worst, w);
  }
  aert_losses ec, ed;   /* evaluation: no noise or dropout, batch norm's running statistics */
  m->forward(Pc.data(), Ac.data(), X.data(), T.data(), 0, 5, &ec);
  ed.total = aert_device_forward(&dev, 0, 5, &ed);
  w = fmax(worst_diff(&ec.total, &ed.total, 1), worst_diff(m->output(Ac.data()), aert_device_output(&dev), m->batch * m->out_size));
  printf(", evaluation %.1e", w);
  worst = fmax(worst, w);
  const char *at = "all equal";
  double gw = 0;
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    if (p->frozen) continue;
    w = (low ? norm_diff : worst_diff)(Gc.data() + p->offset, Gd + p->offset, p->size);
    if (w > gw) gw = w, at = p->name;
  }
  printf(", gradients%s %.1e (%s)", low ? " (norm)" : "", gw, at);
  static const struct { const char *name; aert_opt_kind kind; float momentum, weight_decay; int nesterov; } opts[] = {
      {"sgd", AERT_OPT_SGD, 0, 0, 0}, {"momentum", AERT_OPT_SGD, 0.9f, 1e-3f, 0}, {"nesterov", AERT_OPT_SGD, 0.9f, 0, 1},
      {"adam", AERT_OPT_ADAM, 0, 1e-2f, 0}, {"adamw", AERT_OPT_ADAMW, 0, 0.05f, 0}};
  double ow = 0;
  for (const auto &o : opts) {
    aert_model mo = *m;
    mo.optim.kind = o.kind, mo.optim.momentum = o.momentum, mo.optim.weight_decay = o.weight_decay, mo.optim.nesterov = o.nesterov;
    if (o.kind == AERT_OPT_SGD) mo.optim.lr = 0.01f;
    ow = fmax(ow, optimizer_steps(&mo, P, Gc));
  }
  printf(", optimizer steps %.1e\n", ow);
  aert_device_close(&dev);
  if (low) {
    if (fmax(worst, gw) > tol || ow > 1e-5) return 1;
    return fmax(worst, gw) > floor_ ? 0 : 4;
  }
  bool ok = fmax(fmax(worst, gw), ow) <= tol;
  if (argc > 4) {
    int steps = atoi(argv[2]);
    printf("%d training steps", steps);
    drift own = training_steps(m, &cuda, m->optim, P, steps);
    aert_optim sgd = m->optim;   /* a rate at which the first step moves a parameter by at most 1e-3 of the largest */
    double pmax = 0, gmax = 0;
    for (long i = 0; i < m->param_floats; i++) pmax = fmax(pmax, fabs(P[i])), gmax = fmax(gmax, fabs(Gc[i]));
    sgd.kind = AERT_OPT_SGD, sgd.momentum = 0, sgd.nesterov = 0, sgd.weight_decay = 0;
    sgd.lr = gmax > 0 ? (float)(1e-3 * pmax / gmax) : 0.01f;
    bool is_plain = m->optim.kind == AERT_OPT_SGD && m->optim.momentum == 0 && m->optim.weight_decay == 0;
    drift plain = is_plain ? own : training_steps(m, &cuda, sgd, P, steps);
    printf("\n");
    ok = ok && own.loss <= tol && own.updates <= atof(argv[3]) && plain.loss <= tol && plain.updates <= atof(argv[4]);
  }
  return ok ? 0 : 1;
}
