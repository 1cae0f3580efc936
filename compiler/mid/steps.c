/* steps.c - the program every target walks: the forward steps, the loss, and the
 * backward steps each kernel expands into by its op's registry row, with the arena
 * buffers each step reads and writes. Gradients accumulate (+=), so a gradient buffer is
 * zeroed by a step of its own just before the first step that touches it. */
#include "aec.h"

static const char *const kind_names[] = {
  "forward", "loss", "zero_param_grads", "loss_grad", "zero", "act_grad", "bias_grad", "weight_grad",
  "input_grad", "backward", "optimizer",
};

const char *ae_step_kind_name(ae_step_kind kind) { return kind_names[kind]; }

typedef struct {
  ae_arena *a;
  ae_program *p;
  bool *touched;             /* per node: its gradient buffer has been touched by a step */
} builder;

static bool in_arena(const ae_node *n) { return n && n->op != OP_INPUT && n->op != OP_TARGET; }

/* A node's value and gradient buffers as its root holds them; NULL outside the arena or
 * where no gradient flows. */
static ae_buffer *value_of(const ae_program *p, const ae_node *n) {
  const ae_node *r = n ? p->root[n->id] : NULL;
  return in_arena(r) ? &p->val[r->id] : NULL;
}
static ae_buffer *grad_of(const ae_program *p, const ae_node *n) {
  const ae_node *r = n ? p->root[n->id] : NULL;
  return in_arena(r) && p->needs_grad[r->id] ? &p->grad[r->id] : NULL;
}

static ae_step *add(builder *s, ae_step_kind kind, int time, const ae_kernel *k) {
  ae_step *st = ae_alloc(s->a, sizeof *st);
  st->kind = kind;
  st->time = time;
  st->k = k;
  ae_vec_push(s->a, &s->p->steps, st);
  return st;
}

static void uses(builder *s, ae_vec *list, ae_buffer *b) {
  if (!b) return;
  for (int i = 0; i < list->len; i++)
    if (list->items[i] == b) return;
  ae_vec_push(s->a, list, b);
}

/* The sources a kernel reads, as values (and, for dx, as gradients). */
static void source_values(builder *s, ae_step *st, const ae_kernel *k) {
  for (int i = 0; i < k->src.len; i++) uses(s, &st->reads, value_of(s->p, ((ae_view *)k->src.items[i])->node));
}
static bool source_grads(builder *s, ae_step *st, const ae_kernel *k) {
  bool any = false;
  for (int i = 0; i < k->src.len; i++) {
    ae_buffer *g = grad_of(s->p, ((ae_view *)k->src.items[i])->node);
    if (st) uses(s, &st->writes, g);
    any = any || g;
  }
  return any;
}
static ae_buffer *scratch(ae_kernel *k, int pass) { return k->conv.scratch_floats[pass] > 0 ? &k->scratch[pass] : NULL; }

/* Zero steps for the gradient buffers that the group of steps from `first` on touches
 * before any earlier step did, in node order, placed in front of the group. */
static void zero_before(builder *s, int first) {
  ae_program *p = s->p;
  int end = p->steps.len, nz = 0;
  for (int i = 0; i < p->n_nodes; i++) {
    ae_buffer *g = &p->grad[i];
    if (s->touched[i]) continue;
    bool hit = false;
    for (int j = first; j < end && !hit; j++) {
      const ae_step *st = p->steps.items[j];
      for (int r = 0; r < st->reads.len && !hit; r++) hit = st->reads.items[r] == g;
      for (int w = 0; w < st->writes.len && !hit; w++) hit = st->writes.items[w] == g;
    }
    if (!hit) continue;
    s->touched[i] = true;
    ae_step *z = add(s, STEP_ZERO, ((ae_step *)p->steps.items[first])->time, NULL);
    z->buf = g;
    uses(s, &z->writes, g);
    nz++;
  }
  /* move the zero steps (appended last) in front of the group */
  void **items = p->steps.items;
  for (int n = 0; n < nz; n++) {
    void *z = items[end + n];
    for (int j = end + n; j > first + n; j--) items[j] = items[j - 1];
    items[first + n] = z;
  }
}

static void forward_step(builder *s, ae_kernel *k) {
  ae_step *st = add(s, STEP_FORWARD, k->id, k);
  source_values(s, st, k);
  uses(s, &st->writes, value_of(s->p, k->out));
  uses(s, &st->writes, scratch(k, 0));
  if (k->kind == K_BATCHNORM) uses(s, &st->writes, &k->stats);
}

static void loss_step(builder *s, ae_step_kind kind) {
  const ae_model *m = s->p->m;
  ae_step *st = add(s, kind, s->p->kernels.len, NULL);
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    const ae_node *ops[2] = {t->a, t->b};
    for (int j = 0; j < 2; j++) {
      uses(s, &st->reads, value_of(s->p, ops[j]));
      if (kind == STEP_LOSS_GRAD) uses(s, &st->writes, grad_of(s->p, ops[j]));
    }
  }
}

/* A kernel's backward, expanded as its op's registry row says. */
static void backward_steps(builder *s, ae_kernel *k) {
  ae_program *p = s->p;
  int t = 2 * p->kernels.len - k->id;
  const ae_op_info *op = ae_op_info_of(k->node->op);
  ae_buffer *y = value_of(p, k->out), *dy = grad_of(p, k->out);
  if (op->traits & AE_OP_FUSES_ACT) {
    ae_step *st = add(s, STEP_ACT_GRAD, t, k);
    uses(s, &st->reads, y);
    uses(s, &st->writes, dy);
  }
  if (op->backward != BACKWARD_LAYER) {
    ae_step *st = add(s, STEP_BACKWARD, t, k);
    uses(s, &st->reads, dy);
    uses(s, &st->reads, y);
    source_values(s, st, k);
    if (k->kind == K_BATCHNORM) uses(s, &st->reads, &k->stats);
    source_grads(s, st, k);
    return;
  }
  bool trains = !k->w->frozen;
  if (trains && k->b) uses(s, &add(s, STEP_BIAS_GRAD, t, k)->reads, dy);
  if (trains) {
    ae_step *st = add(s, STEP_WEIGHT_GRAD, t, k);
    source_values(s, st, k);
    uses(s, &st->reads, dy);
    uses(s, &st->writes, scratch(k, 1));
  }
  if (source_grads(s, NULL, k)) {
    ae_step *st = add(s, STEP_INPUT_GRAD, t, k);
    uses(s, &st->reads, dy);
    uses(s, &st->writes, scratch(k, 1));
    source_grads(s, st, k);
  }
}

void ae_build_steps(ae_arena *a, ae_program *p) {
  builder s = {a, p, ae_alloc(a, sizeof(bool) * (size_t)p->n_nodes)};
  int K = p->kernels.len;
  for (int i = 0; i < K; i++) forward_step(&s, p->kernels.items[i]);
  loss_step(&s, STEP_LOSS);
  add(&s, STEP_ZERO_PARAM_GRADS, K, NULL);
  int first = p->steps.len;
  loss_step(&s, STEP_LOSS_GRAD);
  zero_before(&s, first);
  for (int i = K - 1; i >= 0; i--) {
    ae_kernel *k = p->kernels.items[i];
    if (!ae_kernel_has_backward(p, k)) continue;
    first = p->steps.len;
    backward_steps(&s, k);
    zero_before(&s, first);
  }
  add(&s, STEP_OPTIMIZER, 2 * K + 1, NULL);
}

const ae_step *ae_kernel_step(const ae_program *p, const ae_kernel *k, ae_step_kind kind) {
  for (int i = 0; i < p->steps.len; i++) {
    const ae_step *st = p->steps.items[i];
    if (st->k == k && st->kind == kind) return st;
  }
  return NULL;
}
