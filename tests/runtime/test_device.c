/* test_device.c - a model that brings its own device: the commands reach the model only
 * through it, and keep to the protocol of device.h. The mirror device keeps its
 * parameters, optimizer state and gradients apart from the host views, as a GPU does, and
 * fills the host views with NaN whenever they are not current: a command that reads them
 * without download, or writes them without upload, trains or predicts otherwise than the
 * CPU device. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "toy_model.h"

typedef struct {
  aert_model cpu_model;    /* the model without its own device */
  aert_device inner;       /* the CPU device: the mirror's "device memory" */
  aert_optimizer host_opt;
  float *host_grads;
} mirror;

static long forwards;      /* forward calls that reached the mirror */
static long grads_copied;  /* grads calls: the whole gradient arena to the host */
static long grads_checked; /* grads_nonfinite calls: the check where the gradients are */

static void poison(float *p, long n) {
  for (long i = 0; p && i < n; i++)
    p[i] = NAN;
}

static void poison_host(aert_device *d) {
  mirror *mr = d->own;
  poison(d->params, d->m->param_floats);
  if (d->opt) {
    poison(mr->host_opt.m, mr->host_opt.n);
    poison(mr->host_opt.v, mr->host_opt.n);
  }
}

static void copy_optimizer(aert_optimizer *to, const aert_optimizer *from) {
  memcpy(to->m, from->m, sizeof(float) * from->n);
  if (from->v)
    memcpy(to->v, from->v, sizeof(float) * from->n);
  to->step = from->step;
}

static int mirror_open(aert_device *d) {
  mirror *mr = calloc(1, sizeof *mr);
  if (!(d->own = mr))
    return -1;
  mr->cpu_model = *d->m;
  mr->cpu_model.device = NULL;
  if (aert_device_open(&mr->inner, &mr->cpu_model, d->training) != 0)
    return -1;
  d->params = malloc(sizeof(float) * d->m->param_floats);
  mr->host_grads = malloc(sizeof(float) * d->m->param_floats);
  if (d->training && aert_optim_init(&mr->host_opt, d->m) == 0)
    d->opt = &mr->host_opt;
  return d->params && mr->host_grads && (!d->training || d->opt) ? 0 : -1;
}

static void mirror_close(aert_device *d) {
  mirror *mr = d->own;
  if (mr) {
    aert_device_close(&mr->inner);
    aert_optim_free(&mr->host_opt);
    free(mr->host_grads);
    free(mr);
  }
  free(d->params);
}

static void mirror_upload(aert_device *d) {
  mirror *mr = d->own;
  memcpy(mr->inner.params, d->params, sizeof(float) * d->m->param_floats);
  if (d->opt)
    copy_optimizer(mr->inner.opt, d->opt);
  poison_host(d);
}

static void mirror_download(aert_device *d) {
  mirror *mr = d->own;
  memcpy(d->params, mr->inner.params, sizeof(float) * d->m->param_floats);
  if (d->opt)
    copy_optimizer(d->opt, mr->inner.opt);
}

static void mirror_batch(aert_device *d, const float *x, const float *y) {
  aert_device_batch(&((mirror *)d->own)->inner, x, y);
}

static float mirror_forward(aert_device *d, int training, uint64_t seed, aert_losses *l) {
  forwards++;
  return aert_device_forward(&((mirror *)d->own)->inner, training, seed, l);
}

static void mirror_backward(aert_device *d, uint64_t seed) {
  aert_device_backward(&((mirror *)d->own)->inner, seed);
}

static void mirror_decode(aert_device *d, const float *z) {
  aert_device_decode(&((mirror *)d->own)->inner, z);
}

static const float *mirror_output(const aert_device *d) {
  return aert_device_output(&((const mirror *)d->own)->inner);
}

static const float *mirror_latent(const aert_device *d) {
  return aert_device_latent(&((const mirror *)d->own)->inner);
}

static float *mirror_grads(aert_device *d) {
  mirror *mr = d->own;
  grads_copied++;
  memcpy(mr->host_grads, aert_device_grads(&mr->inner), sizeof(float) * d->m->param_floats);
  return mr->host_grads;
}

static void mirror_grads_changed(aert_device *d) {
  mirror *mr = d->own;
  memcpy(aert_device_grads(&mr->inner), mr->host_grads, sizeof(float) * d->m->param_floats);
}

static void mirror_accumulate(aert_device *d, int first) {
  aert_device_accumulate(&((mirror *)d->own)->inner, first);
}

static void mirror_step(aert_device *d, int batches, float lr) {
  aert_device_step(&((mirror *)d->own)->inner, batches, lr);
}

static long mirror_grads_nonfinite(aert_device *d, float *value) {
  grads_checked++;
  return aert_device_grads_nonfinite(&((mirror *)d->own)->inner, value);
}

static const aert_device_ops mirror_ops = {
  .open = mirror_open, .close = mirror_close, .upload = mirror_upload,
  .download = mirror_download, .batch = mirror_batch, .forward = mirror_forward,
  .backward = mirror_backward, .decode = mirror_decode, .output = mirror_output,
  .latent = mirror_latent, .grads = mirror_grads, .grads_changed = mirror_grads_changed,
  .accumulate = mirror_accumulate, .step = mirror_step, .grads_nonfinite = mirror_grads_nonfinite,
};

/* A mirror that keeps the training set (keep, batch_kept): its batches are made from the
 * set's bytes with the arithmetic a device's kernel uses (aert_internal.h), on the host, and
 * must be the loader's, so that training is the CPU device's bit for bit. */
static aert_device_set kept;
static long kept_batches, host_batches;

static int keeping_keep(aert_device *d, const aert_device_set *set) {
  kept = *set;
  return 0;
}

static void keeping_batch_kept(aert_device *d, const long *index, long epoch) {
  const aert_model *m = d->m;
  static float x[TOY_BATCH * 784], tmp[784];
  int h, w, c;
  aert_image_hwc(m->in_rank, m->in_shape, m->in_size, &h, &w, &c);
  cr_assert(m->batch == TOY_BATCH && m->in_size == 784 && !kept.y);
  for (long b = 0; b < m->batch; b++) {
    const unsigned char *img = kept.bytes + index[b] * kept.in_size;
    float *xb = x + b * m->in_size;
    for (long j = 0; j < m->in_size; j++)
      xb[j] = aert_add_rn(aert_mul_rn((float)img[j], kept.scale), kept.offset);
    if (kept.augment) {
      aert_transform t;
      aert_augment_draw(&m->data, kept.seed, epoch, index[b], &t);
      memcpy(tmp, xb, sizeof(float) * m->in_size);
      aert_augment_image(&t, tmp, xb, h, w, c, m->data.offset, 0);
    }
  }
  kept_batches++;
  aert_device_batch(&((mirror *)d->own)->inner, x, x);
}

static void counting_batch(aert_device *d, const float *x, const float *y) {
  host_batches++;
  mirror_batch(d, x, y);
}

static long host_allocs, host_frees;

static void *counting_host_alloc(aert_device *d, size_t n) {
  host_allocs++;
  return malloc(n);
}

static void counting_host_free(aert_device *d, void *p) {
  host_frees++;
  free(p);
}

static aert_device_ops keeping_ops;

static const aert_device_ops *keeping_device(void) {
  keeping_ops = mirror_ops;
  keeping_ops.batch = counting_batch;
  keeping_ops.keep = keeping_keep;
  keeping_ops.batch_kept = keeping_batch_kept;
  keeping_ops.host_alloc = counting_host_alloc;
  keeping_ops.host_free = counting_host_free;
  return &keeping_ops;
}

static int run(const aert_model *m, const char *fmt, const char *dir) {
  char args[600];
  snprintf(args, sizeof args, fmt, dir);
  return run_main(m, args);
}

static void assert_same_file(const char *a, const char *b) {
  unsigned char *pa, *pb;
  size_t na, nb;
  cr_assert_eq(aert_read_file(a, &pa, &na), 0);
  cr_assert_eq(aert_read_file(b, &pb, &nb), 0);
  cr_assert(na == nb && !memcmp(pa, pb, na), "'%s' and '%s' differ", a, b);
  free(pa);
  free(pb);
}

Test(device, a_model_with_its_own_device_trains_resumes_and_predicts_as_on_the_cpu, .timeout = 120) {
  aert_model mirrored = toy_model;
  mirrored.device = &mirror_ops;
  char *cpu = tmp_dir(), *own = tmp_dir();
  const char *steps[] = {"train --quiet --limit 1000 --epochs 1 --threads 1 --out %s",
                         "train --quiet --limit 1000 --epochs 2 --threads 1 --resume --out %s",
                         "encode --quiet --threads 1 --out %s", "predict --quiet --threads 1 --out %s"};
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(run(&toy_model, steps[i], cpu), 0);
    cr_assert_eq(run(&mirrored, steps[i], own), 0, "%s", steps[i]);
  }
  cr_assert_gt(forwards, 0, "the commands ran the model through its device");
  cr_assert_gt(grads_checked, 0, "the trainer checked the gradients on the device");
  cr_assert_eq(grads_copied, 0, "one process never copies the gradient arena to the host");
  assert_same_file(path_in(cpu, "last.ckpt"), path_in(own, "last.ckpt"));
  assert_same_file(path_in(cpu, "latent.npy"), path_in(own, "latent.npy"));
  assert_same_file(path_in(cpu, "predictions.npy"), path_in(own, "predictions.npy"));
}

/* eval (its pictures), sample and interpolate (the decoder) and latent, on the model's device. */
Test(device, the_decoder_and_the_pictures_come_from_the_models_device, .init = cr_redirect_stdout,
     .timeout = 120) {
  aert_model mirrored = toy_family_model;
  mirrored.device = &mirror_ops;
  char *cpu = tmp_dir(), *own = tmp_dir();
  const char *steps[] = {"train --quiet --limit 500 --epochs 1 --threads 1 --out %s",
                         "eval --quiet --threads 1 --out %s", "sample --quiet --n 16 --out %s",
                         "interpolate --quiet --from 3 --to 7 --steps 5 --out %s",
                         "latent --quiet --points 200 --out %s"};
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(run(&toy_family_model, steps[i], cpu), 0);
    cr_assert_eq(run(&mirrored, steps[i], own), 0, "%s", steps[i]);
  }
  const char *files[] = {"last.ckpt", "reconstructions.png", "denoising.png", "samples.png",
                         "interpolation.png", "latent_2d.csv"};
  for (int i = 0; i < 6; i++)
    assert_same_file(path_in(cpu, files[i]), path_in(own, files[i]));
}

/* The check runs where the gradients are, and the message still names the step, the tensor
 * and the element. */
Test(device, a_nonfinite_gradient_is_found_on_the_device_and_named, .timeout = 60) {
  aert_model mirrored = toy_inf_grad_model;
  mirrored.device = &mirror_ops;
  char *d = tmp_dir(), args[600];
  int rc;
  snprintf(args, sizeof args, "train --quiet --limit 100 --epochs 1 --out %s", d);
  char *err = main_stderr(&mirrored, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "step 2") && strstr(err, "the gradient of 'dec.b' is inf at element 5"),
            "%s", err);
  cr_assert_eq(grads_copied, 0, "the gradients stayed on the device");
}

/* A device that keeps the IDX training set gets each step's example indices (and the
 * epoch) instead of host batches, from the epoch's shuffle as the loader takes them:
 * training, augmented, and its resume are the CPU device's byte for byte; validation
 * batches still come from the host. */
Test(device, a_device_that_keeps_the_training_set_gets_the_loaders_examples, .timeout = 120) {
  aert_model plain = toy_model, own = toy_model;
  plain.data.shift = own.data.shift = 2, plain.data.rotate = own.data.rotate = 10;
  plain.data.flip_h = own.data.flip_h = 1;
  own.device = keeping_device();
  char *cpu = tmp_dir(), *mine = tmp_dir();
  const char *steps[] = {"train --quiet --limit 320 --epochs 1 --threads 1 --out %s",
                         "train --quiet --limit 320 --epochs 2 --threads 1 --resume --out %s"};
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(run(&plain, steps[i], cpu), 0);
    cr_assert_eq(run(&own, steps[i], mine), 0, "%s", steps[i]);
  }
  long steps_run = 2 * (288 / toy_model.batch);
  cr_assert_eq(kept_batches, steps_run, "%ld batches from the kept set in %ld steps", kept_batches, steps_run);
  cr_assert(kept.augment && kept.y == NULL && kept.n == 288, "the kept set: %ld examples", kept.n);
  cr_assert_eq(host_batches, 2 * ((32 + toy_model.batch - 1) / toy_model.batch), "only validation from the host");
  cr_assert(host_allocs == 4 && host_frees == 4, "the data thread's two slots in the device's host memory, each run: "
            "%ld allocated, %ld freed", host_allocs, host_frees);
  assert_same_file(path_in(cpu, "last.ckpt"), path_in(mine, "last.ckpt"));
}
