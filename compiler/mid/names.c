/* names.c - the C names of spec values and kernels, shared by every stage that prints
 * or emits them (fusion, the memory plan, the emitters, dump and the report). */
#include "aec.h"

const char *ae_c_name(ae_arena *a, const char *name) {
  char *s = ae_strdup(a, name);
  for (char *p = s; *p; p++)
    if (*p == '.' || *p == '-') *p = '_';
  return s;
}

const char *ae_kernel_name(ae_arena *a, const ae_kernel *k) {
  const ae_node *n = k->node;
  const char *op = ae_op_name(n->op);
  if (n->name) return ae_sprintf(a, "%s_%s", op, ae_c_name(a, n->name));
  return ae_sprintf(a, "%s_%d", op, k->id);
}
