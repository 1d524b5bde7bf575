/* The JSON reader (a small recursive parser with a depth limit: requests are at most 64 KiB) and writer helpers,
 * plus the growable buffer everything else uses. */
#include "agent.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) { fputs("hangar-agent: out of memory\n", stderr); abort(); }
  return q;
}

void buf_add(struct buf *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
}
void buf_addc(struct buf *b, char c) { buf_add(b, &c, 1); }
void buf_printf(struct buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) { buf_add(b, tmp, (size_t)n); return; }
  char *big = xrealloc(NULL, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  buf_add(b, big, (size_t)n);
  free(big);
}
void buf_consume(struct buf *b, size_t n) {
  if (n >= b->len) { b->len = 0; return; }
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}
void buf_free(struct buf *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }

/* ---- parser */
struct P { const char *s, *e; int depth; };

static void ws(struct P *p) { while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++; }

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static void utf8(struct buf *b, unsigned cp) {
  if (cp < 0x80) buf_addc(b, (char)cp);
  else if (cp < 0x800) { buf_addc(b, (char)(0xc0 | (cp >> 6))); buf_addc(b, (char)(0x80 | (cp & 0x3f))); }
  else if (cp < 0x10000) { buf_addc(b, (char)(0xe0 | (cp >> 12))); buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f))); buf_addc(b, (char)(0x80 | (cp & 0x3f))); }
  else { buf_addc(b, (char)(0xf0 | (cp >> 18))); buf_addc(b, (char)(0x80 | ((cp >> 12) & 0x3f))); buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f))); buf_addc(b, (char)(0x80 | (cp & 0x3f))); }
}

static int pstr(struct P *p, char **out, size_t *len) {
  if (p->s >= p->e || *p->s != '"') return -1;
  p->s++;
  struct buf b = {0};
  while (p->s < p->e && *p->s != '"') {
    char c = *p->s++;
    if ((unsigned char)c < 0x20) goto bad;
    if (c != '\\') { buf_addc(&b, c); continue; }
    if (p->s >= p->e) goto bad;
    c = *p->s++;
    switch (c) {
      case '"': case '\\': case '/': buf_addc(&b, c); break;
      case 'b': buf_addc(&b, '\b'); break;
      case 'f': buf_addc(&b, '\f'); break;
      case 'n': buf_addc(&b, '\n'); break;
      case 'r': buf_addc(&b, '\r'); break;
      case 't': buf_addc(&b, '\t'); break;
      case 'u': {
        unsigned cp;
        if (p->e - p->s < 4 || hex4(p->s, &cp)) goto bad;
        p->s += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && p->e - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
          unsigned lo;
          if (!hex4(p->s + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) { p->s += 6; cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00); }
        }
        if (cp == 0) goto bad; /* no NUL inside C strings */
        utf8(&b, cp);
        break;
      }
      default: goto bad;
    }
  }
  if (p->s >= p->e) goto bad;
  p->s++;
  buf_addc(&b, 0);
  *out = b.p;
  *len = b.len - 1;
  return 0;
bad:
  buf_free(&b);
  return -1;
}

static int pval(struct P *p, struct jv *v);

static int plist(struct P *p, struct jv *v, int obj) {
  char close = obj ? '}' : ']';
  size_t cap = 0;
  p->s++;
  ws(p);
  if (p->s < p->e && *p->s == close) { p->s++; return 0; }
  for (;;) {
    if (v->len == cap) {
      cap = cap ? cap * 2 : 4;
      v->kids = xrealloc(v->kids, cap * sizeof *v->kids);
      if (obj) v->keys = xrealloc(v->keys, cap * sizeof *v->keys);
    }
    struct jv *k = &v->kids[v->len];
    memset(k, 0, sizeof *k);
    if (obj) {
      size_t kl;
      ws(p);
      v->keys[v->len] = NULL;
      if (pstr(p, &v->keys[v->len], &kl)) { v->len++; return -1; }
      ws(p);
      if (p->s >= p->e || *p->s != ':') { v->len++; return -1; }
      p->s++;
    }
    v->len++;
    if (pval(p, k)) return -1;
    ws(p);
    if (p->s >= p->e) return -1;
    if (*p->s == ',') { p->s++; continue; }
    if (*p->s == close) { p->s++; return 0; }
    return -1;
  }
}

static int pval(struct P *p, struct jv *v) {
  ws(p);
  if (p->s >= p->e) return -1;
  char c = *p->s;
  if (c == '{' || c == '[') {
    if (++p->depth > 32) return -1;
    v->t = c == '{' ? J_OBJ : J_ARR;
    int r = plist(p, v, c == '{');
    p->depth--;
    return r;
  }
  if (c == '"') { v->t = J_STR; return pstr(p, &v->s, &v->len); }
  if (p->e - p->s >= 4 && !memcmp(p->s, "true", 4)) { v->t = J_BOOL; v->n = 1; p->s += 4; return 0; }
  if (p->e - p->s >= 5 && !memcmp(p->s, "false", 5)) { v->t = J_BOOL; v->n = 0; p->s += 5; return 0; }
  if (p->e - p->s >= 4 && !memcmp(p->s, "null", 4)) { v->t = J_NULL; p->s += 4; return 0; }
  if (c == '-' || (c >= '0' && c <= '9')) {
    char tmp[64];
    size_t n = 0;
    while (p->s + n < p->e && n < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[n])) n++;
    memcpy(tmp, p->s, n);
    tmp[n] = 0;
    char *end;
    v->t = J_NUM;
    v->n = strtod(tmp, &end);
    if (end != tmp + n) return -1;
    p->s += n;
    return 0;
  }
  return -1;
}

static void jfree_kids(struct jv *v) {
  for (size_t i = 0; i < v->len && (v->t == J_ARR || v->t == J_OBJ); i++) {
    jfree_kids(&v->kids[i]);
    if (v->t == J_OBJ) free(v->keys[i]);
  }
  if (v->t == J_ARR || v->t == J_OBJ) { free(v->kids); free(v->keys); }
  if (v->t == J_STR) free(v->s);
}

void json_free(struct jv *v) { if (v) { jfree_kids(v); free(v); } }

struct jv *json_parse(const char *s, size_t n) {
  struct P p = { s, s + n, 0 };
  struct jv *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  if (pval(&p, v)) { json_free(v); return NULL; }
  ws(&p);
  if (p.s != p.e) { json_free(v); return NULL; }
  return v;
}

const struct jv *jget(const struct jv *o, const char *key) {
  if (!o || o->t != J_OBJ) return NULL;
  for (size_t i = 0; i < o->len; i++) if (o->keys[i] && !strcmp(o->keys[i], key)) return &o->kids[i];
  return NULL;
}
const char *jstr(const struct jv *o, const char *key) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_STR ? v->s : NULL;
}
int jhas(const struct jv *o, const char *key) { const struct jv *v = jget(o, key); return v && v->t != J_NULL; }
double jnum(const struct jv *o, const char *key, double def) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_NUM ? v->n : def;
}
int jbool(const struct jv *o, const char *key, int def) {
  const struct jv *v = jget(o, key);
  return v && v->t == J_BOOL ? (int)v->n : def;
}

void jesc_n(struct buf *b, const char *s, size_t n) {
  buf_addc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { buf_addc(b, '\\'); buf_addc(b, (char)c); }
    else if (c < 0x20 || c == 0x7f) buf_printf(b, "\\u%04x", c);
    else if (c >= 0x80) {
      /* pass valid UTF-8 through; replace invalid bytes with U+FFFD */
      int len = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
      int ok = len && i + (size_t)len <= n;
      for (int k = 1; ok && k < len; k++) if (((unsigned char)s[i + (size_t)k] & 0xc0) != 0x80) ok = 0;
      if (ok) { buf_add(b, s + i, (size_t)len); i += (size_t)len - 1; }
      else buf_add(b, "\xef\xbf\xbd", 3);
    } else buf_addc(b, (char)c);
  }
  buf_addc(b, '"');
}
void jesc(struct buf *b, const char *s) { jesc_n(b, s ? s : "", s ? strlen(s) : 0); }
