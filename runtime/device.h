/* device.h - the device layer: where a model's parameters, gradients, optimizer moments and
 * activations live, and the operations the commands (train, eval, encode, predict, sample,
 * interpolate, latent) run on them. No command touches an arena or calls the generated
 * forward and backward itself; each goes through an aert_device.
 *
 * A target brings its device by setting aert_model.device to its aert_device_ops; NULL is
 * the CPU device (device_cpu.c), whose arenas are host memory that the generated code reads
 * and writes in place, so that none of its operations copies anything.
 *
 * For the author of a device (a CUDA model.cu, say). The device owns its memory; the
 * runtime sees it through host views, which only hold current values around the calls
 * that say so:
 *   - d->params (param_floats floats) and d->opt (training: the optimizer's moments and
 *     step count, see aert_optimizer) are written on the host by initialisation, by a
 *     checkpoint or by rank 0's broadcast, then `upload` is called; before the host reads
 *     them (a checkpoint, the broadcast) `download` is called.
 *   - `grads_nonfinite`, called once after every backward, says where the gradient arena
 *     first holds a NaN or an infinity (a device checks on itself and copies back a few
 *     bytes: the arena stays where it is).
 *   - `grads` returns the gradient arena in host memory, only where the host needs it (the
 *     mean over data-parallel ranks, MPI); when the host has changed it, `grads_changed`.
 *   - `output` and `latent` return the last forward's (or decode's) output and latent in
 *     host memory, valid until the next forward or decode.
 * The order of the calls:
 *   open(training) -> params written on the host -> upload
 *   train, each step: batch (or batch_kept) -> forward(training 1) -> backward (-> grads -> grads_changed,
 *                     MPI) -> grads_nonfinite -> accumulate (accumulate > 1) -> step (once per accumulated group)
 *   evaluation, each batch: batch -> forward(training 0) -> output, latent
 *   sample, interpolate: decode(latent) -> output
 *   checkpoint: download -> the host views are saved
 *   close
 * Every operation works on the model's fixed batch (aert_model.batch); the runtime pads
 * partial batches itself. The gradient arena has the parameter arena's layout, offsets
 * from the aert_param table. An operation that fails on the device stops the program with
 * a message naming it (as AEC_CHECK does); only open returns an error.
 * What stays the model's, not the device's: aert_model.set_class_weights (called on the
 * host before the parameters are uploaded), the shard of a data-parallel run (forward
 * writes its normalisers there, backward reads the global ones, in host memory), and the
 * per-kernel timing tables of train --profile. d->opt is an aert_optimizer of
 * aert_internal.h; a device allocates it with aert_optim_init, as device_cpu.c does.
 * tests/runtime/test_device.c has a small device with memory of its own (a mirror of the
 * CPU device) and checks that the commands keep to this protocol. */
#ifndef AERT_DEVICE_H
#define AERT_DEVICE_H

#include <stdlib.h>
#include <string.h>
#include "aert.h"

#ifdef __cplusplus
extern "C" {   /* a device written in C++ or CUDA links with the C runtime */
#endif

typedef struct aert_device aert_device;
struct aert_optimizer;

/* A training set that a device may keep in its own memory (an IDX set, see aert_device_set_of
 * in aert_internal.h): n examples of in_size bytes as the file holds them, which the device
 * normalises as aert_add_rn(aert_mul_rn(byte, scale), offset), the IDX source's arithmetic;
 * with augment, each example transformed as augment.c does (m->data's ranges, drawn from
 * (seed, epoch, example index)); targets of their own as n x target_size floats (class
 * indices), or y NULL when the target is the input. */
typedef struct aert_device_set {
  const unsigned char *bytes;
  const float *y;
  long n, in_size, target_size;
  float scale, offset;
  int augment;
  uint64_t seed;
} aert_device_set;

typedef struct aert_device_ops {
  /* Allocates d->m's arenas, zero-filled: parameters and activations, and with d->training
   * the gradients, the optimizer state (d->opt, of m->optim's kind) and, for accumulate > 1,
   * the gradient sums; points the host views at host memory. -1 with a message when out of
   * memory; close then frees what was allocated. */
  int (*open)(aert_device *d);
  void (*close)(aert_device *d);
  void (*upload)(aert_device *d);     /* host views of parameters and optimizer -> device */
  void (*download)(aert_device *d);   /* device -> host views, before they are read */
  /* The batch that the next forward and backward run on: batch*in_size inputs and
   * batch*target_size targets (the inputs again for AERT_TARGET_INPUT), in host memory that
   * stays valid until the next batch. */
  void (*batch)(aert_device *d, const float *x, const float *y);
  /* aert_model.forward and .backward on the batch (see aert.h): the total loss, and the
   * terms in *losses when not NULL; backward writes (=) the gradient arena. */
  float (*forward)(aert_device *d, int training, uint64_t seed, aert_losses *losses);
  void (*backward)(aert_device *d, uint64_t seed);
  /* aert_model.decode: the decoder on batch*latent_size floats of host memory. */
  void (*decode)(aert_device *d, const float *latent);
  const float *(*output)(const aert_device *d);   /* batch*out_size floats */
  const float *(*latent)(const aert_device *d);   /* batch*latent_size floats */
  float *(*grads)(aert_device *d);
  void (*grads_changed)(aert_device *d);
  /* Gradient accumulation: the last backward's gradients of the trainable parameters into
   * the sums; first sets them (=), else adds (+=). */
  void (*accumulate)(aert_device *d, int first);
  /* One optimizer step at learning rate lr over the trainable parameters: from the last
   * backward's gradients when batches is 0, else from the mean of the `batches` gradients
   * that accumulate summed; clipped to m->optim.clip_norm first when that is > 0. SGD, Adam
   * and AdamW exactly as optim.c computes them (the CPU device calls it). */
  void (*step)(aert_device *d, int batches, float lr);
  /* The offset in the gradient arena of its first NaN or infinity after the last backward
   * (its value in *value), -1 when every gradient is finite. */
  long (*grads_nonfinite)(aert_device *d, float *value);
  /* Optional, both or neither (NULL: batches come from the host through `batch`). keep
   * copies the set into the device's memory once, for the device's life (a later keep
   * replaces it): 0, or -1 with a note when it does not fit, and then the runtime keeps
   * sending host batches. batch_kept makes the batch of examples index[0..batch-1] of the
   * kept set of epoch on the device, as the loader makes it on the host; the next forward
   * and backward run on it. Only the indices cross to the device. */
  int (*keep)(aert_device *d, const aert_device_set *set);
  void (*batch_kept)(aert_device *d, const long *index, long epoch);
  /* Optional, both or neither (NULL: malloc and free): n bytes of host memory that the
   * device copies from fastest (pinned), for the data thread's batch slots, which `batch`
   * then sends without a copy on the host; NULL when there is none. The trainer hands a
   * slot back to the data thread after backward: `batch` must have read it by then. */
  void *(*host_alloc)(aert_device *d, size_t n);
  void (*host_free)(aert_device *d, void *p);
} aert_device_ops;

struct aert_device {
  const aert_model *m;
  const aert_device_ops *ops;
  int training;                 /* 1: gradients and optimizer state too */
  float *params;                /* host view: param_floats floats */
  struct aert_optimizer *opt;   /* host view of the optimizer state (training), else NULL */
  void *own;                    /* the device's own state */
};

extern const aert_device_ops aert_cpu_device;   /* device_cpu.c */

/* Closes d; safe on a device that failed to open or was never opened (zeroed). */
static inline void aert_device_close(aert_device *d) {
  if (d->ops)
    d->ops->close(d);
  memset(d, 0, sizeof *d);
}

/* The model's device (the CPU one unless the model brings its own), opened. */
static inline int aert_device_open(aert_device *d, const aert_model *m, int training) {
  memset(d, 0, sizeof *d);
  d->m = m;
  d->ops = m->device ? m->device : &aert_cpu_device;
  d->training = training;
  if (d->ops->open(d) == 0)
    return 0;
  aert_device_close(d);
  return -1;
}

static inline void aert_device_upload(aert_device *d) { d->ops->upload(d); }
static inline void aert_device_download(aert_device *d) { d->ops->download(d); }
static inline void aert_device_batch(aert_device *d, const float *x, const float *y) {
  d->ops->batch(d, x, y);
}
static inline float aert_device_forward(aert_device *d, int training, uint64_t seed, aert_losses *losses) {
  return d->ops->forward(d, training, seed, losses);
}
static inline void aert_device_backward(aert_device *d, uint64_t seed) { d->ops->backward(d, seed); }
static inline void aert_device_decode(aert_device *d, const float *latent) { d->ops->decode(d, latent); }
static inline const float *aert_device_output(const aert_device *d) { return d->ops->output(d); }
static inline const float *aert_device_latent(const aert_device *d) { return d->ops->latent(d); }
static inline float *aert_device_grads(aert_device *d) { return d->ops->grads(d); }
static inline void aert_device_grads_changed(aert_device *d) { d->ops->grads_changed(d); }
static inline void aert_device_accumulate(aert_device *d, int first) { d->ops->accumulate(d, first); }
static inline void aert_device_step(aert_device *d, int batches, float lr) { d->ops->step(d, batches, lr); }
static inline long aert_device_grads_nonfinite(aert_device *d, float *value) {
  return d->ops->grads_nonfinite(d, value);
}
/* 1 when d has taken set into its memory, 0 when it has no such memory or the set does not fit. */
static inline int aert_device_keep(aert_device *d, const aert_device_set *set) {
  return d->ops->keep && d->ops->batch_kept && d->ops->keep(d, set) == 0;
}
static inline void aert_device_batch_kept(aert_device *d, const long *index, long epoch) {
  d->ops->batch_kept(d, index, epoch);
}
/* n bytes of host memory for batches: d's pinned memory when it has some (*pinned 1), else
 * malloc's (d may be NULL); NULL when there is none. */
static inline void *aert_device_host_alloc(aert_device *d, size_t n, int *pinned) {
  void *p = d && d->ops->host_alloc && d->ops->host_free ? d->ops->host_alloc(d, n) : NULL;
  *pinned = p != NULL;
  return p ? p : malloc(n);
}
static inline void aert_device_host_free(aert_device *d, void *p, int pinned) {
  if (pinned)
    d->ops->host_free(d, p);
  else
    free(p);
}

#ifdef __cplusplus
}
#endif

#endif
