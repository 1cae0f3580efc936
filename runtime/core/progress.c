/* progress.c - what a training run shows and logs: a progress bar redrawn with \r on a
 * terminal (one line per epoch otherwise), and OUT/train.csv with one row per epoch
 * (epoch, step, lr, train loss, each loss term, validation loss, seconds). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "aert_internal.h"

double aert_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void aert_progress_begin(aert_progress *p, int epoch, int epochs, long total, int quiet) {
  p->tty = isatty(STDOUT_FILENO);
  p->quiet = quiet;
  p->epoch = epoch;
  p->epochs = epochs;
  p->total = total;
  p->images = 0;
  p->patches = 0;
  p->read_seconds = p->data_wait = 0;
  p->val_acc = p->val_miou = NAN;
  p->t0 = p->last_draw = aert_now();
}

/* step counts from 1; redrawn at most ten times a second. */
void aert_progress_step(aert_progress *p, long step, double running_loss, int batch) {
  p->images += batch;
  double now = aert_now();
  if (p->quiet || !p->tty || (now - p->last_draw < 0.1 && step < p->total))
    return;
  p->last_draw = now;
  double el = now - p->t0, eta = step ? el / step * (p->total - step) : 0;
  int width = 30, done = p->total ? (int)(width * step / p->total) : width;
  char bar[32];
  memset(bar, '=', (size_t)done);
  memset(bar + done, ' ', (size_t)(width - done));
  bar[width] = '\0';
  printf("\repoch %d/%d [%s] %ld/%ld  loss %.5f  %.0f img/s  ETA %.0fs  ", p->epoch + 1,
         p->epochs, bar, step, p->total, running_loss, el > 0 ? p->images / el : 0.0, eta);
  fflush(stdout);
}

void aert_progress_end(aert_progress *p, double train_loss, double val_loss, float lr) {
  if (p->quiet)
    return;
  double el = aert_now() - p->t0;
  printf("%sepoch %d/%d  train loss %.5f  val loss %.5f", p->tty ? "\r\033[K" : "", p->epoch + 1,
         p->epochs, train_loss, val_loss);
  if (!isnan(p->val_acc))
    printf("  val acc %.4f", p->val_acc);
  if (!isnan(p->val_miou))
    printf("  mIoU %.4f", p->val_miou);
  printf("  lr %.3g  %.1fs  %.0f img/s  data wait %.2fs", lr, el, el > 0 ? p->images / el : 0.0,
         p->data_wait);
  if (p->patches)   /* patches/s of the data threads while reading, not of the whole epoch */
    printf(" (read %ld patches, %.0f/s)", p->patches, p->read_seconds > 0 ? p->patches / p->read_seconds : 0.0);
  printf("\n");
  fflush(stdout);
}

int aert_csv_open(aert_csv *c, const char *out_dir, const aert_model *m, int append) {
  c->path = aert_join(out_dir, "train.csv");
  if (!c->path)
    return aert_error("out of memory"), -1;
  int fresh = !append || access(c->path, F_OK) != 0;
  c->f = aert_open(c->path, fresh ? "w" : "a");
  if (!c->f) {
    free(c->path);
    return -1;
  }
  if (!fresh)
    return 0;
  fprintf(c->f, "epoch,step,lr,train_loss");
  for (int i = 0; i < m->n_loss_terms; i++)
    fprintf(c->f, ",%s", m->loss_term_names[i] ? m->loss_term_names[i] : "term");
  fprintf(c->f, ",val_loss");
  if (m->target_kind == AERT_TARGET_CLASSES)
    fprintf(c->f, m->target_rank ? ",val_pixel_accuracy,val_mean_iou" : ",val_accuracy");
  fprintf(c->f, ",seconds\n");
  if (fflush(c->f) != 0) {
    aert_error("cannot write '%s': %m", c->path);
    return -1;
  }
  return 0;
}

int aert_csv_row(aert_csv *c, const aert_model *m, int epoch, uint64_t step, float lr,
                 double train_loss, const double *terms, double val_loss, double val_acc,
                 double val_miou, double seconds) {
  fprintf(c->f, "%d,%llu,%.9g,%.9g", epoch, (unsigned long long)step, lr, train_loss);
  for (int i = 0; i < m->n_loss_terms; i++)
    fprintf(c->f, ",%.9g", terms[i]);
  fprintf(c->f, ",%.9g", val_loss);
  if (m->target_kind == AERT_TARGET_CLASSES)
    fprintf(c->f, m->target_rank ? ",%.6f,%.6f" : ",%.6f", val_acc, val_miou);
  fprintf(c->f, ",%.3f\n", seconds);
  if (ferror(c->f) || fflush(c->f) != 0)
    return aert_error("cannot write '%s': %m", c->path), -1;
  return 0;
}

int aert_csv_close(aert_csv *c) {
  int rc = c->f ? aert_close(c->f, c->path) : 0;
  free(c->path);
  c->f = NULL;
  c->path = NULL;
  return rc;
}
