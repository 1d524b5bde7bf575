/* Frames and sessions: the magic and resynchronisation, HELLO/HELLO_OK, decoding frames from a connection's
 * input, encoding frames into its output buffer, streams (their windows), and dispatching requests to the ops. */
#include "agent.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char MAGIC[18] = "\0\0\0\0HANGAR-AGENT1\n";
struct stream *streams;

static void put32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v; }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

void conn_send(struct conn *c, int type, uint32_t sid, const void *p, size_t n) {
  if (c->state != 2 && type != FT_HELLO_OK) return;
  unsigned char h[9];
  put32(h, (uint32_t)(n + 5));
  h[4] = (unsigned char)type;
  put32(h + 5, sid);
  buf_add(&c->out, h, 9);
  buf_add(&c->out, p, n);
}

int conn_can_send(const struct conn *c) { return c->state == 2 && c->out.len < OUT_HIGH; }

void send_ok_c(struct conn *c, uint32_t sid, const char *json) { conn_send(c, FT_OK, sid, json, strlen(json)); }
void send_ok(struct stream *s, const char *json) { send_ok_c(s->c, s->id, json); }
void send_event(struct stream *s, const char *json) { conn_send(s->c, FT_EVENT, s->id, json, strlen(json)); }

void send_err_c(struct conn *c, uint32_t sid, const char *code, const char *msg) {
  struct buf b = {0};
  buf_add(&b, "{\"code\":", 8);
  jesc(&b, code);
  buf_add(&b, ",\"message\":", 11);
  jesc(&b, msg);
  buf_addc(&b, '}');
  conn_send(c, FT_ERR, sid, b.p, b.len);
  buf_free(&b);
}

const char *errno_code(int e) {
  switch (e) {
    case ENOENT: return "ENOENT"; case EEXIST: return "EEXIST"; case EACCES: return "EACCES"; case EPERM: return "EPERM";
    case ENOTDIR: return "ENOTDIR"; case EISDIR: return "EISDIR"; case ENOTEMPTY: return "ENOTEMPTY"; case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC"; case EROFS: return "EROFS"; case EBUSY: return "EBUSY"; case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT"; case ENAMETOOLONG: return "ENAMETOOLONG"; case ELOOP: return "ELOOP"; case EXDEV: return "EXDEV";
    case ENOEXEC: return "ENOEXEC"; case EMFILE: return "EMFILE"; case ENOMEM: return "ENOMEM"; case EHOSTUNREACH: return "EHOSTUNREACH";
    default: return "EIO";
  }
}

void send_errno(struct conn *c, uint32_t sid, int err, const char *what) {
  char msg[1200];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  send_err_c(c, sid, errno_code(err), msg);
}

/* ---- streams */
static int stream_count(const struct conn *c) {
  int n = 0;
  for (struct stream *s = streams; s; s = s->next) if (s->c == c && !s->dead) n++;
  return n;
}

static struct stream *stream_find(struct conn *c, uint32_t id) {
  for (struct stream *s = streams; s; s = s->next) if (s->c == c && s->id == id && !s->dead) return s;
  return NULL;
}

struct stream *stream_new(struct conn *c, uint32_t id, enum skind k) {
  struct stream *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->c = c; s->id = id; s->kind = k; s->fd = -1;
  s->send_win = WINDOW_INIT;
  s->recv_left = WINDOW_INIT;
  s->next = streams;
  streams = s;
  return s;
}

/* Marks a stream finished; its resources go in streams_gc (after the loop iteration that used it). */
void stream_end(struct stream *s) { s->dead = 1; }

void stream_grant(struct stream *s, size_t consumed) {
  s->consumed += (int64_t)consumed;
  if (s->consumed >= WINDOW_INIT / 4) {
    char j[48];
    snprintf(j, sizeof j, "{\"bytes\":%lld}", (long long)s->consumed);
    conn_send(s->c, FT_WINDOW, s->id, j, strlen(j));
    s->recv_left += s->consumed;
    s->consumed = 0;
  }
}

void streams_gc(void) {
  struct stream **pp = &streams;
  while (*pp) {
    struct stream *s = *pp;
    if (!s->dead) { pp = &s->next; continue; }
    *pp = s->next;
    if (s->proc) proc_stream_lost(s);
    if (s->kind == S_WRITE) write_abort(s);
    if (s->kind == S_WATCH) watch_close(s);
    if (s->fd >= 0) close(s->fd);
    free(s->path); free(s->tmp); buf_free(&s->pend);
    free(s);
  }
}

void stream_cancel(struct stream *s) { stream_end(s); }

/* Session loss or a new HELLO on this connection: its streams end (background processes go on). */
static void drop_streams(struct conn *c) {
  for (struct stream *s = streams; s; s = s->next) if (s->c == c) stream_cancel(s);
}

void conn_reset(struct conn *c) {
  drop_streams(c);
  c->state = 0;
  c->in.len = 0;
  c->out.len = 0;
}

/* A protocol error: forget the session, skip input until the next magic. */
static void proto_error(struct conn *c, const char *why) {
  fprintf(stderr, "hangar-agent: protocol error (%s): resynchronising\n", why);
  drop_streams(c);
  c->state = 0;
}

static void hello(struct conn *c, const char *p, size_t n) {
  struct jv *j = json_parse(p, n);
  const char *sess = jstr(j, "session");
  if (!j || jnum(j, "v", 0) != 1 || !sess || strlen(sess) > 32) { json_free(j); proto_error(c, "bad HELLO"); return; }
  drop_streams(c);
  snprintf(c->session, sizeof c->session, "%s", sess);
  json_free(j);
  char host[256] = "", boot[64] = "";
  gethostname(host, sizeof host - 1);
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (f) { if (!fgets(boot, sizeof boot, f)) boot[0] = 0; fclose(f); boot[strcspn(boot, "\n")] = 0; }
  struct buf b = {0};
  buf_printf(&b, "{\"v\":1,\"session\":");
  jesc(&b, c->session);
  buf_printf(&b, ",\"pid\":%d,\"hostname\":", (int)getpid());
  jesc(&b, host);
  buf_printf(&b, ",\"bootId\":");
  jesc(&b, boot);
  buf_printf(&b, ",\"caps\":[\"exec\",\"pty\",\"files\",\"watch\",\"tcp\"]}");
  c->state = 2;
  conn_send(c, FT_HELLO_OK, 0, b.p, b.len);
  buf_free(&b);
}

static void request(struct conn *c, uint32_t sid, const char *p, size_t n) {
  if (sid == 0 || stream_find(c, sid)) { send_err_c(c, sid, "BAD_REQUEST", "stream id in use"); return; }
  if (stream_count(c) >= MAX_STREAMS) { send_err_c(c, sid, "TOO_MANY_STREAMS", "too many open streams"); return; }
  struct jv *r = json_parse(p, n);
  const char *op = jstr(r, "op");
  if (!r || r->t != J_OBJ || !op) { json_free(r); send_err_c(c, sid, "BAD_REQUEST", "a request is a JSON object with an op"); return; }
  if (!strcmp(op, "exec")) op_exec(c, sid, r);
  else if (!strcmp(op, "signal")) op_signal(c, sid, r);
  else if (!strcmp(op, "resize")) op_resize(c, sid, r);
  else if (!strcmp(op, "ps")) op_ps(c, sid, r);
  else if (!strcmp(op, "attach")) op_attach(c, sid, r);
  else if (!strcmp(op, "wait")) op_wait(c, sid, r);
  else if (!strcmp(op, "stdin")) op_stdin(c, sid, r);
  else if (!strcmp(op, "stat") || !strcmp(op, "list") || !strcmp(op, "mkdir") || !strcmp(op, "rm") || !strcmp(op, "mv") ||
           !strcmp(op, "chmod") || !strcmp(op, "chown")) op_file(c, sid, op, r);
  else if (!strcmp(op, "read")) op_read(c, sid, r);
  else if (!strcmp(op, "write")) op_write(c, sid, r);
  else if (!strcmp(op, "watch")) op_watch(c, sid, r);
  else if (!strcmp(op, "tcp")) op_tcp(c, sid, r);
  else if (!strcmp(op, "info")) op_info(c, sid, r);
  else send_err_c(c, sid, "BAD_REQUEST", "unknown op");
  json_free(r);
}

static void frame(struct conn *c, int type, uint32_t sid, const char *p, size_t n) {
  if (c->state == 1) {
    if (type != FT_HELLO) { proto_error(c, "expected HELLO"); return; }
    hello(c, p, n);
    return;
  }
  struct stream *s = sid ? stream_find(c, sid) : NULL;
  switch (type) {
    case FT_HELLO: hello(c, p, n); break;
    case FT_REQ:
      if (n > MAX_JSON) { proto_error(c, "request too large"); return; }
      request(c, sid, p, n);
      break;
    case FT_DATA:
      if (!s) break; /* a stream that ended or was cancelled: late bytes are dropped */
      if ((int64_t)n > s->recv_left) { proto_error(c, "window exceeded"); return; }
      s->recv_left -= (int64_t)n;
      stream_data(s, p, n);
      break;
    case FT_EOF: if (s) stream_eof(s); break;
    case FT_CANCEL: if (s) stream_cancel(s); break;
    case FT_WINDOW: {
      if (!s) break;
      struct jv *j = json_parse(p, n);
      double b = jnum(j, "bytes", -1);
      json_free(j);
      if (b < 0 || b > 1e12) { proto_error(c, "bad WINDOW"); return; }
      s->send_win += (int64_t)b;
      break;
    }
    case FT_PING: {
      char j[48];
      snprintf(j, sizeof j, "{\"t\":%lld}", (long long)now_ms());
      conn_send(c, FT_PONG, sid, j, strlen(j));
      break;
    }
    default: proto_error(c, "unknown frame type");
  }
}

/* Consumes what can be consumed of c->in. */
void conn_input(struct conn *c) {
  size_t off = 0;
  while (off < c->in.len) {
    const unsigned char *p = (const unsigned char *)c->in.p + off;
    size_t avail = c->in.len - off;
    if (c->state == 0) {
      /* skip to the magic */
      size_t i = 0;
      int found = 0;
      for (; i + sizeof MAGIC <= avail; i++) if (!memcmp(p + i, MAGIC, sizeof MAGIC)) { found = 1; break; }
      if (!found) { off += avail > sizeof MAGIC ? avail - sizeof MAGIC + 1 : 0; break; }
      off += i + sizeof MAGIC;
      c->state = 1;
      continue;
    }
    if (avail >= sizeof MAGIC && !memcmp(p, MAGIC, sizeof MAGIC)) { drop_streams(c); c->state = 1; off += sizeof MAGIC; continue; }
    if (avail < 4) break;
    uint32_t len = get32(p);
    if (len < 5 || len > MAX_PAYLOAD + 5) {
      if (len == 0 && avail < sizeof MAGIC && !memcmp(p, MAGIC, avail)) break; /* maybe a magic still arriving */
      proto_error(c, "frame length out of range");
      continue; /* state 0 now: the loop scans for the magic from here */
    }
    if (avail < 4 + (size_t)len) break;
    frame(c, p[4], get32(p + 5), (const char *)p + 9, len - 5);
    off += 4 + (size_t)len;
    if (c->closed) break;
  }
  buf_consume(&c->in, off);
}
