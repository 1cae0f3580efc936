/* tfevents.c - TensorBoard event files without TensorFlow (train --tensorboard DIR): a file
 * DIR/events.out.tfevents.<seconds>.<host>.<pid> of TFRecords (length, masked CRC-32C of
 * the length, an Event protobuf, its masked CRC-32C), the first Event holding the file
 * version, then one per epoch with a Summary of scalar values. The protobufs are encoded
 * by hand: Event {1: wall_time double, 2: step int64, 3: file_version string, 5: summary},
 * Summary {1: repeated Value}, Value {1: tag string, 2: simple_value float}. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "aert_internal.h"

/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), bit by bit: records are small. */
uint32_t aert_crc32c(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  return ~c;
}

/* TFRecord's masking keeps a CRC of data that holds CRCs from looking like one. */
static uint32_t masked_crc(const unsigned char *p, size_t n) {
  uint32_t c = aert_crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static void put_le(aert_buf *b, uint64_t v, int bytes) {
  unsigned char s[8];
  for (int i = 0; i < bytes; i++)
    s[i] = (unsigned char)(v >> (8 * i));
  aert_buf_put(b, s, (size_t)bytes);
}

/* The Event's head: wall_time (field 1, fixed64) and step (field 2, varint). */
static void put_event_head(aert_buf *b, double wall, uint64_t step) {
  uint64_t bits;
  memcpy(&bits, &wall, 8);
  aert_pb_varint(b, 1 << 3 | 1);
  put_le(b, bits, 8);
  aert_pb_varint(b, 2 << 3 | 0);
  aert_pb_varint(b, step);
}

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One TFRecord around the event, written and flushed: TensorBoard reads the file as it grows. */
static int write_record(aert_tfevents *tb, const aert_buf *event) {
  aert_buf r = {0};
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)((uint64_t)event->n >> (8 * i));
  aert_buf_put(&r, len, 8);
  put_le(&r, masked_crc(len, 8), 4);
  aert_buf_put(&r, event->p, event->n);
  put_le(&r, masked_crc(event->p, event->n), 4);
  int rc = r.failed ? (aert_error("out of memory for a TensorBoard event"), -1)
                    : aert_write(tb->f, r.p, r.n, tb->path);
  if (rc == 0 && fflush(tb->f) != 0)
    rc = (aert_error("cannot write '%s': %m", tb->path), -1);
  free(r.p);
  return rc;
}

int aert_tfevents_open(aert_tfevents *tb, const char *dir) {
  char host[64] = "localhost", name[160];
  memset(tb, 0, sizeof *tb);
  gethostname(host, sizeof host - 1);
  host[strcspn(host, "/")] = 0;   /* a file name, whatever the host is called */
  snprintf(name, sizeof name, "events.out.tfevents.%010ld.%s.%ld", (long)time(NULL), host,
           (long)getpid());
  if (aert_mkdir_p(dir) != 0 || !(tb->path = aert_join(dir, name)))
    return -1;
  if (!(tb->f = aert_open(tb->path, "wb")))
    return aert_tfevents_close(tb), -1;
  aert_buf e = {0};
  put_event_head(&e, wall_time(), 0);
  aert_pb_bytes(&e, 3, "brain.Event:2", 13);
  int rc = e.failed ? -1 : write_record(tb, &e);
  free(e.p);
  return rc;
}

int aert_tfevents_scalars(aert_tfevents *tb, uint64_t step, int n, const char *const *tags,
                          const double *values) {
  aert_buf summary = {0}, value = {0}, e = {0};
  for (int i = 0; i < n; i++) {
    if (values[i] != values[i])
      continue;   /* NaN: no validation set, no class metric */
    float f = (float)values[i];
    uint32_t bits;
    memcpy(&bits, &f, 4);
    value.n = 0;
    aert_pb_bytes(&value, 1, tags[i], strlen(tags[i]));
    aert_pb_varint(&value, 2 << 3 | 5);
    put_le(&value, bits, 4);
    aert_pb_bytes(&summary, 1, value.p, value.n);
  }
  put_event_head(&e, wall_time(), step);
  aert_pb_bytes(&e, 5, summary.p, summary.n);
  int rc = summary.failed || value.failed || e.failed
               ? (aert_error("out of memory for a TensorBoard event"), -1)
               : write_record(tb, &e);
  free(summary.p), free(value.p), free(e.p);
  return rc;
}

int aert_tfevents_close(aert_tfevents *tb) {
  int rc = tb->f ? aert_close(tb->f, tb->path) : 0;
  free(tb->path);
  tb->f = NULL, tb->path = NULL;
  return rc;
}
