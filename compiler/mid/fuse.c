/* fuse.c - groups graph nodes into kernels: an activation joins the conv, dense or
 * batch norm before it (its epilogue); upsample and concat that only feed convs are
 * folded into those convs' window indexing, so they never exist in memory; flatten,
 * reshape and linear are views of their input's buffer. */
#include "aec.h"

#include <string.h>

static bool has_epilogue(const ae_kernel *k) { return k && !k->act && (ae_op_info_of(k->node->op)->traits & AE_OP_FUSES_ACT); }

/* An upsample or concat folds away when every use of it is a conv, or another fold. A
 * bilinear upsample does not: a window index cannot interpolate. */
static void find_folds(const ae_program *p, bool *fold) {
  ae_model *m = p->m;
  for (int i = m->nodes.len - 1; i >= 0; i--) {
    ae_node *n = m->nodes.items[i];
    if (!(ae_op_info_of(n->op)->traits & AE_OP_FOLDABLE) || n->bilinear) continue;
    int conv_uses = 0;
    for (int j = i + 1; j < m->nodes.len; j++) {
      ae_node *c = m->nodes.items[j];
      for (int k = 0; k < c->in.len; k++)
        if (c->in.items[k] == n && ((c->op == OP_CONV && k == 0) || fold[c->id])) conv_uses++;
    }
    fold[n->id] = conv_uses > 0 && conv_uses == p->uses[n->id];
  }
}

static void add_views(ae_arena *a, const ae_program *p, const bool *fold, ae_vec *out, ae_node *n, int factor,
                      int ch_off) {
  if (fold[n->id] && n->op == OP_UPSAMPLE) {
    add_views(a, p, fold, out, n->in.items[0], factor * n->factor, ch_off);
    return;
  }
  if (fold[n->id]) {
    for (int i = 0; i < n->in.len; i++) {
      ae_node *x = n->in.items[i];
      add_views(a, p, fold, out, x, factor, ch_off);
      ch_off += x->shape.d[x->shape.rank - 1];
    }
    return;
  }
  ae_view *v = ae_alloc(a, sizeof *v);
  v->node = n;   /* the value as the spec shapes it; its buffer is root[n] */
  v->factor = factor;
  v->ch_off = ch_off;
  ae_vec_push(a, out, v);
}

static ae_tensor *param_of(const ae_program *p, const ae_node *n, const char *role) {
  size_t len = strlen(n->name);
  for (int i = 0; i < p->params.len; i++) {
    ae_tensor *t = p->params.items[i];
    if (t->node == n && strncmp(t->name, n->name, len) == 0 && strcmp(t->name + len + 1, role) == 0) return t;
  }
  return NULL;
}

void ae_fuse(ae_arena *a, ae_program *p) {
  ae_model *m = p->m;
  bool *fold = ae_alloc(a, sizeof(bool) * (size_t)p->n_nodes);
  find_folds(p, fold);
  for (int i = 0; i < m->nodes.len; i++) {
    ae_node *n = m->nodes.items[i];
    ae_node *x = n->in.len ? n->in.items[0] : NULL;
    if (n->op == OP_INPUT || n->op == OP_TARGET) { p->root[n->id] = n; continue; }
    if (fold[n->id]) continue;
    if (ae_op_info_of(n->op)->traits & AE_OP_VIEW) { p->root[n->id] = p->root[x->id]; continue; }
    ae_kernel *pk = p->producer[x->id];
    if (ae_op_is_activation(n->op) && n->op != OP_SOFTMAX && p->uses[x->id] == 1 && p->root[x->id] == x &&
        has_epilogue(pk)) {
      pk->act = n;
      pk->out = n;
      p->root[x->id] = NULL;
      p->root[n->id] = n;
      p->producer[x->id] = NULL;
      p->producer[n->id] = pk;
      continue;
    }
    ae_kernel *k = ae_alloc(a, sizeof *k);
    k->id = p->kernels.len;
    k->kind = ae_op_info_of(n->op)->kernel;
    k->node = k->out = n;
    if (k->kind == K_CONV) add_views(a, p, fold, &k->src, x, 1, 0);
    else
      for (int j = 0, off = 0; j < n->in.len; j++) {   /* a materialised concat stacks its inputs' channels */
        ae_node *in = n->in.items[j];
        add_views(a, p, fold, &k->src, in, 1, off);
        if (k->kind == K_CONCAT) off += in->shape.d[in->shape.rank - 1];
      }
    if (ae_op_has_params(n->op)) {
      bool bn = ae_op_info_of(n->op)->weights == WEIGHTS_BATCHNORM;
      k->w = param_of(p, n, bn ? "gamma" : "w");
      k->b = param_of(p, n, bn ? "beta" : "b");
      k->rmean = param_of(p, n, "mean");
      k->rvar = param_of(p, n, "var");
    }
    p->root[n->id] = n;
    p->producer[n->id] = k;
    ae_vec_push(a, &p->kernels, k);
  }
}
