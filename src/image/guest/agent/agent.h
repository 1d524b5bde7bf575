/* hangar-agent: the guest side of src/agent/PROTOCOL.md. Shared declarations of its parts (one concern per file:
 * main.c the poll loop and transports, conn.c frames and sessions, json.c the JSON reader/writer, proc.c processes,
 * files.c file ops, watch.c inotify, tcp.c forwards, info.c evidence for the doctor, users.c /etc/passwd). */
#ifndef HANGAR_AGENT_H
#define HANGAR_AGENT_H
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_PAYLOAD (1024 * 1024)
#define MAX_JSON (64 * 1024)
#define WINDOW_INIT (256 * 1024)
#define OUT_HIGH (2 * 1024 * 1024)
#define RING_SIZE (64 * 1024)
#define CHUNK (64 * 1024)
#define MAX_STREAMS 256

enum ftype {
  FT_HELLO = 0x01, FT_HELLO_OK = 0x02, FT_REQ = 0x10, FT_OK = 0x11, FT_ERR = 0x12, FT_DATA = 0x20, FT_STDERR = 0x21,
  FT_EOF = 0x22, FT_WINDOW = 0x23, FT_EVENT = 0x24, FT_CANCEL = 0x25, FT_PING = 0x30, FT_PONG = 0x31,
};

/* ---- growable byte buffer (buf.c is in json.c) */
struct buf { char *p; size_t len, cap; };
void buf_add(struct buf *b, const void *d, size_t n);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

/* ---- JSON */
enum jt { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jv {
  enum jt t;
  double n;
  char *s;          /* J_STR (NUL-terminated; may contain no NUL) */
  size_t len;       /* string length or number of kids */
  struct jv *kids;  /* J_ARR / J_OBJ values */
  char **keys;      /* J_OBJ keys */
};
struct jv *json_parse(const char *s, size_t n);
void json_free(struct jv *v);
const struct jv *jget(const struct jv *o, const char *key);
const char *jstr(const struct jv *o, const char *key);
int jhas(const struct jv *o, const char *key);
double jnum(const struct jv *o, const char *key, double def);
int jbool(const struct jv *o, const char *key, int def);
void jesc(struct buf *b, const char *s); /* appends "s" quoted and escaped */
void jesc_n(struct buf *b, const char *s, size_t n);

/* ---- connections and streams */
enum ckind { C_STDIO, C_SOCK, C_PORT };
struct conn {
  struct conn *next;
  enum ckind kind;
  int rfd, wfd;
  int state;       /* 0 waiting for the magic, 1 expecting HELLO, 2 in session */
  int closed;      /* to be freed (sockets) */
  int hup;         /* virtio port without a host: re-polled later */
  int64_t hup_until;
  char session[40];
  struct buf in, out;
};

enum skind { S_EXEC, S_WAIT, S_READ, S_WRITE, S_WATCH, S_TCP, S_STDIN };
struct proc;
struct stream {
  struct stream *next;
  struct conn *c;
  uint32_t id;
  enum skind kind;
  int dead;
  int64_t send_win;   /* DATA/STDERR bytes we may still send */
  int64_t recv_left;  /* DATA bytes the host may still send */
  int64_t consumed;   /* host DATA consumed since our last WINDOW */
  struct proc *proc;
  int fd;
  char *path, *tmp;
  int mode, uid, gid, append, have_mode, have_owner;
  int64_t remaining, size;
  struct buf pend;    /* host DATA not yet written (stdin, tcp), or kept output to replay (attach) */
  int eof_in, eof_out, connecting;
  int recursive;
  struct { int wd; char *path; } *w;
  int nw;
};

extern struct conn *conns;
extern struct stream *streams;
extern int64_t now_ms(void);
extern const char *default_user;

void conn_send(struct conn *c, int type, uint32_t sid, const void *p, size_t n);
void send_ok(struct stream *s, const char *json);
void send_ok_c(struct conn *c, uint32_t sid, const char *json);
void send_err_c(struct conn *c, uint32_t sid, const char *code, const char *msg);
void send_errno(struct conn *c, uint32_t sid, int err, const char *what);
void send_event(struct stream *s, const char *json);
void conn_input(struct conn *c);
void conn_reset(struct conn *c);
int conn_can_send(const struct conn *c);
struct stream *stream_new(struct conn *c, uint32_t id, enum skind k);
void stream_end(struct stream *s);
void stream_grant(struct stream *s, size_t consumed);
void streams_gc(void);
const char *errno_code(int e);

/* ---- ops (each returns nothing: it answers on the stream) */
void op_exec(struct conn *c, uint32_t sid, const struct jv *r);
void op_signal(struct conn *c, uint32_t sid, const struct jv *r);
void op_resize(struct conn *c, uint32_t sid, const struct jv *r);
void op_ps(struct conn *c, uint32_t sid, const struct jv *r);
void op_attach(struct conn *c, uint32_t sid, const struct jv *r);
void op_wait(struct conn *c, uint32_t sid, const struct jv *r);
void op_stdin(struct conn *c, uint32_t sid, const struct jv *r);
void op_file(struct conn *c, uint32_t sid, const char *op, const struct jv *r);
void op_read(struct conn *c, uint32_t sid, const struct jv *r);
void op_write(struct conn *c, uint32_t sid, const struct jv *r);
void op_watch(struct conn *c, uint32_t sid, const struct jv *r);
void op_tcp(struct conn *c, uint32_t sid, const struct jv *r);
void op_info(struct conn *c, uint32_t sid, const struct jv *r);

/* stream hooks called by conn.c / main.c */
void stream_data(struct stream *s, const char *p, size_t n); /* host DATA */
void stream_eof(struct stream *s);                           /* host EOF */
void stream_cancel(struct stream *s);                        /* host CANCEL or session loss */

/* ---- processes (proc.c) */
struct pollfd;
typedef void (*poll_cb)(void *ctx, short revents);
void poll_add(int fd, short events, poll_cb cb, void *ctx);
void procs_poll(void);     /* registers fds of processes */
void procs_reap(void);     /* after SIGCHLD */
void procs_tick(void);     /* timeouts */
int64_t procs_deadline(void);
void proc_stream_lost(struct stream *s);
void proc_write_stdin(struct stream *s);
int proc_takes_stdin(const struct stream *s);
void files_pump(void);     /* read streams: produce DATA */
int files_busy(void);
void files_poll(void);
void tcp_poll(void);
void watch_poll(void);
void write_abort(struct stream *s);
void tcp_cancel(struct stream *s);
void tcp_data(struct stream *s);
void watch_close(struct stream *s);

/* ---- users (users.c) */
struct user { uid_t uid; gid_t gid; char name[64]; char home[256]; char shell[128]; };
int user_lookup(const char *name_or_uid, struct user *u); /* 0 ok, -1 not found */
int user_groups(const struct user *u, gid_t *out, int max);

/* ---- proc registry for info.c */
void procs_failed_json(struct buf *b);
#endif
