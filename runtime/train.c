/* train.c - the `train` command: initialise or resume, epochs of shuffled full batches
 * (made and augmented one ahead on the loader thread; forward, finiteness check, backward,
 * optimizer step), validation loss, best.ckpt and last.ckpt each epoch, the CSV log, early
 * stopping. Resume is exact because the shuffle depends on (seed, epoch) and the per-step
 * noise seed on (seed, global step). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "aert_internal.h"

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
  aert_workspace w;
  float *grads;
  long *order;
  aert_optimizer opt;
  aert_loader loader;    /* batches made (and augmented) on a background thread */
  aert_dataset all, train, val;
  aert_train_state st;
  aert_profile profile, *prof;   /* prof: &profile with --profile, else NULL */
  char *out, *last, *best;
  aert_tfevents tb;                          /* --tensorboard: its event file (f NULL: none) */
  int lock;                                  /* OUT/.lock, held while training (-1: none) */
  double loss, terms[AERT_MAX_LOSS_TERMS];   /* training means over the epoch */
  double val_loss;                           /* NaN without a validation set */
  double val_acc, val_miou;                  /* class targets, NaN otherwise */
} trainer;

uint64_t aert_step_seed(uint64_t seed, uint64_t step) {
  return aert_hash64(seed ^ aert_hash64(step ^ 0x7374657073656564ULL));
}

static int first_nonfinite(const float *v, long n) {
  for (long i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return (int)(i < 0x7fffffff ? i : 0x7fffffff);
  return -1;
}

static const char *nonfinite_word(float v) {
  return isnan(v) ? "nan" : "inf";
}

/* Names the first non-finite loss term (or total), then the first bad gradient. */
static int check_finite(const trainer *t, const aert_losses *l, int after_backward, int batch) {
  const aert_model *m = t->m;
  char what[256] = "";
  for (int i = 0; i < m->n_loss_terms && !what[0]; i++)
    if (!isfinite(l->term[i]))
      snprintf(what, sizeof what, "loss term '%s' is %s", m->loss_term_names[i],
               nonfinite_word(l->term[i]));
  if (!what[0] && !isfinite(l->total))
    snprintf(what, sizeof what, "the total loss is %s", nonfinite_word(l->total));
  for (int k = 0; after_backward && k < m->n_params && !what[0]; k++) {
    const aert_param *p = &m->params[k];
    int i = first_nonfinite(t->grads + p->offset, p->size);
    if (i >= 0)
      snprintf(what, sizeof what, "the gradient of '%s' is %s at element %d", p->name,
               nonfinite_word(t->grads[p->offset + i]), i);
  }
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

/* Returns 0 at the end of the epoch, 1 when interrupted (last.ckpt written), -1 on error.
 * A checkpoint written mid-epoch resumes at its batch: the shuffle depends only on
 * (seed, epoch) and the noise on the global step. */
static int train_epoch(trainer *t, int epoch, float lr) {
  const aert_model *m = t->m;
  long nb = t->train.n / m->batch;
  long first = (long)t->st.step - (long)epoch * nb;
  if (first < 0 || first >= nb)
    first = 0;
  aert_progress pr;
  aert_shuffle(t->order, t->train.n, t->st.seed, epoch);
  aert_progress_begin(&pr, epoch, t->st.epochs, nb, t->o->quiet);
  long counted = restore_epoch_sums(t, first);   /* the epoch's means count from this batch */
  if (aert_loader_start(&t->loader, t->order, first, nb, t->st.seed, epoch) != 0)
    return -1;
  for (long b = first; b < nb; b++) {
    aert_losses l = {0};
    uint64_t seed = aert_step_seed(t->st.seed, t->st.step);
    float *x, *yb;
    if (aert_loader_take(&t->loader, b, &x, &yb) != 0) {
      char kept[600] = "no checkpoint was written";
      if (t->st.epoch > 0)
        snprintf(kept, sizeof kept, "'%s' keeps epoch %d", t->last, t->st.epoch);
      aert_error("training stopped at step %llu (epoch %d, batch %ld): the data above could not "
                 "be read; %s", (unsigned long long)t->st.step + 1, epoch + 1, b + 1, kept);
      return aert_loader_stop(&t->loader), -1;
    }
    const float *y = yb ? yb : x;
    aert_profile_step_begin(t->prof);
    l.total = m->forward(t->w.params, t->w.arena, x, y, 1, seed, &l);
    if (check_finite(t, &l, 0, (int)b) != 0)
      return aert_loader_stop(&t->loader), -1;
    m->backward(t->w.params, t->grads, t->w.arena, x, y, seed);
    aert_loader_release(&t->loader, b);
    if (check_finite(t, &l, 1, (int)b) != 0)
      return aert_loader_stop(&t->loader), -1;
    aert_profile_optim_begin(t->prof);
    aert_optim_step(&t->opt, m, t->w.params, t->grads, lr);
    aert_profile_step_end(t->prof);
    t->st.step++;
    t->loss += l.total;
    for (int i = 0; i < m->n_loss_terms; i++)
      t->terms[i] += l.term[i];
    aert_progress_step(&pr, b + 1, t->loss / (b + 1 - counted), m->batch);
    if (interrupted && b + 1 < nb) {   /* at the last batch the epoch ends normally first */
      aert_loader_stop(&t->loader);
      keep_epoch_sums(t);
      if (aert_ckpt_save(t->last, m, &t->st, t->w.params, &t->opt) != 0)
        return -1;
      printf("\ninterrupted at step %llu (epoch %d, batch %ld of %ld): wrote '%s'; --resume continues from there\n",
             (unsigned long long)t->st.step, epoch + 1, b + 1, nb, t->last);
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
    if (aert_metrics_init(&mt, classes) != 0 || aert_eval_set(&t->w, &t->val, &mt, NULL, NULL) != 0)
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
  aert_progress_end(&pr, t->loss, t->val_loss, lr);
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
    rc = aert_ckpt_restore(&ck, t->m, t->w.params, NULL);
  aert_ckpt_free(&ck);
  return rc;
}

/* Resuming with another optimizer or schedule than the checkpoint's run: refused unless
 * --force, which then continues with the new settings (and fresh optimizer state when the
 * kind of optimizer changed). Returns 1 when the optimizer state is to be kept. */
static int check_resume_optim(trainer *t, const aert_ckpt *ck) {
  char what[512];
  if (!ck->st.has_optim || !aert_optim_changes(&ck->st.optim, &t->m->optim, what, sizeof what))
    return ck->opt_kind == t->opt.kind ? 1 : -1;
  if (!t->o->force)
    return aert_error("checkpoint '%s' was trained with other optimizer settings than model '%s' "
                      "has now (%s); --force resumes with the new ones", ck->path, t->m->name,
                      what), -2;
  if (!t->o->quiet)
    printf("resuming with changed optimizer settings (--force): %s%s\n", what,
           ck->opt_kind != t->opt.kind ? "; the optimizer state starts afresh" : "");
  return ck->opt_kind == t->opt.kind ? 1 : 0;
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
    rc = aert_ckpt_restore(&ck, t->m, t->w.params, keep ? &t->opt : NULL);
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

static int start_state(trainer *t) {
  const aert_options *o = t->o;
  t->st = (aert_train_state){.seed = o->seed, .epochs = o->epochs ? o->epochs : t->m->epochs,
                             .best_val = INFINITY, .has_optim = 1, .optim = t->m->optim,
                             .base_lr = o->lr > 0 ? o->lr : t->m->optim.lr};
  if (o->resume)
    return resume_state(t);
  if (t->all.tiles)   /* the band statistics travel in every checkpoint */
    aert_tiles_get_norm(t->all.tiles, &t->st);
  if (t->m->set_class_weights) {   /* and so do automatic class weights */
    auto_class_weights(t);
    show_class_weights(t);
    t->m->set_class_weights(t->st.class_weights);
  }
  if (aert_init_params(t->m, t->w.params, o->seed) != 0)
    return -1;
  return o->init ? load_init(t, o->init) : 0;
}

static int save_epoch(trainer *t, double val) {
  int improved = val < t->st.best_val;
  if (improved) {
    t->st.best_val = (float)val;
    t->st.since_best = 0;
  } else {
    t->st.since_best++;
  }
  if (improved && aert_ckpt_save(t->best, t->m, &t->st, t->w.params, &t->opt) != 0)
    return -1;
  return aert_ckpt_save(t->last, t->m, &t->st, t->w.params, &t->opt);
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
  float base_lr = t->st.base_lr;
  if (aert_csv_open(&csv, t->out, m, t->o->resume) != 0)
    return -1;
  int rc = 0;
  if (t->st.epoch >= t->st.epochs && !t->o->quiet)
    printf("nothing to do: %d of %d epochs already trained (--epochs N to train longer)\n",
           t->st.epoch, t->st.epochs);
  while (rc == 0 && t->st.epoch < t->st.epochs) {
    double t0 = aert_now();
    float lr = aert_sched_lr(&m->optim, base_lr, t->st.epoch, t->st.epochs);
    rc = train_epoch(t, t->st.epoch, lr);
    if (rc)
      break;   /* an error, or an interruption that wrote last.ckpt */
    t->st.epoch++;
    /* best.ckpt and early stopping follow the validation loss, the training loss without one */
    rc = save_epoch(t, t->val.n > 0 ? t->val_loss : t->loss);
    if (rc == 0)
      rc = aert_csv_row(&csv, m, t->st.epoch, t->st.step, lr, t->loss, t->terms, t->val_loss,
                        t->val_acc, t->val_miou,
                        aert_now() - t0);
    if (rc == 0)
      rc = watch_epoch(t, csv.path, lr);
    if (rc == 0 && interrupted) {
      printf("\ninterrupted at the end of epoch %d: wrote '%s'; --resume continues from there\n", t->st.epoch,
             t->last);
      rc = 1;
      break;
    }
    if (rc == 0 && t->o->patience > 0 && t->st.since_best >= t->o->patience) {
      if (!t->o->quiet)
        printf("early stopping: no improvement for %d epochs\n", t->st.since_best);
      break;
    }
  }
  if (aert_csv_close(&csv) != 0)
    rc = -1;
  return rc;
}

static int setup(trainer *t) {
  const aert_model *m = t->m;
  const char *dir = aert_data_dir(m, t->o->data_dir);
  if (aert_mkdir_p(t->out) != 0 || lock_out(t->out, &t->lock) != 0 || aert_workspace_init(&t->w, m) != 0 ||
      aert_optim_init(&t->opt, m) != 0)
    return -1;
  t->grads = aert_alloc(sizeof(float) * m->param_floats, "gradients");
  if (!t->grads || aert_data_load(m, dir, 1, t->o->limit, &t->all) != 0)
    return -1;
  aert_data_split(&t->all, m->data.validation, &t->train, &t->val);
  if (t->train.n < m->batch)
    return aert_error("only %ld training examples in '%s', fewer than one batch of %d", t->train.n,
                      dir, m->batch), -1;
  if (t->o->tensorboard && aert_tfevents_open(&t->tb, t->o->tensorboard) != 0)
    return -1;
  t->order = aert_alloc(sizeof(long) * t->train.n, "shuffle order");
  if (!t->order || aert_loader_init(&t->loader, m, &t->train) != 0)
    return -1;
  if (t->loader.augment && !t->o->quiet)
    printf("augmenting on the fly: shift %g px, rotate %g deg, zoom %g, flip%s%s\n", m->data.shift,
           m->data.rotate, m->data.zoom, m->data.flip_h ? " h" : "", m->data.flip_v ? " v" : "");
  return start_state(t);
}

int aert_train(const aert_model *m, const aert_options *o) {
  trainer t = {.m = m, .o = o, .out = strdup(o->out), .lock = -1};
  t.last = aert_join(o->out, "last.ckpt");
  t.best = aert_join(o->out, "best.ckpt");
  interrupted = 0;
  void (*previous)(int) = signal(SIGINT, on_interrupt), (*previous_term)(int) = signal(SIGTERM, on_interrupt);
  int rc = t.out && t.last && t.best ? 0 : -1;
  if (rc == 0 && o->profile) {
    rc = aert_profile_begin(&t.profile, m, o->profile, "train");
    t.prof = &t.profile;
  }
  if (rc == 0)
    rc = setup(&t);
  if (rc == 0)
    rc = run_epochs(&t);
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
  aert_data_free(&t.all);
  aert_workspace_free(&t.w);
  aert_optim_free(&t.opt);
  free(t.grads);
  free(t.order);
  free(t.out);
  free(t.last);
  free(t.best);
  return rc;
}
