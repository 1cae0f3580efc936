/* diag.c - diagnostics in one format for every stage, as a good C compiler gives
 * them: `file:line:col: error: message`, the source line, a caret under the span,
 * then hints. Errors are counted so that a stage reports all of them and fails last. */
#include "aec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SHOWN_LINE_MAX 160   /* longer source lines are shown as a window around the column */

static void print_source_line(ae_diag *d, ae_loc loc) {
  if (!loc.src || loc.line < 1) return;
  const char *p = loc.src->text, *end = p + loc.src->len;
  for (int line = 1; line < loc.line && p < end; p++)
    if (*p == '\n') line++;
  const char *eol = p;
  while (eol < end && *eol != '\n') eol++;
  long width = eol - p, from = 0;
  if (width > SHOWN_LINE_MAX) {            /* keep the column inside the window */
    from = loc.col - 1 - SHOWN_LINE_MAX / 2;
    if (from < 0) from = 0;
    if (from + SHOWN_LINE_MAX > width) from = width - SHOWN_LINE_MAX;
    width = SHOWN_LINE_MAX;
  }
  fprintf(d->out, "%5d | ", loc.line);
  for (long i = 0; i < width; i++) {
    unsigned char c = (unsigned char)p[from + i];
    fputc(c == '\t' || (c >= 32 && c < 127) || c >= 128 ? c : '?', d->out);
  }
  fputs("\n      | ", d->out);
  long caret = loc.col - 1 - from;
  for (long i = 0; i < caret && i < width; i++) fputc(p[from + i] == '\t' ? '\t' : ' ', d->out);
  fputc('^', d->out);
  long len = loc.len;
  if (caret + len > width) len = width - caret;
  for (long i = 1; i < len; i++) fputc('~', d->out);
  fputc('\n', d->out);
}

static void report(ae_diag *d, ae_loc loc, const char *kind, const char *fmt, va_list ap) {
  if (loc.src) fprintf(d->out, "%s:%d:%d: %s: ", loc.src->path, loc.line, loc.col, kind);
  else fprintf(d->out, "aec: %s: ", kind);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  print_source_line(d, loc);
}

void ae_error(ae_diag *d, ae_loc loc, const char *fmt, ...) {
  d->errors++;
  if (d->errors > AE_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  report(d, loc, "error", fmt, ap);
  va_end(ap);
  if (d->errors == AE_MAX_ERRORS)
    fprintf(d->out, "%s: note: too many errors, stopping here\n", loc.src ? loc.src->path : "aec");
}

void ae_warning(ae_diag *d, ae_loc loc, const char *fmt, ...) {
  d->warnings++;
  va_list ap;
  va_start(ap, fmt);
  report(d, loc, "warning", fmt, ap);
  va_end(ap);
}

void ae_note_at(ae_diag *d, ae_loc loc, const char *fmt, ...) {
  if (d->errors > AE_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  report(d, loc, "note", fmt, ap);
  va_end(ap);
}

void ae_hint(ae_diag *d, const char *fmt, ...) {
  if (d->errors > AE_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("      = hint: ", d->out);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  va_end(ap);
}

void ae_error_noloc(ae_diag *d, const char *path, const char *fmt, ...) {
  d->errors++;
  va_list ap;
  va_start(ap, fmt);
  fprintf(d->out, "%s: error: ", path);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  va_end(ap);
}

bool ae_too_many_errors(const ae_diag *d) { return d->errors >= AE_MAX_ERRORS; }

ae_loc ae_loc_span(ae_loc from, ae_loc to) {
  if (to.line == from.line && to.col + to.len > from.col) from.len = to.col + to.len - from.col;
  return from;
}

bool ae_source_read(ae_arena *a, ae_diag *d, const char *path, ae_source *src, ae_loc *from) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (from) ae_error(d, *from, "cannot open '%s': %s", path, strerror(errno));
    else ae_error_noloc(d, path, "cannot open: %s", strerror(errno));
    return false;
  }
  char *buf = ae_alloc(a, AE_MAX_FILE_BYTES + 1);
  size_t n = fread(buf, 1, AE_MAX_FILE_BYTES + 1, f);
  bool failed = ferror(f);
  fclose(f);
  if (failed || n > AE_MAX_FILE_BYTES) {
    const char *why = failed ? "read error (is it a directory?)" : "file larger than 4 MiB; a spec is a short text";
    if (from) ae_error(d, *from, "cannot read '%s': %s", path, why);
    else ae_error_noloc(d, path, "cannot read: %s", why);
    return false;
  }
  buf[n] = 0;
  src->path = ae_strdup(a, path);
  src->text = buf;
  src->len = n;
  return true;
}

/* Levenshtein distance, bounded by the short strings that names are. */
static int edit_distance(const char *s, const char *t) {
  size_t n = strlen(s), m = strlen(t);
  if (n > 40 || m > 40) return 99;
  int row[41];
  for (size_t j = 0; j <= m; j++) row[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int up = row[j];
      int best = diag + (s[i - 1] != t[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[m];
}

const char *ae_closest(const char *word, const char *const *cands, int n) {
  const char *best = NULL;
  int best_d = (int)strlen(word) / 3 + 1;
  if (best_d > 3) best_d = 3;
  for (int i = 0; i < n; i++) {
    if (!cands[i]) continue;
    int dist = edit_distance(word, cands[i]);
    if (dist <= best_d && (!best || dist < best_d)) { best = cands[i]; best_d = dist; }
  }
  return best;
}

bool ae_make_dir(const char *dir) {
  char *p = strdup(dir);
  bool ok = p != NULL;
  for (char *s = p; ok && *s; s++) {
    if (s == p || *s != '/') continue;   /* a leading '/' is the root, not a folder to make */
    *s = 0;
    ok = mkdir(p, 0777) == 0 || errno == EEXIST;
    *s = '/';
  }
  ok = ok && (mkdir(p, 0777) == 0 || errno == EEXIST);
  int saved = errno;
  free(p);
  errno = saved;
  return ok;
}
