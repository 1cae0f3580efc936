/* synth.c - synthetic land-cover scenes (1 px = 1 m): fields in parcels, forest blobs, a lake
 * and/or a meandering river in a band of trees, roads with houses along them, a no-data strip
 * at a cut edge. Every number comes from a counter-based hash of the seed, and only IEEE's
 * exact + - * / sqrtf floorf are used (no other libm, no FMA contraction, one thread), so a
 * seed gives the same bytes on every machine. NAIP: R, G, B, NIR as 0..255. Landsat 8
 * surface reflectance blurred to a ~30 m footprint: coastal, blue, green, red, NIR, SWIR1,
 * SWIR2, then the thermal bands TIRS 10 and 11 as brightness temperature (T - 273 K) / 50.
 * aert_synth_write_split writes such scenes as a data set of georeferenced GeoTIFF tiles. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "aert_internal.h"

#define NL 9                       /* Landsat bands */
#define OBJ_PAVE 1                 /* obj map: driveway; 2 + 2 id + side: roof; ROAD_OBJ + k */
#define ROAD_OBJ 0x8000
#define MAX_ROADS 6
#define CM(c) (1u << (c))          /* class mask */

typedef struct { uint64_t seed, i; } rng;
static float rnd(rng *r) { return aert_uniform(r->seed, r->i++); }
static float range(rng *r, float a, float b) { return a + (b - a) * rnd(r); }
static uint64_t sub(uint64_t seed, uint64_t k) { return aert_hash64(seed ^ aert_hash64(k + 0x51)); }

/* Value noise in [0,1]: hashed values on a lattice of `cell` pixels, smoothstep-blended. */
typedef struct { float *lat, inv; int gw; } vnoise;

static int vn_init(vnoise *v, uint64_t seed, int S, float cell) {
  v->inv = 1.0f / cell;
  v->gw = (int)(S * v->inv) + 3;
  v->lat = malloc(sizeof(float) * v->gw * v->gw);
  if (!v->lat)
    return -1;
  for (int i = 0; i < v->gw * v->gw; i++)
    v->lat[i] = aert_uniform(seed, (uint64_t)i);
  return 0;
}

static float vn_at(const vnoise *v, float x, float y) {
  float fx = x * v->inv, fy = y * v->inv;
  int ix = (int)fx, iy = (int)fy;
  float tx = fx - ix, ty = fy - iy;
  tx = tx * tx * (3 - 2 * tx), ty = ty * ty * (3 - 2 * ty);
  const float *l = v->lat + iy * v->gw + ix;
  float a = l[0] + (l[1] - l[0]) * tx, b = l[v->gw] + (l[v->gw + 1] - l[v->gw]) * tx;
  return a + (b - a) * ty;
}

/* f += amp * the noise over a whole S x S field, with vn_at's arithmetic; ix, tx: S each. */
static void vn_add(const vnoise *v, int S, float amp, float *f, int *ix, float *tx) {
  for (int x = 0; x < S; x++) {
    float fx = x * v->inv;
    ix[x] = (int)fx, tx[x] = fx - ix[x], tx[x] = tx[x] * tx[x] * (3 - 2 * tx[x]);
  }
  for (int y = 0; y < S; y++) {
    float fy = y * v->inv;
    int iy = (int)fy;
    float ty = fy - iy;
    ty = ty * ty * (3 - 2 * ty);
    const float *l0 = v->lat + iy * v->gw, *l1 = l0 + v->gw;
    float *o = f + (long)y * S;
    for (int x = 0; x < S; x++) {
      const float *p = l0 + ix[x], *q = l1 + ix[x];
      float a = p[0] + (p[1] - p[0]) * tx[x], b = q[0] + (q[1] - q[0]) * tx[x];
      o[x] += amp * (a + (b - a) * ty);
    }
  }
}

/* sin and cos by quadrant and Taylor series: libm's may differ between machines. */
static void sin_cos(float a, float *s, float *c) {
  float q = floorf(a * 0.636619772f + 0.5f), r = a - q * 1.57079633f, r2 = r * r;
  float sr = r * (1 - r2 / 6 * (1 - r2 / 20 * (1 - r2 / 42)));
  float cr = 1 - r2 / 2 * (1 - r2 / 12 * (1 - r2 / 30 * (1 - r2 / 56)));
  switch ((int)(q - 4 * floorf(q * 0.25f))) {
  case 0: *s = sr, *c = cr; break;
  case 1: *s = cr, *c = -sr; break;
  case 2: *s = -sr, *c = -cr; break;
  default: *s = -cr, *c = sr;
  }
}
static float sinp(float a) { float s, c; sin_cos(a, &s, &c); return s; }

/* A path through the scene: heading th0 + kap s + a1 sin(w1 s + p1) + a2 sin(w2 s + p2)
 * at arc length s, through (x0, y0). */
typedef struct { float x0, y0, th0, kap, a1, w1, p1, a2, w2, p2, r, verge; } curve;

static float heading(const curve *c, float s) {
  return c->th0 + c->kap * s + c->a1 * sinp(c->w1 * s + c->p1) + c->a2 * sinp(c->w2 * s + c->p2);
}

/* Points (x, y, s, hx, hy) a pixel apart from (x0, y0) in direction dir until the path
 * leaves the scene (margin m); returns how many (at most max). */
static int walk(const curve *c, int S, float m, int dir, float *pts, int max) {
  float x = c->x0, y = c->y0, s = 0, hx, hy;
  int n = 0;
  for (; n < max && x > -m && y > -m && x < S + m && y < S + m; n++) {
    sin_cos(heading(c, s), &hy, &hx);
    float *p = pts + 5 * n;
    p[0] = x, p[1] = y, p[2] = s, p[3] = hx, p[4] = hy;
    x += dir * hx, y += dir * hy, s += dir;
  }
  return n;
}

/* The whole path in order of s: back from (x0, y0), reversed, then forward. */
static int trace(const curve *c, int S, float m, float *pts, int max) {
  int nb = walk(c, S, m, -1, pts, max / 2);
  for (int i = 0; i < nb / 2; i++)
    for (int k = 0; k < 5; k++) {
      float t = pts[5 * i + k];
      pts[5 * i + k] = pts[5 * (nb - 1 - i) + k], pts[5 * (nb - 1 - i) + k] = t;
    }
  return nb ? nb - 1 + walk(c, S, m, 1, pts + 5 * (nb - 1), max - nb + 1) : 0;
}

typedef struct {
  int S;
  uint64_t seed;
  unsigned char *lab;
  uint16_t *obj;
  float *f, *pts, *tx;         /* a scratch field; path points; vn_add's columns */
  int *ix;
  int maxpts, nroads;
  curve road[MAX_ROADS];
  vnoise fine, crown, mid, dev, illum;
  float sun[4][2];             /* shadow probe offsets, towards the sun */
  float par_c, par_s, par_w, par_h;   /* field parcels: direction and size */
  float water_tint;
  float gain[4], haze[4], ls_gain;   /* the acquisition: NAIP v * gain + haze, Landsat gain */
} scene;

/* Sets pixels of a class in mask within r of (cx, cy) to v. */
static void stamp(scene *sc, float cx, float cy, float r, unsigned mask, int v, int obj) {
  int S = sc->S, x0 = (int)floorf(cx - r), x1 = (int)floorf(cx + r), y0 = (int)floorf(cy - r),
      y1 = (int)floorf(cy + r);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > S - 1) x1 = S - 1;
  if (y1 > S - 1) y1 = S - 1;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
      long p = (long)y * S + x;
      if (dx * dx + dy * dy <= r * r && (mask >> sc->lab[p] & 1)) {
        sc->lab[p] = (unsigned char)v;
        if (obj >= 0)
          sc->obj[p] = (uint16_t)obj;
      }
    }
}

/* Steps between discs stamped along a path: edges stay within r/128 of a line. */
static int stride(float r) { return r < 8 ? 1 : (int)(r / 4); }

/* The field value above which a fraction frac of the scene lies. */
static float quantile_above(const float *f, long n, float frac) {
  enum { B = 2048 };
  long hist[B] = {0};
  float lo = f[0], hi = f[0];
  for (long i = 1; i < n; i++)
    lo = f[i] < lo ? f[i] : lo, hi = f[i] > hi ? f[i] : hi;
  if (hi <= lo)
    return frac > 0.5f ? lo - 1 : hi + 1;
  float k = (B - 1) / (hi - lo);
  for (long i = 0; i < n; i++)
    hist[(int)((f[i] - lo) * k)]++;
  long want = (long)(frac * n), got = 0;
  int b = B - 1;
  for (; b > 0 && got + hist[b] <= want; b--)
    got += hist[b];
  return lo + (b + 1) / k;
}

/* Forest: a fractal noise field thresholded so that a drawn fraction is canopy. */
static int forest(scene *sc, rng *r) {
  static const float cells[] = {150, 70, 32, 14, 5}, amp[] = {1, 0.55f, 0.3f, 0.14f, 0.1f};
  long n = (long)sc->S * sc->S;
  memset(sc->f, 0, sizeof(float) * n);
  for (int o = 0; o < 5; o++) {
    vnoise v;
    if (vn_init(&v, sub(sc->seed, 100 + o), sc->S, cells[o]))
      return -1;
    vn_add(&v, sc->S, amp[o], sc->f, sc->ix, sc->tx);
    free(v.lat);
  }
  float t = quantile_above(sc->f, n, range(r, 0.25f, 0.5f));
  for (long i = 0; i < n; i++)
    if (sc->f[i] > t)
      sc->lab[i] = AERT_LC_TREE;
  return 0;
}

/* Barren patches: noisy ellipses in fields and clearings. */
static void barren(scene *sc, rng *r) {
  int S = sc->S, n = (int)(range(r, 7, 15) * S * S / (512.0f * 512.0f) + 0.5f);
  for (int k = 0; k < n; k++) {
    float cx = range(r, 0, S), cy = range(r, 0, S), rx = range(r, 10, 38), ry = range(r, 8, 26);
    float c, s, rm = rx > ry ? rx : ry;
    sin_cos(range(r, 0, 3.14159f), &s, &c);
    unsigned mask = rnd(r) < 0.5f ? CM(AERT_LC_LOWVEG) : CM(AERT_LC_LOWVEG) | CM(AERT_LC_TREE);
    for (int y = (int)(cy - rm - 4); y <= cy + rm + 4; y++)
      for (int x = (int)(cx - rm - 4); x <= cx + rm + 4; x++) {
        if (x < 0 || y < 0 || x >= S || y >= S)
          continue;
        float dx = x - cx, dy = y - cy, u = (dx * c + dy * s) / rx, v = (dy * c - dx * s) / ry;
        long p = (long)y * S + x;
        if (u * u + v * v + 0.9f * (vn_at(&sc->mid, x, y) - 0.5f) < 1 && (mask >> sc->lab[p] & 1))
          sc->lab[p] = AERT_LC_BARREN, sc->obj[p] = (uint16_t)k;
      }
  }
}

/* Roads: a grid (parallel and perpendicular straight roads) or gently curving country
 * roads, each a few pixels wide with a verge cleared of trees; drawn after the water. */
static void plan_roads(scene *sc, rng *r) {
  int S = sc->S, grid = rnd(r) < 0.5f;
  float th = range(r, 0, 3.14159f), c, s;
  sin_cos(th, &s, &c);
  sc->par_c = c, sc->par_s = s;
  int n = (int)((grid ? range(r, 2, 5) : range(r, 1.5f, 4)) * S / 512 + 0.5f);
  if (n < 1 && rnd(r) < S / 256.0f)
    n = 1;
  if (n > MAX_ROADS)
    n = MAX_ROADS;
  float cx = range(r, 0.25f, 0.75f) * S, cy = range(r, 0.25f, 0.75f) * S;
  float lo[2] = {0, 0}, hi[2] = {0, 0};   /* offsets of the outermost roads each way */
  for (int k = 0; k < n; k++) {
    curve *q = &sc->road[k];
    memset(q, 0, sizeof *q);
    q->r = rnd(r) < 0.15f ? range(r, 5, 7) : range(r, 2.5f, 4);
    if (grid) {   /* alternately along th and across, each set spaced out */
      int d = k & 1;
      float ux = d ? -s : c, uy = d ? c : s, nx = -uy, ny = ux;
      q->th0 = th + d * 1.5708f + range(r, -0.03f, 0.03f);
      float o = k < 2 ? 0 : rnd(r) < 0.5f ? (hi[d] += range(r, 110, 220))
                                          : (lo[d] -= range(r, 110, 220));
      float x = cx + nx * o, y = cy + ny * o, a = (S / 2.0f - x) * ux + (S / 2.0f - y) * uy;
      q->x0 = x + a * ux, q->y0 = y + a * uy;   /* the point nearest the centre */
    } else {
      q->x0 = range(r, 0.1f, 0.9f) * S, q->y0 = range(r, 0.1f, 0.9f) * S;
      q->th0 = range(r, 0, 6.2832f), q->kap = range(r, -0.0015f, 0.0015f);
      q->a1 = range(r, 0, 0.2f), q->w1 = 6.2832f / range(r, 150, 400), q->p1 = range(r, 0, 6.2832f);
    }
    q->verge = q->r + range(r, 1, 5);
  }
  sc->nroads = n;
}

static void draw_roads(scene *sc) {
  for (int k = 0; k < sc->nroads; k++) {
    const curve *q = &sc->road[k];
    int np = trace(q, sc->S, q->r + 6, sc->pts, sc->maxpts);
    for (int i = 0; i < np; i += stride(q->verge))
      stamp(sc, sc->pts[5 * i], sc->pts[5 * i + 1], q->verge, CM(AERT_LC_TREE) | CM(AERT_LC_BARREN),
            AERT_LC_LOWVEG, -1);
    for (int i = 0; i < np; i += stride(q->r))
      stamp(sc, sc->pts[5 * i], sc->pts[5 * i + 1], q->r, ~0u, AERT_LC_ROAD, ROAD_OBJ + k);
  }
}

/* Of a few random points, the one farthest from the roads (a lake is rarely crossed). */
static void away_from_roads(scene *sc, rng *r, float *cx, float *cy) {
  float best = -1;
  for (int k = 0; k < 6; k++) {
    float x = range(r, 0.1f, 0.9f) * sc->S, y = range(r, 0.1f, 0.9f) * sc->S, d = 1e30f;
    for (int j = 0; j < sc->nroads; j++) {
      int np = trace(&sc->road[j], sc->S, 0, sc->pts, sc->maxpts);
      for (int i = 0; i < np; i += 4) {
        float dx = sc->pts[5 * i] - x, dy = sc->pts[5 * i + 1] - y;
        d = dx * dx + dy * dy < d ? dx * dx + dy * dy : d;
      }
    }
    if (d > best)
      best = d, *cx = x, *cy = y;
  }
}

/* Water: a lake (a bump plus noise, thresholded) and/or a meandering river in a band of
 * trees. */
static int water(scene *sc, rng *r) {
  int S = sc->S;
  long n = (long)S * S;
  int lake = rnd(r) < 0.75f, river = !lake || rnd(r) < 0.45f;
  if (lake) {
    vnoise v[2];
    if (vn_init(&v[0], sub(sc->seed, 200), S, 60)) return -1;
    if (vn_init(&v[1], sub(sc->seed, 201), S, 18)) return free(v[0].lat), -1;
    float cx = 0, cy = 0, R = range(r, 60, 160);
    away_from_roads(sc, r, &cx, &cy);
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        float dx = (x - cx) / R, dy = (y - cy) / R, b = 1 - dx * dx - dy * dy;
        sc->f[(long)y * S + x] = b > 0 ? b * b : 0;
      }
    vn_add(&v[0], S, 0.25f, sc->f, sc->ix, sc->tx), vn_add(&v[1], S, 0.12f, sc->f, sc->ix, sc->tx);
    free(v[0].lat), free(v[1].lat);
    float t = quantile_above(sc->f, n, range(r, 0.06f, 0.18f) * (river ? 0.6f : 1));
    for (long i = 0; i < n; i++)
      if (sc->f[i] > t)
        sc->lab[i] = AERT_LC_WATER;
  }
  if (river) {
    curve c = {0};   /* (draws in sequence: an initializer's order is unspecified) */
    c.x0 = range(r, 0.2f, 0.8f) * S, c.y0 = range(r, 0.2f, 0.8f) * S, c.th0 = range(r, 0, 6.2832f);
    c.a1 = range(r, 0.4f, 0.9f), c.w1 = 6.2832f / range(r, 70, 160), c.p1 = range(r, 0, 6.2832f);
    c.a2 = range(r, 0.1f, 0.3f), c.w2 = 6.2832f / range(r, 25, 50), c.p2 = range(r, 0, 6.2832f);
    c.r = range(r, 6, 14);
    float buf = range(r, 3, 12), wl = 6.2832f / range(r, 80, 200), wp = range(r, 0, 6.2832f);
    int np = trace(&c, S, 2 * c.r + buf, sc->pts, sc->maxpts);
    for (int i = 0, di; i < np; i += di) {
      float *p = sc->pts + 5 * i, rr = c.r * (1 + 0.25f * sinp(wl * p[2] + wp));
      float b = buf * (1 + 0.8f * sinp(0.7f * wl * p[2] + 2 * wp));
      stamp(sc, p[0], p[1], rr + b, CM(AERT_LC_LOWVEG) | CM(AERT_LC_BARREN), AERT_LC_TREE, -1);
      di = stride(rr + b);
    }
    for (int i = 0, di; i < np; i += di) {
      float *p = sc->pts + 5 * i, rr = c.r * (1 + 0.25f * sinp(wl * p[2] + wp));
      stamp(sc, p[0], p[1], rr, ~0u, AERT_LC_WATER, -1);
      di = stride(rr);
    }
  }
  return 0;
}

/* Tries one building: a rectangle centred at (cx, cy) with axes u (along the road) and v
 * (away from it), half sizes a, b, kept clear of roads, water and other buildings; a lawn
 * around it, and a driveway to the road at distance `back` behind it. */
static int building(scene *sc, rng *r, int id, float cx, float cy, float ux, float uy, float a,
                    float b, float back) {
  int S = sc->S, m = 2, yard = (int)range(r, 2, 7), drive = rnd(r) < 0.5f;
  float vx = -uy, vy = ux, R = a + b + yard + back + 2, doff = range(r, -a + 2, a - 2);
  int x0 = (int)(cx - R), x1 = (int)(cx + R), y0 = (int)(cy - R), y1 = (int)(cy + R);
  x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0, x1 = x1 >= S ? S - 1 : x1, y1 = y1 >= S ? S - 1 : y1;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      float dx = x + 0.5f - cx, dy = y + 0.5f - cy, du = dx * ux + dy * uy, dv = dx * vx + dy * vy;
      int l = sc->lab[(long)y * S + x];
      if (du > -a - m && du < a + m && dv > -b - m && dv < b + m &&
          (l == AERT_LC_ROAD || l == AERT_LC_WATER || l == AERT_LC_IMPERVIOUS))
        return 0;
    }
  int ridge_u = a > b;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      float dx = x + 0.5f - cx, dy = y + 0.5f - cy, du = dx * ux + dy * uy, dv = dx * vx + dy * vy;
      long p = (long)y * S + x;
      if (du > -a && du < a && dv > -b && dv < b) {
        sc->lab[p] = AERT_LC_IMPERVIOUS;
        sc->obj[p] = (uint16_t)(2 + 2 * id + (ridge_u ? dv > 0 : du > 0));
      } else if (drive && du > doff - 1.6f && du < doff + 1.6f && dv < 0 && dv > -b - back &&
                 sc->lab[p] != AERT_LC_ROAD && sc->lab[p] != AERT_LC_WATER) {
        sc->lab[p] = AERT_LC_IMPERVIOUS, sc->obj[p] = OBJ_PAVE;
      } else if (sc->lab[p] == AERT_LC_TREE && du > -a - yard && du < a + yard &&
                 dv > -b - yard && dv < b + yard) {
        sc->lab[p] = AERT_LC_LOWVEG;
      }
    }
  return 1;
}

/* Houses along both sides of each road where the development noise is high. */
static void houses(scene *sc, rng *r) {
  int S = sc->S, id = 0;
  float dens = range(r, 0.5f, 1);
  for (int k = 0; k < sc->nroads; k++) {
    curve *q = &sc->road[k];
    int np = trace(q, S, q->r + 6, sc->pts, sc->maxpts);
    for (float i = range(r, 0, 10); i < np; i += range(r, 14, 24))
      for (int side = -1; side <= 1; side += 2) {
        float *p = sc->pts + 5 * (int)i;
        if (p[0] < 0 || p[1] < 0 || p[0] >= S || p[1] >= S)
          continue;
        float d = vn_at(&sc->dev, p[0], p[1]), want = dens * (d - 0.25f) * 3;
        if (rnd(r) >= want)
          continue;
        int big = rnd(r) < 0.08f;
        float a = big ? range(r, 10, 20) : range(r, 4, 8);
        float b = big ? range(r, 8, 14) : range(r, 3.5f, 6.5f);
        float back = range(r, 3, 10), j = range(r, -0.06f, 0.06f);
        float ux = p[3] - j * p[4], uy = p[4] + j * p[3], l = sqrtf(ux * ux + uy * uy);
        ux /= l, uy /= l;
        float nx = -p[4] * side, ny = p[3] * side, o = q->r + back + b;
        /* v axis points away from the road */
        if (building(sc, r, id, p[0] + nx * o, p[1] + ny * o, side > 0 ? ux : -ux,
                     side > 0 ? uy : -uy, a, b, back))
          id++;
        if (id > 16000)
          return;
      }
  }
}

/* Single trees in fields and yards. */
static void trees(scene *sc, rng *r) {
  int S = sc->S, n = (int)(range(r, 20, 90) * S * S / (512.0f * 512.0f));
  for (int k = 0; k < n; k++) {
    float x = range(r, 0, S), y = range(r, 0, S), rad = range(r, 1.5f, 4.5f);
    stamp(sc, x, y, rad, CM(AERT_LC_LOWVEG), AERT_LC_TREE, -1);
  }
}

/* No data beyond a straight cut near one edge (a tile cut at a state boundary). */
static void nodata(scene *sc, rng *r) {
  if (rnd(r) >= 0.3f)
    return;
  int S = sc->S, e = (int)(rnd(r) * 4);
  float d0 = range(r, -0.1f, 0.3f) * S, d1 = range(r, 0.03f, 0.3f) * S;
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      float t = (e & 1 ? y : x) / (float)S;
      int d = e == 0 ? y : e == 1 ? x : e == 2 ? S - 1 - y : S - 1 - x;   /* from edge e */
      if (d < d0 + (d1 - d0) * t)
        sc->lab[(long)y * S + x] = AERT_LC_NODATA;
    }
}

/* Mean colours: NAIP R, G, B, NIR (0..255) and Landsat reflectances, overlapping between
 * classes (dry fields and bare soil, dark roofs and asphalt, gravel and concrete). */
enum { C_WATER, C_TURBID, C_TREE, C_CONIFER, C_GRASS, C_LAWN, C_CROP, C_DRY, C_TAN, C_BARREN,
       C_SOIL, C_SAND, C_GRAVEL, C_ROAD, C_CONCRETE, C_PAVE };
static const float naip_c[][4] = {
    {26, 38, 54, 16},     {46, 56, 54, 36},     {58, 80, 62, 160},    {40, 60, 52, 115},
    {100, 132, 86, 182},  {72, 108, 66, 170},   {86, 138, 78, 200},   {148, 146, 108, 165},
    {178, 162, 112, 160}, {172, 150, 124, 140}, {132, 110, 90, 112},  {196, 182, 150, 168},
    {146, 142, 134, 122}, {88, 88, 90, 76},     {156, 154, 146, 128}, {162, 160, 152, 132},
};
static const float ls_c[][NL] = {
    {.045f, .038f, .030f, .018f, .012f, .006f, .004f, .30f, .31f},
    {.060f, .055f, .060f, .045f, .040f, .015f, .010f, .31f, .32f},
    {.030f, .030f, .055f, .030f, .340f, .160f, .070f, .42f, .43f},
    {.025f, .025f, .045f, .025f, .250f, .120f, .050f, .41f, .42f},
    {.040f, .045f, .085f, .060f, .350f, .220f, .120f, .50f, .51f},
    {.035f, .040f, .080f, .045f, .330f, .190f, .090f, .47f, .48f},
    {.035f, .040f, .090f, .050f, .400f, .200f, .100f, .48f, .49f},
    {.055f, .065f, .100f, .100f, .300f, .280f, .180f, .56f, .57f},
    {.070f, .085f, .120f, .150f, .280f, .320f, .240f, .62f, .63f},
    {.090f, .110f, .150f, .190f, .260f, .330f, .270f, .70f, .70f},
    {.070f, .085f, .110f, .140f, .200f, .280f, .240f, .68f, .69f},
    {.120f, .140f, .190f, .230f, .300f, .380f, .320f, .72f, .72f},
    {.100f, .110f, .130f, .140f, .180f, .220f, .200f, .70f, .70f},
    {.080f, .085f, .095f, .100f, .120f, .140f, .130f, .80f, .79f},
    {.140f, .150f, .165f, .175f, .200f, .230f, .200f, .75f, .74f},
    {.150f, .160f, .175f, .185f, .210f, .240f, .210f, .74f, .73f},
};
/* Roof colours (R, G, B, NIR) and the factor applied to the light-grey Landsat roof. */
static const float roofs[][5] = {
    {130, 130, 132, 110, 0.75f}, {80, 82, 88, 66, 0.5f},     {150, 88, 74, 102, 0.7f},
    {178, 178, 174, 140, 1.0f},  {108, 118, 134, 96, 0.65f}, {205, 205, 200, 160, 1.2f},
    {96, 96, 98, 80, 0.55f},     {140, 116, 96, 108, 0.7f},
};

static float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* The colour of pixel (x, y) before shadow, illumination and noise: a blend of two rows
 * of the tables (ka -> kb by t) times a brightness (g for NAIP, gl for Landsat). */
static void colour(const scene *sc, int x, int y, float nc[4], float lc[NL]) {
  long p = (long)y * sc->S + x;
  int l = sc->lab[p], o = sc->obj[p], ka, kb = -1;
  float t = 0, g = 1, gl = 1;
  const float *roof = NULL;
  switch (l) {
  case AERT_LC_WATER:
    ka = C_WATER, kb = C_TURBID, t = clamp01(sc->water_tint + 0.5f * vn_at(&sc->mid, x * 0.1f, y * 0.1f) - 0.25f);
    g = 0.92f + 0.16f * vn_at(&sc->mid, x * 0.3f, y * 0.3f) + 0.05f * vn_at(&sc->fine, x, y);
    break;
  case AERT_LC_TREE: {   /* crowns; stands of broadleaf and conifer */
    float cr = vn_at(&sc->crown, x, y), m = vn_at(&sc->mid, x, y);
    ka = C_TREE, kb = C_CONIFER, t = clamp01(3 * vn_at(&sc->mid, x * 0.08f, y * 0.08f) - 1.4f);
    g = 0.55f + 0.75f * cr * cr + 0.25f * m, gl = 0.95f + 0.1f * m;
    break;
  }
  case AERT_LC_LOWVEG: {   /* parcels along the road grid, each a crop or grass */
    int S = sc->S;
    float u = x * sc->par_c + y * sc->par_s + 4 * S, v = y * sc->par_c - x * sc->par_s + 4 * S;
    uint64_t iv = (uint64_t)(v / sc->par_h);
    float su = u + aert_uniform(sc->seed ^ 77, iv) * sc->par_w;
    uint64_t cell = iv * 7919u + (uint64_t)(su / sc->par_w);
    float h = aert_uniform(sc->seed ^ 78, cell);
    ka = h < 0.3f ? C_GRASS : h < 0.4f ? C_LAWN : h < 0.65f ? C_CROP : h < 0.88f ? C_DRY : C_TAN;
    kb = C_GRASS, t = 0.35f * vn_at(&sc->mid, x * 0.25f, y * 0.25f);
    g = 0.88f + 0.24f * aert_uniform(sc->seed ^ 79, cell) + 0.12f * vn_at(&sc->fine, x, y);
    if (ka == C_CROP || ka == C_DRY) {   /* rows */
      float w = su * 0.4f - floorf(su * 0.4f);
      g *= 0.95f + 0.2f * (w < 0.5f ? w : 1 - w);
    }
    break;
  }
  case AERT_LC_BARREN: {   /* per patch: soil, sand or gravel */
    float h = aert_uniform(sc->seed ^ 84, (uint64_t)o);
    ka = h < 0.45f ? C_BARREN : h < 0.7f ? C_SAND : C_GRAVEL, kb = C_SOIL;
    t = 0.7f * vn_at(&sc->mid, x * 0.5f, y * 0.5f);
    g = 0.85f + 0.3f * vn_at(&sc->fine, x, y);
    break;
  }
  case AERT_LC_ROAD: {   /* per road: asphalt old or new, or concrete */
    float h = aert_uniform(sc->seed ^ 80, (uint64_t)o);
    ka = h < 0.12f ? C_CONCRETE : C_ROAD;
    g = gl = (h < 0.12f ? 1 : 0.7f + 0.55f * h) + 0.08f * vn_at(&sc->fine, x, y);
    break;
  }
  default:   /* impervious: a driveway or a roof, one side of the ridge shaded */
    ka = C_PAVE, g = 0.9f + 0.1f * vn_at(&sc->fine, x, y);
    if (o != OBJ_PAVE) {
      roof = roofs[(int)(aert_uniform(sc->seed ^ 81, (uint64_t)(o >> 1)) * 8)], gl = roof[4];
      g = (0.92f + 0.16f * aert_uniform(sc->seed ^ 82, (uint64_t)(o >> 1))) * (o & 1 ? 0.86f : 1) +
          0.05f * vn_at(&sc->fine, x, y);
    }
  }
  const float *na = roof ? roof : naip_c[ka], *nb = kb >= 0 ? naip_c[kb] : na;
  const float *la = ls_c[ka], *lb = kb >= 0 ? ls_c[kb] : la;
  for (int c = 0; c < 4; c++)
    nc[c] = g * (na[c] + (nb[c] - na[c]) * t);
  for (int c = 0; c < NL; c++)
    lc[c] = (la[c] + (lb[c] - la[c]) * t) * (c < 7 ? gl : 1);
}

/* Box blur of radius R (edges repeated) of an S x S image of NL channels, src -> dst, along
 * rows (dir 0) or columns (dir 1); acc holds S * NL running sums, updated in place. */
static void box_blur(const float *src, float *dst, int S, int R, int dir, double *acc) {
  long row = (long)S * NL, n = dir ? row : NL;   /* sums kept side by side */
  long step = dir ? row : NL, line = dir ? 0 : row;
  float inv = 1.0f / (2 * R + 1);
  for (int j = 0; j < (dir ? 1 : S); j++) {
    const float *s = src + j * line;
    float *d = dst + j * line;
    memset(acc, 0, sizeof(double) * n);
    for (int k = -R; k <= R; k++) {
      const float *v = s + (k < 0 ? 0 : k >= S ? S - 1 : k) * step;
      for (long c = 0; c < n; c++)
        acc[c] += v[c];
    }
    for (int i = 0; i < S; i++) {
      int add = i + R + 1, del = i - R;
      const float *va = s + (add >= S ? S - 1 : add) * step, *vd = s + (del < 0 ? 0 : del) * step;
      float *o = d + i * step;
      for (long c = 0; c < n; c++)
        o[c] = (float)acc[c] * inv, acc[c] += va[c] - vd[c];
    }
  }
}

/* Shadow probe: a pixel is shaded when a tree or building lies towards the sun. */
static float shade(const scene *sc, int x, int y) {
  int S = sc->S, l = sc->lab[(long)y * S + x];
  for (int k = 0; k < 4; k++) {
    int sx = x + (int)sc->sun[k][0], sy = y + (int)sc->sun[k][1];
    if (sx < 0 || sy < 0 || sx >= S || sy >= S)
      continue;
    long q = (long)sy * S + sx;
    int m = sc->lab[q];
    if (m == AERT_LC_IMPERVIOUS && sc->obj[q] >= 2 && l != AERT_LC_IMPERVIOUS)
      return 0.55f;
    if (m == AERT_LC_TREE && l != AERT_LC_TREE && k < 3)
      return 0.6f;
  }
  return 1;
}

static void image(scene *sc, unsigned char *naip, float *ls, float *tmp, double *acc) {
  int S = sc->S;
  uint64_t sn = sub(sc->seed, 300);
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      long p = (long)y * S + x;
      float nc[4], lc[NL];
      if (sc->lab[p] == AERT_LC_NODATA) {
        if (naip) memset(naip + 4 * p, 0, 4);
        if (ls) memset(ls + NL * p, 0, sizeof(float) * NL);
        continue;
      }
      colour(sc, x, y, nc, lc);
      float il = 0.88f + 0.24f * vn_at(&sc->illum, x, y), sh = shade(sc, x, y);
      uint64_t h = aert_hash64(sn + (uint64_t)p);
      if (naip)
        for (int c = 0; c < 4; c++) {
          int tri = (int)(h >> (16 * c) & 255) + (int)(h >> (16 * c + 8) & 255) - 255;
          float noise = tri * (20.0f / 255);   /* triangular, +-20 */
          float v = nc[c] * il * (c < 3 ? sh : 0.5f + 0.5f * sh) * sc->gain[c] + sc->haze[c] + noise;
          naip[4 * p + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : (int)(v + 0.5f));
        }
      if (ls) {   /* its own haze (the illumination field transposed), shadows weaker */
        float hz = (0.94f + 0.12f * vn_at(&sc->illum, y, x)) * (0.8f + 0.2f * sh) * sc->ls_gain;
        for (int c = 0; c < NL; c++)
          ls[NL * p + c] = lc[c] * (c < 7 ? hz : 0.97f + 0.03f * sh);
      }
    }
  if (!ls)
    return;
  for (int pass = 0; pass < 2; pass++)
    box_blur(ls, tmp, S, 7, 0, acc), box_blur(tmp, ls, S, 7, 1, acc);
  for (long p = 0; p < (long)S * S; p++)
    for (int c = 0; c < NL; c++) {
      float v = ls[NL * p + c];
      ls[NL * p + c] = sc->lab[p] == AERT_LC_NODATA ? 0 : v < 0 ? 0 : v > 1 ? 1 : v;
    }
}

void aert_synth_scene(uint64_t seed, int size, unsigned char *labels, unsigned char *naip,
                      float *landsat) {
  if (size <= 0)
    return;
  scene sc = {.S = size, .seed = aert_hash64(seed ^ 0x5eedc0ffee), .maxpts = 16 * size + 64};
  long n = (long)size * size;
  rng r = {sub(sc.seed, 1), 0};
  sc.lab = labels ? labels : malloc(n);
  sc.obj = calloc(n, sizeof(uint16_t));
  sc.f = malloc(sizeof(float) * n);
  sc.pts = malloc(sizeof(float) * 5 * sc.maxpts);
  sc.ix = malloc(sizeof(int) * size), sc.tx = malloc(sizeof(float) * size);
  float *tmp = landsat ? malloc(sizeof(float) * NL * n) : NULL;
  double *acc = landsat ? malloc(sizeof(double) * NL * size) : NULL;
  int ok = sc.lab && sc.obj && sc.f && sc.pts && sc.ix && sc.tx && (!landsat || (tmp && acc)) &&
           !vn_init(&sc.fine, sub(sc.seed, 10), size, 2.5f) &&
           !vn_init(&sc.crown, sub(sc.seed, 11), size, 3.2f) &&
           !vn_init(&sc.mid, sub(sc.seed, 12), size, 9) &&
           !vn_init(&sc.dev, sub(sc.seed, 13), size, 180) &&
           !vn_init(&sc.illum, sub(sc.seed, 14), size, 220);
  if (ok) {
    memset(sc.lab, AERT_LC_LOWVEG, n);
    float sx, sy;
    sin_cos(range(&r, 0.2f, 1.4f), &sy, &sx);
    for (int k = 0; k < 4; k++)
      sc.sun[k][0] = (k + 1) * sx * 1.2f + 0.5f, sc.sun[k][1] = (k + 1) * sy * 1.2f + 0.5f;
    sc.par_w = range(&r, 60, 160), sc.par_h = range(&r, 40, 120);
    sc.water_tint = rnd(&r), sc.water_tint *= sc.water_tint;   /* mostly clear */
    float gain = range(&r, 0.8f, 1.2f), haze = range(&r, 0, 20);
    for (int c = 0; c < 4; c++)
      sc.gain[c] = gain * range(&r, 0.92f, 1.08f), sc.haze[c] = haze * (c == 3 ? 0.3f : 1 - 0.2f * c);
    sc.ls_gain = range(&r, 0.92f, 1.08f);
    plan_roads(&sc, &r);
    ok = !forest(&sc, &r);
    barren(&sc, &r);
    ok = ok && !water(&sc, &r);
    if (ok) {
      draw_roads(&sc);
      houses(&sc, &r);
      trees(&sc, &r);
      nodata(&sc, &r);
      if (naip || landsat)
        image(&sc, naip, landsat, tmp, acc);
    }
  }
  if (!ok) {   /* out of memory: an empty scene */
    aert_error("out of memory drawing a %dx%d scene", size, size);
    if (labels) memset(labels, AERT_LC_NODATA, n);
    if (naip) memset(naip, 0, 4 * n);
    if (landsat) memset(landsat, 0, sizeof(float) * NL * n);
  }
  free(sc.fine.lat), free(sc.crown.lat), free(sc.mid.lat), free(sc.dev.lat), free(sc.illum.lat);
  if (!labels) free(sc.lab);
  free(sc.obj), free(sc.f), free(sc.pts), free(sc.ix), free(sc.tx), free(tmp), free(acc);
}

/* ---- writing a synthetic data set as GeoTIFF tiles ------------------------------------ */
/* GeoKeys of NAD83 / UTM zone 18N (EPSG:26918), the projection of the Chesapeake tiles:
 * projected model, pixels as areas, metres. */
static const uint16_t utm18n_keys[] = {1, 1, 0, 4,  1024, 0, 1, 1,  1025, 0, 1, 1,
                                       3072, 0, 1, 26918,  3076, 0, 1, 9001};

static const char *const synth_layers[] = {"naip-new", "naip-old", "landsat-leaf-on", "landsat-leaf-off"};

static int synth_layer_ok(const char *layer) {
  const char *colon = strchr(layer, ':');
  size_t n = colon ? (size_t)(colon - layer) : strlen(layer);
  for (int i = 0; i < 4; i++)
    if (n == strlen(synth_layers[i]) && !strncmp(layer, synth_layers[i], n))
      return 1;
  return 0;
}

/* The older NAIP flight: the same ground under other light (a gain and offset per band)
 * with its own noise. */
static void older_flight(uint64_t seed, long px, unsigned char *naip) {
  float gain[4], off[4];
  for (int c = 0; c < 4; c++)
    gain[c] = 0.8f + 0.3f * aert_uniform(seed, (uint64_t)c), off[c] = 20 * aert_uniform(seed, 4 + (uint64_t)c) - 10;
  for (long i = 0; i < px; i++)
    for (int c = 0; c < 4; c++) {
      if (!naip[i * 4] && !naip[i * 4 + 1] && !naip[i * 4 + 2] && !naip[i * 4 + 3])
        break;   /* no data stays 0 */
      float v = naip[i * 4 + c] * gain[c] + off[c] + 8 * (aert_uniform(seed, 8 + (uint64_t)(i * 4 + c)) - 0.5f);
      naip[i * 4 + c] = (unsigned char)(v < 1 ? 1 : v > 255 ? 255 : v + 0.5f);
    }
}

/* Landsat without leaves: canopy loses most of its near-infrared and shows soil. */
static void leaf_off(long px, const unsigned char *lab, float *ls) {
  for (long i = 0; i < px; i++) {
    float *b = ls + i * 9;
    if (lab[i] == AERT_LC_TREE)
      b[4] *= 0.55f, b[1] += 0.02f, b[2] += 0.02f, b[3] += 0.03f;
    else if (lab[i] == AERT_LC_LOWVEG)
      b[4] *= 0.8f, b[3] += 0.02f;
  }
}

/* Tile k of a split: its five files, georeferenced side by side along a row of tiles, in
 * several layouts (tiled, strips, planar; deflate and LZW). */
static int write_tile(const char *dir, int split, int k, int size, uint64_t seed,
                      unsigned char *lab, unsigned char *naip, float *ls) {
  char path[4400];
  long px = (long)size * size;
  aert_synth_scene(seed, size, lab, naip, ls);
  aert_georef g = {.has_tiepoint = 1, .has_scale = 1, .n_keys = (int)(sizeof utm18n_keys / 2),
                   .keys = (uint16_t *)utm18n_keys};
  g.tiepoint[3] = 400000.0 + (double)k * size;              /* easting of the top-left corner */
  g.tiepoint[4] = 4300000.0 - 100000.0 * split;             /* northing: one row per split */
  g.scale[0] = g.scale[1] = 1.0;
  /* the images say where they have no data (0 in every band), as GDAL-made tiles do */
  aert_tiff_layout tiled = {.tile = 128, .nodata = "0"},
                   planar = {.planar = 1, .rows_per_strip = 32, .nodata = "0"},
                   lzw = {.compression = 5 /* COMPRESSION_LZW */, .rows_per_strip = 64, .nodata = "0"};
  snprintf(path, sizeof path, "%s/synth_%03d_naip-new.tif", dir, k);
  int rc = aert_tiff_write(path, size, size, 4, AERT_PIX_U8, naip, &g, &tiled);
  snprintf(path, sizeof path, "%s/synth_%03d_landsat-leaf-on.tif", dir, k);
  if (rc == 0)
    rc = aert_tiff_write(path, size, size, 9, AERT_PIX_F32, ls, &g, &planar);
  snprintf(path, sizeof path, "%s/synth_%03d_lc.tif", dir, k);
  if (rc == 0)
    rc = aert_tiff_write(path, size, size, 1, AERT_PIX_U8, lab, &g, NULL);
  older_flight(aert_hash64(seed ^ 0x6f6c64ULL), px, naip);
  leaf_off(px, lab, ls);
  snprintf(path, sizeof path, "%s/synth_%03d_naip-old.tif", dir, k);
  if (rc == 0)
    rc = aert_tiff_write(path, size, size, 4, AERT_PIX_U8, naip, &g, &lzw);
  snprintf(path, sizeof path, "%s/synth_%03d_landsat-leaf-off.tif", dir, k);
  if (rc == 0)
    rc = aert_tiff_write(path, size, size, 9, AERT_PIX_F32, ls, &g, &planar);
  return rc;
}

/* train/ gets the spec's tiles, test/ a quarter as many (at least 2); each split is written
 * into a temporary folder and renamed into place, so an interrupted run leaves none. */
int aert_synth_write_split(const aert_model *m, const char *dir) {
  const aert_data *d = &m->data;
  int size = d->tile_size ? d->tile_size : 512, tiles = d->tiles ? d->tiles : 12;
  for (int i = 0; i < d->n_layers; i++)
    if (!synth_layer_ok(d->layers[i]))
      return aert_error("synthetic_landcover writes the layers naip-new and naip-old (4 bands: R, G, "
                        "B, NIR), landsat-leaf-on and landsat-leaf-off (9 bands); the spec asks for "
                        "'%s'", d->layers[i]), -1;
  if (d->label_layer && strcmp(d->label_layer, "lc"))
    return aert_error("synthetic_landcover writes its labels as layer \"lc\", not \"%s\"", d->label_layer), -1;
  long px = (long)size * size;
  unsigned char *lab = aert_alloc((size_t)px, "synthetic tile"), *naip = aert_alloc((size_t)px * 4, "synthetic tile");
  float *ls = aert_alloc(sizeof(float) * px * 9, "synthetic tile");
  int rc = lab && naip && ls && aert_mkdir_p(dir) == 0 ? 0 : -1;
  for (int s = 0; s < 2 && rc == 0; s++) {
    const char *split = s == 0 ? (d->train_images ? d->train_images : "train")
                               : (d->test_images ? d->test_images : "test");
    int n = s == 0 ? tiles : (tiles / 4 > 2 ? tiles / 4 : 2);
    char final[4096], tmp[4200];
    snprintf(final, sizeof final, "%s/%s", dir, split);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", final, (long)getpid());
    if (access(final, F_OK) == 0)
      continue;
    printf("writing %d synthetic %dx%d tiles to '%s'\n", n, size, size, final);
    fflush(stdout);
    rc = aert_mkdir_p(tmp);
    for (int k = 0; k < n && rc == 0; k++)
      rc = write_tile(tmp, s, k, size, aert_hash64(0x73796e7468ULL + (uint64_t)s * 1000003 + (uint64_t)k), lab, naip, ls);
    if (rc == 0 && rename(tmp, final) != 0)
      rc = (aert_error("cannot rename '%s' to '%s': %s", tmp, final, strerror(errno)), -1);
  }
  free(lab);
  free(naip);
  free(ls);
  return rc;
}
