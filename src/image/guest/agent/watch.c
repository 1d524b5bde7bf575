/* watch: inotify on a directory (recursive: its subdirectories too, and new ones as they appear), events as
 * EVENT {type, path} until CANCEL. Events are dropped, not buffered, while the connection's output is full. */
#include "agent.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MASK (IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF)
#define MAX_WATCHES 4096

static void add_watch(struct stream *s, const char *path) {
  if (s->nw >= MAX_WATCHES) return;
  int wd = inotify_add_watch(s->fd, path, MASK);
  if (wd < 0) return;
  s->w = realloc(s->w, (size_t)(s->nw + 1) * sizeof *s->w);
  s->w[s->nw].wd = wd;
  s->w[s->nw].path = strdup(path);
  s->nw++;
  if (!s->recursive) return;
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
    if (!lstat(p, &st) && S_ISDIR(st.st_mode)) add_watch(s, p);
  }
  closedir(d);
}

void op_watch(struct conn *c, uint32_t sid, const struct jv *r) {
  const char *path = jstr(r, "path");
  struct stat st;
  if (!path) { send_err_c(c, sid, "BAD_REQUEST", "path is required"); return; }
  if (stat(path, &st)) { send_errno(c, sid, errno, path); return; }
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) { send_errno(c, sid, errno, "inotify"); return; }
  struct stream *s = stream_new(c, sid, S_WATCH);
  s->fd = fd;
  s->recursive = jbool(r, "recursive", 0);
  add_watch(s, path);
  if (!s->nw) { send_errno(c, sid, errno ? errno : EIO, path); stream_end(s); return; }
  send_ok(s, "{}");
}

static const char *ev_type(uint32_t m) {
  if (m & IN_CREATE) return "create";
  if (m & (IN_MODIFY | IN_CLOSE_WRITE)) return "write";
  if (m & (IN_DELETE | IN_DELETE_SELF)) return "remove";
  if (m & (IN_MOVED_FROM | IN_MOVED_TO)) return "rename";
  if (m & IN_ATTRIB) return "chmod";
  return NULL;
}

static void watch_cb(void *ctx, short rev) {
  (void)rev;
  struct stream *s = ctx;
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t n = read(s->fd, buf, sizeof buf);
  if (n <= 0) return;
  for (char *p = buf; p < buf + n;) {
    struct inotify_event *e = (struct inotify_event *)p;
    p += sizeof *e + e->len;
    const char *t = ev_type(e->mask);
    const char *dir = NULL;
    for (int i = 0; i < s->nw; i++) if (s->w[i].wd == e->wd) dir = s->w[i].path;
    if (!t || !dir) continue;
    char full[PATH_MAX];
    snprintf(full, sizeof full, "%s%s%s", dir, e->len ? "/" : "", e->len ? e->name : "");
    if (s->recursive && (e->mask & IN_CREATE) && (e->mask & IN_ISDIR)) add_watch(s, full);
    if (!conn_can_send(s->c)) continue;
    struct buf b = {0};
    buf_printf(&b, "{\"type\":\"%s\",\"path\":", t);
    jesc(&b, full);
    buf_addc(&b, '}');
    buf_addc(&b, 0);
    send_event(s, b.p);
    buf_free(&b);
  }
}

void watch_poll(void) {
  for (struct stream *s = streams; s; s = s->next) if (!s->dead && s->kind == S_WATCH) poll_add(s->fd, POLLIN, watch_cb, s);
}

void watch_close(struct stream *s) {
  for (int i = 0; i < s->nw; i++) free(s->w[i].path);
  free(s->w);
  s->w = NULL;
  s->nw = 0;
}
