/* ir.c - lowers a checked model into the program the back end works on: the
 * parameter table (one list from which codegen emits the struct, sizes and init),
 * use counts, then fusion, autodiff, the target's schedule, the steps and the memory plan. */
#include "aec.h"

/* He initialisation when a relu-like activation follows, Glorot otherwise. */
static ae_init weight_init(const ae_program *p, const ae_node *n) {
  for (int i = 0; i < p->m->nodes.len; i++) {
    const ae_node *c = p->m->nodes.items[i];
    if (c->in.len && c->in.items[0] == n)
      return c->op == OP_RELU || c->op == OP_LEAKY_RELU || c->op == OP_ELU ? INIT_HE_NORMAL : INIT_GLOROT_UNIFORM;
  }
  return INIT_GLOROT_UNIFORM;
}

static ae_tensor *add_param(ae_arena *a, ae_program *p, const ae_node *n, const char *role, int rank,
                            const int *shape, ae_init init, bool frozen) {
  ae_tensor *t = ae_alloc(a, sizeof *t);
  t->name = ae_sprintf(a, "%s.%s", n->name, role);
  t->node = n;
  t->rank = rank;
  t->size = 1;
  for (int i = 0; i < rank; i++) { t->shape[i] = shape[i]; t->size *= shape[i]; }
  t->offset = p->param_floats;
  t->init = init;
  t->frozen = frozen || n->frozen;
  if (n->init_from) { t->init_from = n->init_from; t->init_name = ae_sprintf(a, "%s.%s", n->init_name, role); }
  p->param_floats += (t->size + 15) & ~15L;   /* 64-byte aligned tensors */
  ae_vec_push(a, &p->params, t);
  return t;
}

void ae_lower_params(ae_arena *a, ae_program *p) {
  for (int i = 0; i < p->m->nodes.len; i++) {
    ae_node *n = p->m->nodes.items[i];
    const ae_node *x = n->in.len ? n->in.items[0] : NULL;
    int cin = x ? x->shape.d[x->shape.rank - 1] : 0, cout = n->units, k = n->k;
    ae_tensor *w = NULL;
    switch (ae_op_info_of(n->op)->weights) {   /* the layout of its trainable tensors */
    case WEIGHTS_DENSE:
      w = add_param(a, p, n, "w", 2, (int[]){cin, cout}, weight_init(p, n), false);
      w->fan_in = cin; w->fan_out = cout;
      break;
    case WEIGHTS_CONV:
      w = add_param(a, p, n, "w", 4, (int[]){k, k, cin, cout}, weight_init(p, n), false);
      w->fan_in = k * k * cin; w->fan_out = k * k * cout;
      break;
    case WEIGHTS_CONV_T:
      w = add_param(a, p, n, "w", 4, (int[]){cin, k, k, cout}, weight_init(p, n), false);
      w->fan_in = k * k * cout; w->fan_out = k * k * cin;
      break;
    case WEIGHTS_BATCHNORM: {
      int c = n->shape.d[n->shape.rank - 1];
      add_param(a, p, n, "gamma", 1, &c, INIT_ONES, false);
      add_param(a, p, n, "beta", 1, &c, INIT_ZEROS, false);
      add_param(a, p, n, "mean", 1, &c, INIT_ZEROS, true);
      add_param(a, p, n, "var", 1, &c, INIT_ONES, true);
      continue;
    }
    case WEIGHTS_NONE: continue;
    }
    w->is_weight = true;
    if (!n->no_bias) add_param(a, p, n, "b", 1, &cout, INIT_ZEROS, false);
  }
}

static void count_uses(ae_program *p) {
  ae_model *m = p->m;
  for (int i = 0; i < m->nodes.len; i++) {
    ae_node *n = m->nodes.items[i];
    for (int j = 0; j < n->in.len; j++) p->uses[((ae_node *)n->in.items[j])->id]++;
  }
  for (int i = 0; i < m->losses.len; i++) {
    ae_loss_term *t = m->losses.items[i];
    if (t->a) p->uses[t->a->id]++;
    if (t->b) p->uses[t->b->id]++;
  }
  if (m->output) p->uses[m->output->id]++;
  if (m->latent) p->uses[m->latent->id]++;
}

ae_program *ae_lower(ae_arena *a, ae_model *m, int batch) {
  ae_program *p = ae_alloc(a, sizeof *p);
  p->m = m;
  p->batch = batch;
  p->ranks = 1;
  p->n_nodes = m->nodes.len;
  p->uses = ae_alloc(a, sizeof(int) * (size_t)p->n_nodes);
  p->root = ae_alloc(a, sizeof(ae_node *) * (size_t)p->n_nodes);
  p->producer = ae_alloc(a, sizeof(ae_kernel *) * (size_t)p->n_nodes);
  p->needs_grad = ae_alloc(a, sizeof(bool) * (size_t)p->n_nodes);
  p->val = ae_alloc(a, sizeof(ae_buffer) * (size_t)p->n_nodes);
  p->grad = ae_alloc(a, sizeof(ae_buffer) * (size_t)p->n_nodes);
  count_uses(p);
  ae_lower_params(a, p);
  ae_fuse(a, p);
  ae_autodiff(p);
  ae_schedule_cpu(p);
  ae_build_steps(a, p);
  ae_plan_memory(p);
  return p;
}
