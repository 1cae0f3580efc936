/* autodiff.c - which values the loss gradient flows into. The backward pass is the
 * kernels in reverse, each one's backward beside its forward in the generated code;
 * a value needs a gradient when a trainable parameter lies upstream of it. */
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
