/* html.c - the escaping every part of the audit page (report*.c) writes text with. */
#include "aec.h"

/* s with & < > " escaped, for element text and attribute values alike. */
void ae_html(FILE *o, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", o); break;
    case '<': fputs("&lt;", o); break;
    case '>': fputs("&gt;", o); break;
    case '"': fputs("&quot;", o); break;
    default: fputc(*s, o);
    }
  }
}
