/* session.c - what every command that runs a model needs: its workspace (the device that
 * holds its parameters and arena, and one batch on the host) and, for eval, encode and
 * predict, a session: the checkpoint's parameters, the test set and the metrics. */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

int aert_workspace_init(aert_workspace *w, const aert_model *m, int training) {
  memset(w, 0, sizeof *w);
  w->m = m;
  if (aert_device_open(&w->dev, m, training) != 0)
    return -1;
  w->x = aert_alloc(sizeof(float) * m->batch * m->in_size, "input batch");
  if (m->target_kind != AERT_TARGET_INPUT)
    w->y = aert_alloc(sizeof(float) * m->batch * m->target_size, "target batch");
  if (!w->x || (m->target_kind != AERT_TARGET_INPUT && !w->y)) {
    aert_workspace_free(w);
    return -1;
  }
  return 0;
}

void aert_workspace_free(aert_workspace *w) {
  aert_device_close(&w->dev);
  free(w->x);
  free(w->y);
  memset(w, 0, sizeof *w);
}

float aert_workspace_forward(aert_workspace *w, aert_losses *losses) {
  aert_device_batch(&w->dev, w->x, w->y ? w->y : w->x);
  return aert_device_forward(&w->dev, 0, 0, losses);
}

/* The model a command runs: the workspace with the checkpoint's parameters, and the metrics;
 * st gets the checkpoint's training state (band statistics, class weights). */
int aert_session_model(aert_session *s, const aert_model *m, const aert_options *o, aert_train_state *st) {
  aert_ckpt ck;
  memset(s, 0, sizeof *s);
  memset(st, 0, sizeof *st);
  s->ckpt = o->ckpt ? strdup(o->ckpt) : aert_join(o->out, "best.ckpt");
  if (!s->ckpt || aert_workspace_init(&s->w, m, 0) != 0 || aert_ckpt_load(s->ckpt, &ck) != 0)
    return -1;
  int rc = aert_ckpt_check_model(&ck, m);
  if (rc == 0)
    rc = aert_ckpt_restore(&ck, m, s->w.dev.params, NULL);
  if (rc == 0)
    aert_device_upload(&s->w.dev);
  *st = ck.st;
  aert_ckpt_free(&ck);
  if (rc == 0)
    rc = aert_metrics_init(&s->mt, m->target_kind == AERT_TARGET_CLASSES ? m->n_classes : 0);
  return rc;
}

int aert_session_open(aert_session *s, const aert_model *m, const aert_options *o) {
  aert_train_state st;   /* the band statistics of `standardize`, the class weights */
  int rc = aert_session_model(s, m, o, &st);
  if (rc == 0)
    rc = aert_data_load(m, aert_data_dir(m, o->data_dir), 0, 0, &s->test);
  if (rc == 0 && s->test.tiles)
    rc = aert_tiles_set_norm(s->test.tiles, &st, s->ckpt);
  if (rc == 0)
    rc = aert_set_class_weights(m, &st, s->ckpt);
  if (rc == 0)
    rc = aert_mkdir_p(o->out);
  return rc;
}

/* weights = auto: the weights the run trained with, from its checkpoint. */
int aert_set_class_weights(const aert_model *m, const aert_train_state *st, const char *from) {
  if (!m->set_class_weights)
    return 0;
  if (st->n_class_weights == 0 && st->step == 0 && st->epoch == 0) {   /* from init or import */
    float ones[AERT_MAX_CLASSES];
    for (int c = 0; c < m->n_classes; c++)
      ones[c] = 1.0f;
    printf("note: '%s' is a step-0 checkpoint without class weights (weights = auto): the loss "
           "weighs every class 1\n", from);
    m->set_class_weights(ones);
    return 0;
  }
  if (st->n_class_weights != m->n_classes)
    return aert_error("checkpoint '%s' holds no class weights for the %d classes of model '%s' "
                      "(weights = auto)", from, m->n_classes, m->name), -1;
  m->set_class_weights(st->class_weights);
  return 0;
}

void aert_session_close(aert_session *s) {
  aert_workspace_free(&s->w);
  aert_data_free(&s->test);
  aert_metrics_free(&s->mt);
  free(s->ckpt);
}
