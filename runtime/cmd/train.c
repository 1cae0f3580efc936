/* train.c - the `train` command: initialise or resume, epochs of shuffled full batches
 * (made and augmented one ahead on the loader thread, or, when the model's device keeps the
 * IDX training set, made there from each batch's indices; on the model's device, device.h:
 * forward, finiteness check, backward, optimizer step with the schedule's rate, after
 * accumulation and clipping), validation loss, best.ckpt and last.ckpt each epoch, the CSV
 * log, plateau and early stopping. Resume is exact because the shuffle depends on (seed,
 * epoch) and the per-step noise seed on (seed, global step). Data-parallel (dist.h): each
 * of N ranks takes its slice of every global batch, the ranks sum their gradients and loss
 * terms, and rank 0 writes. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "aert_internal.h"
#include "dist.h"

/* The signal that asked training to stop, 0 while none did: Ctrl-C (SIGINT) or SIGTERM,
 * which Slurm and systemd send. Training stops after the current step and writes
 * last.ckpt, from which --resume continues mid-epoch, exactly. A second one kills at once. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
  interrupted = sig;
  signal(sig, SIG_DFL);
}

int aert_train_stopped_by(void) { return interrupted; }

/* One trainer per output folder: a second one would interleave checkpoints and logs. The
 * lock is an flock on OUT/.lock (released by the kernel when the holder dies, so a killed
 * run leaves no stale lock) holding the holder's PID for the message. */
static int lock_out(const char *out, int *fd) {
  char *path = aert_join(out, ".lock");
  if (!path)
    return -1;
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (*fd < 0) {
    aert_error("cannot open the lock file '%s': %s", path, strerror(errno));
    free(path);
    return -1;
  }
  if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(*fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    aert_error("another trainer (PID %s) is writing to '%s' (it holds '%s'); wait for it, or give another --out",
               pid[0] ? pid : "unknown", out, path);
    close(*fd);
    *fd = -1;
    free(path);
    return -1;
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  ssize_t wrote = ftruncate(*fd, 0) == 0 ? pwrite(*fd, pid, (size_t)len, 0) : -1;
  (void)wrote;   /* the PID only serves a second trainer's message: a failed write loses nothing */
  free(path);
  return 0;
}

typedef struct {
  const aert_model *m;
  const aert_options *o;
  aert_workspace w;      /* its device holds parameters, gradients and optimizer state */
  int group;             /* accumulate > 1: batches summed so far */
  float lr;              /* of the last optimizer step */
  long *order;
  aert_loader loader;    /* batches made (and augmented) on a background thread */
  int kept;              /* 1: the device keeps the training set and makes the batches */
  long *index;           /* kept: the batch's example indices, all that goes to the device */
  aert_dataset all, train, val;
  aert_train_state st;
  aert_profile profile, *prof;   /* prof: &profile with --profile, else NULL */
  char *out, *last, *best;
  aert_tfevents tb;                          /* --tensorboard: its event file (f NULL: none) */
  int lock;                                  /* OUT/.lock, held while training (-1: none) */
  double loss, terms[AERT_MAX_LOSS_TERMS];   /* training means over the epoch */
  double val_loss;                           /* NaN without a validation set */
  double val_acc, val_miou;                  /* class targets, NaN otherwise */
  int rank, ranks;                           /* this process among the data-parallel ranks */
  long global_batch;                         /* batch * ranks: the examples of one step */
  int stop_seen;                             /* ranks > 1: a signal reached some rank by this step */
} trainer;

uint64_t aert_step_seed(uint64_t seed, uint64_t step) {
  return aert_hash64(seed ^ aert_hash64(step ^ 0x7374657073656564ULL));
}

static const char *nonfinite_word(float v) {
  return isnan(v) ? "nan" : "inf";
}

/* The tensor of the gradient arena's offset at: its index in m->params, -1 in padding. */
static int tensor_at(const aert_model *m, long at) {
  for (int k = 0; k < m->n_params; k++)
    if (at >= m->params[k].offset && at < m->params[k].offset + m->params[k].size)
      return k;
  return -1;
}

/* Names the first non-finite loss term (or total), then (grads: after backward) the first
 * bad gradient, which the device finds where it keeps the gradients. */
static int check_finite(trainer *t, const aert_losses *l, int grads, int batch) {
  const aert_model *m = t->m;
  char what[256] = "";
  for (int i = 0; i < m->n_loss_terms && !what[0]; i++)
    if (!isfinite(l->term[i]))
      snprintf(what, sizeof what, "loss term '%s' is %s", m->loss_term_names[i],
               nonfinite_word(l->term[i]));
  if (!what[0] && !isfinite(l->total))
    snprintf(what, sizeof what, "the total loss is %s", nonfinite_word(l->total));
  float v = 0;
  long at = grads && !what[0] ? aert_device_grads_nonfinite(&t->w.dev, &v) : -1;
  int k = at >= 0 ? tensor_at(m, at) : -1;
  if (k >= 0)
    snprintf(what, sizeof what, "the gradient of '%s' is %s at element %ld", m->params[k].name,
             nonfinite_word(v), at - m->params[k].offset);
  else if (at >= 0)
    snprintf(what, sizeof what, "the gradient arena is %s at offset %ld, between tensors",
             nonfinite_word(v), at);
  if (!what[0])
    return 0;
  if (!t->o->quiet)
    printf("\n");
  char kept[600] = "no checkpoint was written";
  if (t->st.epoch > 0)
    snprintf(kept, sizeof kept, "'%s' keeps epoch %d", t->last, t->st.epoch);
  aert_error("training stopped at step %llu (epoch %d, batch %d): %s; %s",
             (unsigned long long)t->st.step + 1, t->st.epoch + 1, batch + 1, what, kept);
  return -1;
}

/* accumulate K: K batches per optimizer step (0, in older generated code, means 1) */
static int batches_per_step(const aert_model *m) {
  return m->optim.accumulate > 1 ? m->optim.accumulate : 1;
}

/* The learning rate of the optimizer step that batch b of the epoch belongs to. */
static float lr_at_batch(const trainer *t, int epoch, long b, long nb) {
  long k = batches_per_step(t->m), per_epoch = (nb + k - 1) / k;
  aert_clock c = {.step = epoch * per_epoch + b / k, .per_epoch = per_epoch, .epochs = t->st.epochs};
  return aert_lr_at(&t->m->optim, t->st.base_lr, c, t->st.plateau_cuts);
}

/* Batch b's gradient into the optimizer. With accumulate k the batches of each group of k
 * (counted from the epoch's start; its last group may be shorter) are summed, and their
 * mean makes one step; the device clips it to the global norm and steps at the schedule's
 * rate. Returns 1 when it stepped: only then may an interrupted run stop. */
static int optimizer_step(trainer *t, int epoch, long b, long nb) {
  long k = batches_per_step(t->m);
  int batches = 0;   /* 0: the last batch's gradient alone */
  if (k > 1) {
    aert_device_accumulate(&t->w.dev, t->group++ == 0);
    if ((b + 1) % k != 0 && b + 1 < nb)
      return 0;
    batches = t->group;
    t->group = 0;
  }
  t->lr = lr_at_batch(t, epoch, b, nb);
  aert_device_step(&t->w.dev, batches, t->lr);
  return 1;
}

/* A checkpoint of the run: the device's parameters and optimizer state, and t->st. */
static int save_checkpoint(trainer *t, const char *path) {
  aert_device_download(&t->w.dev);
  return aert_ckpt_save(path, t->m, &t->st, t->w.dev.params, t->w.dev.opt);
}

/* The loss sums of the epoch so far go into the checkpoint written mid-epoch and come back
 * from it, so that the epoch's logged means cover the steps before the interruption too.
 * Returns the batch the means count from: 0, or first for a checkpoint without the sums. */
static long restore_epoch_sums(trainer *t, long first) {
  t->loss = 0;
  memset(t->terms, 0, sizeof t->terms);
  int have = first > 0 && t->st.n_epoch_sums == 1 + t->m->n_loss_terms;
  if (have) {
    t->loss = t->st.epoch_sums[0];
    memcpy(t->terms, t->st.epoch_sums + 1, sizeof(double) * t->m->n_loss_terms);
  }
  t->st.n_epoch_sums = 0;   /* the checkpoints at the end of the epoch carry none */
  return have ? 0 : first;
}

static void keep_epoch_sums(trainer *t) {
  t->st.n_epoch_sums = 1 + t->m->n_loss_terms;
  t->st.epoch_sums[0] = t->loss;
  memcpy(t->st.epoch_sums + 1, t->terms, sizeof(double) * t->m->n_loss_terms);
}

/* ---- data parallel: what the ranks add up ------------------------------------------ */

/* Whether a signal reached any rank (a collective: every rank calls it at the same point).
 * A rank that saw none stops too, as if it had got SIGTERM. In one process: the flag. */
static int agree_stop(const trainer *t, int local) {
  if (t->ranks == 1)
    return local;
  double any = local;
  aert_dist_sum_doubles(&any, 1);
  if (any > 0 && !interrupted)
    interrupted = SIGTERM;
  return any > 0;
}

/* The global batch's loss terms from the ranks' (each weighted by its normaliser, so that a
 * softmax_xent whose ignored pixels and class weights differ between ranks is the global
 * weighted mean), the global normalisers backward divides by, and whether a signal reached
 * any rank: one small all-reduce per step. */
static void sum_losses(trainer *t, aert_losses *l) {
  const aert_model *m = t->m;
  aert_shard *sh = m->shard;
  int n = m->n_loss_terms;
  double v[2 * AERT_MAX_LOSS_TERMS + 1];
  for (int i = 0; i < n; i++)
    v[2 * i] = (double)l->term[i] * sh->denom[i], v[2 * i + 1] = sh->denom[i];
  v[2 * n] = interrupted != 0;
  aert_dist_sum_doubles(v, 2 * n + 1);
  double total = 0;
  for (int i = 0; i < n; i++) {
    l->term[i] = v[2 * i + 1] > 0 ? (float)(v[2 * i] / v[2 * i + 1]) : 0;
    sh->global_denom[i] = v[2 * i + 1] / t->ranks;
    total += m->loss_term_weight[i] * (double)l->term[i];
  }
  l->total = (float)total;
  t->stop_seen = v[2 * n] > 0;
  if (t->stop_seen && !interrupted)
    interrupted = SIGTERM;
}

/* Every rank's gradient is that of its slice's loss over the global normaliser / ranks:
 * their mean is the global batch's gradient. One all-reduce of the gradient arena, g (the
 * device's, in host memory), which goes back to the device. */
static void average_gradients(trainer *t, float *g) {
  long n = t->m->param_floats;
  aert_dist_sum_floats(g, n);
  float inv = 1.0f / (float)t->ranks;
  for (long i = 0; i < n; i++)
    g[i] *= inv;
  aert_device_grads_changed(&t->w.dev);
}

/* Whether to stop after this step: the flag as the ranks summed it at this step, so that
 * every rank stops after the same one; in one process the flag itself. */
static int stop_requested(const trainer *t) {
  return t->ranks > 1 ? t->stop_seen : interrupted != 0;
}

/* Batch b of the epoch onto the device: the loader's, made on the host, or, when the device
 * keeps the training set, its example indices alone (the loader's: b * stride + offset of
 * the epoch's order). The profile's step starts here, after the wait for the data. */
static int next_batch(trainer *t, long epoch, long b) {
  if (t->kept) {
    for (long k = 0; k < t->m->batch; k++)
      t->index[k] = t->order[b * t->loader.stride + t->loader.offset + k];
    aert_profile_step_begin(t->prof);
    aert_device_batch_kept(&t->w.dev, t->index, epoch);
    return 0;
  }
  float *x, *y;
  if (aert_loader_take(&t->loader, b, &x, &y) != 0)
    return -1;
  aert_profile_step_begin(t->prof);
  aert_device_batch(&t->w.dev, x, y ? y : x);
  return 0;
}

/* Returns 0 at the end of the epoch, 1 when interrupted (last.ckpt written), -1 on error.
 * A checkpoint written mid-epoch resumes at its batch: the shuffle depends only on
 * (seed, epoch) and the noise on the global step. */
static int train_epoch(trainer *t, int epoch) {
  const aert_model *m = t->m;
  long nb = t->train.n / t->global_batch;
  long first = (long)t->st.step - (long)epoch * nb;
  if (first < 0 || first >= nb)
    first = 0;
  t->lr = lr_at_batch(t, epoch, first, nb);
  t->group = 0;
  aert_progress pr;
  aert_shuffle(t->order, t->train.n, t->st.seed, epoch);
  aert_progress_begin(&pr, epoch, t->st.epochs, nb, t->o->quiet);
  long counted = restore_epoch_sums(t, first);   /* the epoch's means count from this batch */
  if (!t->kept && aert_loader_start(&t->loader, t->order, first, nb, t->st.seed, epoch) != 0)
    return -1;
  for (long b = first; b < nb; b++) {
    aert_losses l = {0};
    uint64_t seed = aert_step_seed(t->st.seed, t->st.step);
    if (next_batch(t, epoch, b) != 0) {
      char kept[600] = "no checkpoint was written";
      if (t->st.epoch > 0)
        snprintf(kept, sizeof kept, "'%s' keeps epoch %d", t->last, t->st.epoch);
      aert_error("training stopped at step %llu (epoch %d, batch %ld): the data above could not "
                 "be read; %s", (unsigned long long)t->st.step + 1, epoch + 1, b + 1, kept);
      return aert_loader_stop(&t->loader), -1;
    }
    l.total = aert_device_forward(&t->w.dev, 1, seed, &l);
    if (t->ranks > 1)
      sum_losses(t, &l);
    if (check_finite(t, &l, 0, (int)b) != 0)
      return aert_loader_stop(&t->loader), -1;
    aert_device_backward(&t->w.dev, seed);
    if (!t->kept)
      aert_loader_release(&t->loader, b);
    if (t->ranks > 1)
      average_gradients(t, aert_device_grads(&t->w.dev));
    if (check_finite(t, &l, 1, (int)b) != 0)
      return aert_loader_stop(&t->loader), -1;
    aert_profile_optim_begin(t->prof);
    int stepped = optimizer_step(t, epoch, b, nb);
    aert_profile_step_end(t->prof);
    t->st.step++;
    aert_dist_progress(t->st.step);
    t->loss += l.total;
    for (int i = 0; i < m->n_loss_terms; i++)
      t->terms[i] += l.term[i];
    aert_progress_step(&pr, b + 1, t->loss / (b + 1 - counted), (int)t->global_batch);
    if (stop_requested(t) && stepped && b + 1 < nb) {   /* at the last batch the epoch ends normally first */
      aert_loader_stop(&t->loader);
      if (t->rank > 0)   /* the others leave once rank 0 has written (a launcher may end the
                            job when the first rank exits with 128 + the signal) */
        return aert_dist_barrier(), 1;
      keep_epoch_sums(t);
      if (save_checkpoint(t, t->last) != 0)
        return -1;
      printf("\ninterrupted at step %llu (epoch %d, batch %ld of %ld): wrote '%s'; --resume continues from there\n",
             (unsigned long long)t->st.step, epoch + 1, b + 1, nb, t->last);
      fflush(stdout);
      aert_dist_barrier();
      return 1;
    }
  }
  aert_loader_stop(&t->loader);
  pr.data_wait = t->loader.waited;
  if (t->all.tiles)
    aert_tiles_rate(t->all.tiles, &pr.patches, &pr.read_seconds);
  t->loss /= nb - counted;
  for (int i = 0; i < m->n_loss_terms; i++)
    t->terms[i] /= nb - counted;
  t->val_loss = t->val_acc = t->val_miou = NAN;
  if (t->val.n > 0) {
    aert_metrics mt;
    int classes = m->target_kind == AERT_TARGET_CLASSES ? m->n_classes : 0;
    if (aert_metrics_init(&mt, classes) != 0 || aert_eval_shared(&t->w, &t->val, &mt) != 0)
      return aert_metrics_free(&mt), -1;
    t->val_loss = mt.loss / mt.examples;
    if (classes)
      t->val_acc = aert_accuracy(&mt);
    if (classes && m->target_rank)
      t->val_miou = aert_mean_iou(&mt);
    pr.val_acc = t->val_acc, pr.val_miou = t->val_miou;
    aert_metrics_free(&mt);
    if (t->all.tiles) {   /* the validation reads are not the trainer's */
      long n;
      double sec;
      aert_tiles_rate(t->all.tiles, &n, &sec);
    }
  }
  aert_progress_end(&pr, t->loss, t->val_loss, t->lr);
  return 0;
}

/* weights = auto: softened median frequency balancing over the training labels: w_c is the
 * square root of (the median class frequency / the frequency of c), at most 10; a class
 * never seen gets 1. The square root keeps rare classes from swamping the gradient. */
static void auto_class_weights(trainer *t) {
  const aert_model *m = t->m;
  int nc = m->n_classes;
  double count[AERT_MAX_CLASSES] = {0}, freq[AERT_MAX_CLASSES], total = 0;
  if (t->all.tiles)
    aert_tiles_class_counts(t->all.tiles, count);
  else
    for (long i = 0; t->train.y && i < t->train.n * m->target_size; i++)
      if (t->train.y[i] >= 0 && t->train.y[i] < nc)
        count[(int)t->train.y[i]]++;
  int seen = 0;
  for (int c = 0; c < nc; c++)
    total += count[c];
  for (int c = 0; c < nc; c++)
    if (count[c] > 0)
      freq[seen++] = count[c] / total;
  for (int i = 1; i < seen; i++)   /* insertion sort for the median */
    for (int j = i; j > 0 && freq[j] < freq[j - 1]; j--) {
      double x = freq[j];
      freq[j] = freq[j - 1], freq[j - 1] = x;
    }
  double median = seen ? (seen % 2 ? freq[seen / 2] : (freq[seen / 2 - 1] + freq[seen / 2]) / 2) : 1;
  t->st.n_class_weights = nc;
  for (int c = 0; c < nc; c++) {
    double w = count[c] > 0 ? sqrt(median / (count[c] / total)) : 1;
    t->st.class_weights[c] = (float)(w < 10 ? w : 10);
  }
}

static void show_class_weights(const trainer *t) {
  const aert_model *m = t->m;
  if (t->o->quiet)
    return;
  printf("class weights (auto, from the class frequencies):");
  for (int c = 0; c < m->n_classes; c++)
    printf(" %s %.3g", m->class_names[c] ? m->class_names[c] : "?", t->st.class_weights[c]);
  printf("\n");
}

/* Parameters from --init FILE (a checkpoint that `init` or `import` wrote) instead of the
 * seed's draws; the optimizer starts afresh. */
static int load_init(trainer *t, const char *path) {
  aert_ckpt ck;
  if (aert_ckpt_load(path, &ck) != 0)
    return -1;
  int rc = aert_ckpt_check_model(&ck, t->m);
  if (rc == 0)
    rc = aert_ckpt_restore(&ck, t->m, t->w.dev.params, NULL);
  aert_ckpt_free(&ck);
  return rc;
}

/* Resuming with another optimizer or schedule than the checkpoint's run: refused unless
 * --force, which then continues with the new settings (and fresh optimizer state when the
 * kind of optimizer changed). Returns 1 when the optimizer state is to be kept. */
static int check_resume_optim(trainer *t, const aert_ckpt *ck) {
  char what[512];
  aert_opt_kind kind = t->w.dev.opt->kind;
  if (!ck->st.has_optim || !aert_optim_changes(&ck->st.optim, &t->m->optim, what, sizeof what))
    return ck->opt_kind == kind ? 1 : -1;
  if (!t->o->force)
    return aert_error("checkpoint '%s' was trained with other optimizer settings than model '%s' "
                      "has now (%s); --force resumes with the new ones", ck->path, t->m->name,
                      what), -2;
  if (!t->o->quiet)
    printf("resuming with changed optimizer settings (--force): %s%s\n", what,
           ck->opt_kind != kind ? "; the optimizer state starts afresh" : "");
  return ck->opt_kind == kind ? 1 : 0;
}

static int resume_state(trainer *t) {
  const aert_options *o = t->o;
  aert_ckpt ck;
  if (aert_ckpt_load(t->last, &ck) != 0)
    return -1;
  int rc = aert_ckpt_check_model(&ck, t->m);
  int keep = rc == 0 ? check_resume_optim(t, &ck) : 0;
  if (keep == -1)
    rc = (aert_error("checkpoint '%s' holds the state of another optimizer", ck.path), -1);
  else if (keep == -2)
    rc = -1;
  if (rc == 0)
    rc = aert_ckpt_restore(&ck, t->m, t->w.dev.params, keep ? t->w.dev.opt : NULL);
  if (rc == 0) {
    char what[512];
    int changed = ck.st.has_optim && aert_optim_changes(&ck.st.optim, &t->m->optim, what, sizeof what);
    t->st = ck.st;
    if (!ck.st.has_optim || changed)
      t->st.base_lr = t->m->optim.lr;
    t->st.has_optim = 1;
    t->st.optim = t->m->optim;
    if (o->lr > 0)
      t->st.base_lr = o->lr;
    if (o->epochs)
      t->st.epochs = o->epochs;
    if (t->all.tiles)
      rc = aert_tiles_set_norm(t->all.tiles, &t->st, t->last);
    if (rc == 0)
      rc = aert_set_class_weights(t->m, &t->st, t->last);
  }
  aert_ckpt_free(&ck);
  return rc;
}

static int begin_state(trainer *t) {
  const aert_options *o = t->o;
  t->st = (aert_train_state){.seed = o->seed, .epochs = o->epochs ? o->epochs : t->m->epochs,
                             .best_val = INFINITY, .has_optim = 1, .optim = t->m->optim,
                             .base_lr = o->lr > 0 ? o->lr : t->m->optim.lr, .stop_best = INFINITY,
                             .plateau_best = INFINITY};
  if (o->resume)
    return resume_state(t);
  if (t->all.tiles)   /* the band statistics travel in every checkpoint */
    aert_tiles_get_norm(t->all.tiles, &t->st);
  if (t->m->set_class_weights) {   /* and so do automatic class weights */
    auto_class_weights(t);
    show_class_weights(t);
    t->m->set_class_weights(t->st.class_weights);
  }
  if (aert_init_params(t->m, t->w.dev.params, o->seed) != 0)
    return -1;
  return o->init ? load_init(t, o->init) : 0;
}

/* Rank 0 reads the checkpoint (or draws the parameters, or counts the classes) and sends
 * the state, the parameters and the optimizer's moments to the others. */
static int share_state(trainer *t) {
  const aert_model *m = t->m;
  aert_optimizer *opt = t->w.dev.opt;
  aert_dist_broadcast(&t->st, sizeof t->st);
  aert_dist_broadcast(t->w.dev.params, (long)sizeof(float) * m->param_floats);
  aert_dist_broadcast(opt->m, (long)sizeof(float) * opt->n);
  if (opt->v)
    aert_dist_broadcast(opt->v, (long)sizeof(float) * opt->n);
  aert_dist_broadcast(&opt->step, sizeof opt->step);
  if (t->rank == 0)
    return 0;
  if (t->all.tiles && aert_tiles_set_norm(t->all.tiles, &t->st, "rank 0's state") != 0)
    return -1;
  if (m->set_class_weights && t->st.n_class_weights == m->n_classes)
    m->set_class_weights(t->st.class_weights);
  return 0;
}

/* The training set into the device's memory, when the device has memory of its own for
 * one and the set is an IDX set (one process); the host keeps the validation part. */
static int keep_on_device(trainer *t) {
  aert_device_set set;
  if (t->ranks == 1 && aert_device_set_of(t->m, &t->train, t->st.seed, &set))
    t->kept = aert_device_keep(&t->w.dev, &set);
  if (!t->kept) {   /* the loader makes the batches from the floats: the bytes are not needed */
    free(t->all.bytes);
    t->all.bytes = t->train.bytes = t->val.bytes = NULL;
    return 0;
  }
  t->index = aert_alloc(sizeof(long) * t->m->batch, "batch indices");
  return t->index ? 0 : -1;
}

/* The run's state on the host, then on the device. */
static int start_state(trainer *t) {
  if (t->rank == 0 && begin_state(t) != 0)
    return -1;   /* the others wait for the broadcast until the error ends the job */
  if (t->ranks > 1 && share_state(t) != 0)
    return -1;
  aert_device_upload(&t->w.dev);
  return keep_on_device(t);
}

/* Early stopping's patience: --patience, else the spec's `stop patience`; 0: never. */
static int stop_patience(const trainer *t) {
  return t->o->patience > 0 ? t->o->patience : t->m->optim.stop_patience;
}

static int save_epoch(trainer *t, double val) {
  int improved = val < t->st.best_val;
  if (improved)
    t->st.best_val = (float)val;
  aert_watch_epoch(&t->m->optim, &t->st, val);
  if (t->rank > 0)
    return 0;   /* rank 0 writes */
  if (improved && save_checkpoint(t, t->best) != 0)
    return -1;
  return save_checkpoint(t, t->last);
}

/* What a person watches: OUT/curves.png redrawn from the log, and with --tensorboard the
 * epoch's scalars in the event file, at the epoch's number as its step. */
static int watch_epoch(trainer *t, const char *csv_path, float lr) {
  const aert_model *m = t->m;
  char *png = aert_join(t->out, "curves.png");
  int rc = png ? aert_curves_write(csv_path, png) : -1;
  free(png);
  if (rc != 0 || !t->tb.f)
    return rc;
  int rank = m->target_rank;
  const char *tags[5 + AERT_MAX_LOSS_TERMS] = {"train/loss", "val/loss", "lr",
                                                rank ? "val/pixel_accuracy" : "val/accuracy",
                                                "val/mean_iou"};
  double v[5 + AERT_MAX_LOSS_TERMS] = {t->loss, t->val_loss, lr, t->val_acc, t->val_miou};
  char names[AERT_MAX_LOSS_TERMS][80];
  int n = 5;
  for (int i = 0; m->n_loss_terms > 1 && i < m->n_loss_terms; i++, n++) {
    snprintf(names[i], sizeof names[i], "train/%s", m->loss_term_names[i] ? m->loss_term_names[i] : "term");
    tags[n] = names[i], v[n] = t->terms[i];
  }
  return aert_tfevents_scalars(&t->tb, (uint64_t)t->st.epoch, n, tags, v);
}

static int run_epochs(trainer *t) {
  const aert_model *m = t->m;
  aert_csv csv;
  int patience = stop_patience(t);
  int writer = t->rank == 0;
  if (writer && aert_csv_open(&csv, t->out, m, t->o->resume) != 0)
    return -1;
  int rc = 0;
  if (t->st.epoch >= t->st.epochs && !t->o->quiet)
    printf("nothing to do: %d of %d epochs already trained (--epochs N to train longer)\n",
           t->st.epoch, t->st.epochs);
  while (rc == 0 && t->st.epoch < t->st.epochs) {
    double t0 = aert_now();
    rc = train_epoch(t, t->st.epoch);
    if (rc)
      break;   /* an error, or an interruption that wrote last.ckpt */
    t->st.epoch++;
    /* best.ckpt and early stopping follow the validation loss, the training loss without one */
    rc = save_epoch(t, t->val.n > 0 ? t->val_loss : t->loss);
    aert_dist_progress(t->st.step);   /* validation and checkpoints are no hang */
    if (rc == 0 && writer)
      rc = aert_csv_row(&csv, m, t->st.epoch, t->st.step, t->lr, t->loss, t->terms, t->val_loss,
                        t->val_acc, t->val_miou,
                        aert_now() - t0);
    if (rc == 0 && writer)
      rc = watch_epoch(t, csv.path, t->lr);
    if (rc == 0 && agree_stop(t, interrupted != 0)) {
      if (writer)
        printf("\ninterrupted at the end of epoch %d: wrote '%s'; --resume continues from there\n", t->st.epoch,
               t->last);
      fflush(stdout);
      aert_dist_barrier();   /* rank 0 has written: now the others may leave */
      rc = 1;
      break;
    }
    if (rc == 0 && patience > 0 && t->st.since_best >= patience) {
      if (!t->o->quiet)
        printf("early stopping: no improvement for %d epochs\n", t->st.since_best);
      break;
    }
  }
  if (writer && aert_csv_close(&csv) != 0)
    rc = -1;
  return rc;
}

/* The settings that steer the run, when the spec gives any: what a reader of the log needs
 * to make sense of its learning rates and step counts. */
static void show_steering(const trainer *t) {
  const aert_model *m = t->m;
  const aert_optim *o = &m->optim;
  int patience = stop_patience(t);
  if (t->o->quiet || t->rank > 0 || !(o->accumulate > 1 || o->clip_norm > 0 || o->warmup_steps || o->warmup_epochs ||
                       o->schedule == AERT_SCHED_PLATEAU || o->stop_patience))
    return;
  int k = batches_per_step(m);
  printf("steering: effective batch %ld (batch %ld x accumulate %d)", t->global_batch * k, t->global_batch, k);
  if (o->warmup_steps || o->warmup_epochs)
    printf(", warm-up %d steps + %d epochs", o->warmup_steps, o->warmup_epochs);
  if (o->clip_norm > 0)
    printf(", clip norm %g", o->clip_norm);
  if (o->schedule == AERT_SCHED_PLATEAU)
    printf(", plateau x%g after %d epochs", o->plateau_factor, o->plateau_patience);
  if (patience > 0)
    printf(", stop after %d epochs without progress (min_delta %g)", patience, o->stop_min_delta);
  printf("\n");
}

/* With ranks: this rank's place in each global batch, and what the run's global batch is
 * when it is not the spec's (another rank count than the build's --ranks). */
static int join_ranks(trainer *t) {
  const aert_model *m = t->m;
  t->rank = aert_dist_rank();
  t->ranks = aert_dist_size();
  t->global_batch = (long)m->batch * t->ranks;
  if (t->ranks == 1)
    return 0;
  if (!m->shard)
    return aert_error("model '%s' was generated by an aec without data-parallel training: "
                      "rebuild it with 'aec build --mpi'", m->name), -1;
  m->shard->first = (uint64_t)t->rank * (uint64_t)m->batch;
  if (t->rank == 0 && !t->o->quiet) {
    printf("data parallel: %d ranks x batch %d = global batch %ld", t->ranks, m->batch, t->global_batch);
    if (t->global_batch != m->spec_batch)
      printf(" (the spec's is %d: built for %d rank%s; the learning rate stays the spec's unless --lr)",
             m->spec_batch, m->ranks, m->ranks == 1 ? "" : "s");
    printf("\n");
  }
  return 0;
}

/* The data, on every rank together: GeoTIFF tiles are written (when synthetic), listed and
 * checked by rank 0, which sends the list to the others. */
static int load_data(trainer *t, const char *dir) {
  aert_tiles_share(1);
  int rc = aert_data_load(t->m, dir, 1, t->o->limit, &t->all);
  aert_tiles_share(0);
  return rc;
}

static int setup(trainer *t) {
  const aert_model *m = t->m;
  const char *dir = aert_data_dir(m, t->o->data_dir);
  if (join_ranks(t) != 0)
    return -1;
  if (t->rank == 0 && (aert_mkdir_p(t->out) != 0 || lock_out(t->out, &t->lock) != 0))
    return -1;
  if (aert_workspace_init(&t->w, m, 1) != 0 || load_data(t, dir) != 0)
    return -1;
  aert_data_split(&t->all, m->data.validation, &t->train, &t->val);
  if (t->train.n < t->global_batch && t->ranks == 1)
    return aert_error("only %ld training examples in '%s', fewer than one batch of %d", t->train.n,
                      dir, m->batch), -1;
  if (t->train.n < t->global_batch)
    return aert_error("only %ld training examples in '%s', fewer than one global batch of %ld "
                      "(%d ranks x %d)", t->train.n, dir, t->global_batch, t->ranks, m->batch), -1;
  if (t->rank == 0 && t->o->tensorboard && aert_tfevents_open(&t->tb, t->o->tensorboard) != 0)
    return -1;
  t->order = aert_alloc(sizeof(long) * t->train.n, "shuffle order");
  if (!t->order || aert_loader_init_on(&t->loader, m, &t->train, &t->w.dev) != 0)
    return -1;
  t->loader.stride = t->global_batch;   /* rank r takes slice r of each global batch */
  t->loader.offset = (long)t->rank * m->batch;
  if (t->loader.augment && !t->o->quiet)
    printf("augmenting on the fly: shift %g px, rotate %g deg, zoom %g, flip%s%s\n", m->data.shift,
           m->data.rotate, m->data.zoom, m->data.flip_h ? " h" : "", m->data.flip_v ? " v" : "");
  show_steering(t);
  return start_state(t);
}

int aert_train(const aert_model *m, const aert_options *o) {
  trainer t = {.m = m, .o = o, .out = strdup(o->out), .lock = -1};
  t.last = aert_join(o->out, "last.ckpt");
  t.best = aert_join(o->out, "best.ckpt");
  interrupted = 0;
  void (*previous)(int) = signal(SIGINT, on_interrupt), (*previous_term)(int) = signal(SIGTERM, on_interrupt);
  int rc = t.out && t.last && t.best ? 0 : -1;
  if (rc == 0 && o->profile && aert_dist_rank() == 0) {   /* one profile, rank 0's */
    rc = aert_profile_begin(&t.profile, m, o->profile, "train");
    t.prof = &t.profile;
  }
  if (rc == 0)
    rc = setup(&t);
  if (rc == 0 && o->step_timeout > 0)
    rc = aert_dist_watchdog_start(o->step_timeout);
  if (rc == 0)
    rc = run_epochs(&t);
  aert_dist_watchdog_stop();
  if (rc >= 0 && t.prof && aert_profile_write(t.prof) != 0)
    rc = -1;
  else if (rc >= 0 && t.prof && !o->quiet) {
    long n = t.profile.steps > 1 ? t.profile.steps - 1 : 1;
    printf("profile: %s (%ld timed step%s%s)\n", o->profile, n, n == 1 ? "" : "s",
           t.profile.steps > 1 ? " after a warm-up step" : "");
  }
  aert_profile_free(t.prof);
  signal(SIGINT, previous);
  signal(SIGTERM, previous_term);
  if (t.lock >= 0)
    close(t.lock);
  if (aert_tfevents_close(&t.tb) != 0 && rc == 0)
    rc = -1;
  aert_loader_free(&t.loader);
  free(t.index);
  aert_data_free(&t.all);
  aert_workspace_free(&t.w);
  free(t.order);
  free(t.out);
  free(t.last);
  free(t.best);
  return rc;
}
