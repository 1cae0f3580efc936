/* autodiff.c - which values the loss gradient flows into: a value needs a gradient when a
 * trainable parameter lies upstream of it. steps.c expands the backward pass from it. */
#include "aec.h"

void ae_autodiff(ae_program *p) {
  ae_model *m = p->m;
  for (int i = 0; i < m->nodes.len; i++) {
    ae_node *n = m->nodes.items[i];
    bool g = n->n_params > 0 && !n->frozen;
    for (int j = 0; j < n->in.len; j++) g = g || p->needs_grad[((ae_node *)n->in.items[j])->id];
    p->needs_grad[n->id] = g && n->op != OP_INPUT && n->op != OP_TARGET;
  }
}

bool ae_value_has_grad(const ae_program *p, const ae_node *n) {
  const ae_node *root = p->root[n->id];
  return p->needs_grad[root->id] && p->grad[root->id].used;
}

/* A kernel has a backward pass when the loss gradient reaches its output: not the
 * layers of a frozen imported block, nor anything before them. */
bool ae_kernel_has_backward(const ae_program *p, const ae_kernel *k) { return p->needs_grad[p->root[k->out->id]->id]; }
