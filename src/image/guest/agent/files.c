/* File ops: stat, list, mkdir, rm, mv, chmod, chown (answered at once), read (DATA within the host's window, then
 * EOF) and write (host DATA into a temporary file in the same directory, renamed over the path at EOF). Also the
 * dispatch of host DATA/EOF to the stream kinds. */
#include "agent.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tcp_data_in(struct stream *s, const char *p, size_t n);
void tcp_eof_in(struct stream *s);

static void stat_json(struct buf *b, const char *path, const struct stat *st) {
  const char *t = S_ISREG(st->st_mode) ? "file" : S_ISDIR(st->st_mode) ? "dir" : S_ISLNK(st->st_mode) ? "symlink" : "other";
  buf_printf(b, "\"type\":\"%s\",\"size\":%lld,\"mode\":%u,\"uid\":%u,\"gid\":%u,\"mtimeMs\":%lld", t, (long long)st->st_size,
             (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, (unsigned)st->st_gid,
             (long long)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000);
  if (S_ISLNK(st->st_mode)) {
    char tgt[PATH_MAX];
    ssize_t n = readlink(path, tgt, sizeof tgt - 1);
    if (n >= 0) { tgt[n] = 0; buf_printf(b, ",\"target\":"); jesc(b, tgt); }
  }
}

static int rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st)) return -1;
  if (!S_ISDIR(st.st_mode)) return unlink(path);
  DIR *d = opendir(path);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) { errno = ENAMETOOLONG; rc = -1; break; }
    if (rm_rf(p)) { rc = -1; break; }
  }
  int keep = errno;
  closedir(d);
  if (rc) { errno = keep; return -1; }
  return rmdir(path);
}

static int mkdir_p(const char *path, mode_t mode) {
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) { errno = ENAMETOOLONG; return -1; }
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) && errno != EEXIST) return -1;
    *s = '/';
  }
  if (mkdir(p, mode) && errno != EEXIST) return -1;
  struct stat st;
  if (stat(p, &st) || !S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
  return 0;
}

static void list_dir(struct buf *b, const char *path, int depth, int *first, int *count) {
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && *count < 100000) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", strcmp(path, "/") ? path : "", e->d_name) >= (int)sizeof p) continue;
    struct stat st;
    if (lstat(p, &st)) continue;
    if (!*first) buf_addc(b, ',');
    *first = 0;
    (*count)++;
    buf_printf(b, "{\"name\":");
    jesc(b, e->d_name);
    buf_printf(b, ",\"path\":");
    jesc(b, p);
    buf_addc(b, ',');
    stat_json(b, p, &st);
    buf_addc(b, '}');
    if (depth > 1 && S_ISDIR(st.st_mode)) list_dir(b, p, depth - 1, first, count);
  }
  closedir(d);
}

void op_file(struct conn *c, uint32_t sid, const char *op, const struct jv *r) {
  const char *path = jstr(r, !strcmp(op, "mv") ? "from" : "path");
  if (!path || !path[0]) { send_err_c(c, sid, "BAD_REQUEST", "a path is required"); return; }
  struct stat st;
  struct buf b = {0};
  if (!strcmp(op, "stat")) {
    if (lstat(path, &st)) { send_errno(c, sid, errno, path); return; }
    buf_addc(&b, '{'); stat_json(&b, path, &st); buf_addc(&b, '}'); buf_addc(&b, 0);
    send_ok_c(c, sid, b.p);
  } else if (!strcmp(op, "list")) {
    if (stat(path, &st)) { send_errno(c, sid, errno, path); return; }
    if (!S_ISDIR(st.st_mode)) { send_errno(c, sid, ENOTDIR, path); return; }
    int first = 1, count = 0, depth = (int)jnum(r, "depth", 1);
    if (depth < 1) depth = 1;
    if (depth > 16) depth = 16;
    buf_printf(&b, "{\"entries\":[");
    list_dir(&b, path, depth, &first, &count);
    buf_printf(&b, "]}");
    buf_addc(&b, 0);
    if (b.len > MAX_PAYLOAD) send_err_c(c, sid, "TOO_LARGE", "the listing is larger than a frame; list a smaller tree");
    else send_ok_c(c, sid, b.p);
  } else if (!strcmp(op, "mkdir")) {
    mode_t mode = (mode_t)jnum(r, "mode", 0755);
    int rc = jbool(r, "parents", 0) ? mkdir_p(path, mode) : mkdir(path, mode);
    if (rc) { send_errno(c, sid, errno, path); return; }
    if (jhas(r, "mode")) chmod(path, mode); /* the umask does not apply to an explicit mode */
    send_ok_c(c, sid, "{}");
  } else if (!strcmp(op, "rm")) {
    int rc;
    if (jbool(r, "recursive", 0)) rc = rm_rf(path);
    else if (!lstat(path, &st) && S_ISDIR(st.st_mode)) rc = rmdir(path);
    else rc = unlink(path);
    if (rc) { send_errno(c, sid, errno, path); return; }
    send_ok_c(c, sid, "{}");
  } else if (!strcmp(op, "mv")) {
    const char *to = jstr(r, "to");
    if (!to || !to[0]) { send_err_c(c, sid, "BAD_REQUEST", "to is required"); return; }
    if (rename(path, to)) { send_errno(c, sid, errno, to); return; }
    send_ok_c(c, sid, "{}");
  } else if (!strcmp(op, "chmod")) {
    if (!jhas(r, "mode")) { send_err_c(c, sid, "BAD_REQUEST", "mode is required"); return; }
    if (chmod(path, (mode_t)jnum(r, "mode", 0))) { send_errno(c, sid, errno, path); return; }
    send_ok_c(c, sid, "{}");
  } else if (!strcmp(op, "chown")) {
    if (lchown(path, (uid_t)jnum(r, "uid", -1), (gid_t)jnum(r, "gid", -1))) { send_errno(c, sid, errno, path); return; }
    send_ok_c(c, sid, "{}");
  }
  buf_free(&b);
}

/* ---- read */
void op_read(struct conn *c, uint32_t sid, const struct jv *r) {
  const char *path = jstr(r, "path");
  if (!path) { send_err_c(c, sid, "BAD_REQUEST", "path is required"); return; }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) { send_errno(c, sid, errno, path); return; }
  if (fstat(fd, &st) || S_ISDIR(st.st_mode)) { send_errno(c, sid, S_ISDIR(st.st_mode) ? EISDIR : errno, path); close(fd); return; }
  int64_t off = (int64_t)jnum(r, "offset", 0), len = (int64_t)jnum(r, "length", -1);
  if (off < 0) off = 0;
  if (off && lseek(fd, off, SEEK_SET) < 0) { send_errno(c, sid, errno, path); close(fd); return; }
  int64_t avail = S_ISREG(st.st_mode) ? (st.st_size > off ? st.st_size - off : 0) : -1;
  int64_t size = len >= 0 && (avail < 0 || len < avail) ? len : avail;
  struct stream *s = stream_new(c, sid, S_READ);
  s->fd = fd;
  s->remaining = size; /* -1: until EOF (not a regular file) */
  char ok[48];
  snprintf(ok, sizeof ok, "{\"size\":%lld}", (long long)size);
  send_ok(s, ok);
}

int files_busy(void) {
  for (struct stream *s = streams; s; s = s->next)
    if (!s->dead && s->kind == S_READ && s->send_win > 0 && conn_can_send(s->c)) return 1;
  return 0;
}

void files_pump(void) {
  char tmp[CHUNK];
  for (struct stream *s = streams; s; s = s->next) {
    if (s->dead || s->kind != S_READ) continue;
    /* a few chunks per stream per iteration keeps the loop fair to other fds */
    for (int k = 0; k < 4 && s->send_win > 0 && conn_can_send(s->c); k++) {
      size_t n = CHUNK;
      if ((int64_t)n > s->send_win) n = (size_t)s->send_win;
      if (s->remaining >= 0 && (int64_t)n > s->remaining) n = (size_t)s->remaining;
      ssize_t got = n ? read(s->fd, tmp, n) : 0;
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) { send_errno(s->c, s->id, errno, "read"); stream_end(s); break; }
      if (got == 0) { conn_send(s->c, FT_EOF, s->id, NULL, 0); stream_end(s); break; }
      conn_send(s->c, FT_DATA, s->id, tmp, (size_t)got);
      s->send_win -= got;
      if (s->remaining >= 0) s->remaining -= got;
    }
  }
}

void files_poll(void) {}

/* ---- write */
void op_write(struct conn *c, uint32_t sid, const struct jv *r) {
  const char *path = jstr(r, "path");
  if (!path || !path[0]) { send_err_c(c, sid, "BAD_REQUEST", "path is required"); return; }
  struct stream *s = stream_new(c, sid, S_WRITE);
  s->path = strdup(path);
  s->append = jbool(r, "append", 0);
  s->have_mode = jhas(r, "mode");
  s->mode = (int)jnum(r, "mode", 0644);
  s->have_owner = jhas(r, "uid") || jhas(r, "gid");
  s->uid = (int)jnum(r, "uid", -1);
  s->gid = (int)jnum(r, "gid", -1);
  if (s->append) {
    s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, (mode_t)s->mode);
  } else {
    char *dup1 = strdup(path), *dup2 = strdup(path);
    struct buf t = {0};
    buf_printf(&t, "%s/.%s.hangar-XXXXXX", dirname(dup1), basename(dup2));
    buf_addc(&t, 0);
    free(dup1); free(dup2);
    s->tmp = t.p;
    s->fd = mkostemp(s->tmp, O_CLOEXEC);
    if (s->fd < 0) { free(s->tmp); s->tmp = NULL; }
    else {
      struct stat st;
      /* an existing file keeps its mode and owner unless the request sets them */
      if (!stat(path, &st)) {
        if (!s->have_mode) { s->mode = (int)(st.st_mode & 07777); s->have_mode = 1; }
        if (!s->have_owner && geteuid() == 0) { s->uid = (int)st.st_uid; s->gid = (int)st.st_gid; s->have_owner = 1; }
      } else if (!s->have_mode) { s->have_mode = 1; s->mode = 0644; }
    }
  }
  if (s->fd < 0) { send_errno(c, sid, errno, path); s->kind = S_READ; stream_end(s); return; }
  send_ok(s, "{}");
}

void write_abort(struct stream *s) {
  if (s->tmp) { unlink(s->tmp); free(s->tmp); s->tmp = NULL; }
}

static void write_data(struct stream *s, const char *p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(s->fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) { send_errno(s->c, s->id, errno, s->path); stream_end(s); return; }
    done += (size_t)w;
  }
  s->size += (int64_t)n;
  stream_grant(s, n);
}

static void write_eof(struct stream *s) {
  int err = 0;
  if (s->have_mode && fchmod(s->fd, (mode_t)s->mode)) err = errno;
  if (!err && s->have_owner && fchown(s->fd, (uid_t)s->uid, (gid_t)s->gid)) err = errno;
  if (!err && close(s->fd)) err = errno;
  s->fd = -1;
  if (!err && s->tmp && rename(s->tmp, s->path)) err = errno;
  if (err) { send_errno(s->c, s->id, err, s->path); stream_end(s); return; }
  free(s->tmp);
  s->tmp = NULL;
  char ev[64];
  snprintf(ev, sizeof ev, "{\"type\":\"written\",\"size\":%lld}", (long long)s->size);
  send_event(s, ev);
  stream_end(s);
}

/* ---- host DATA / EOF by stream kind */
void stream_data(struct stream *s, const char *p, size_t n) {
  switch (s->kind) {
    case S_WRITE: write_data(s, p, n); break;
    case S_EXEC: case S_STDIN:
      if (!proc_takes_stdin(s)) break;
      buf_add(&s->pend, p, n);
      proc_write_stdin(s);
      break;
    case S_TCP: tcp_data_in(s, p, n); break;
    default: break;
  }
}

void stream_eof(struct stream *s) {
  switch (s->kind) {
    case S_WRITE: write_eof(s); break;
    case S_EXEC: case S_STDIN:
      if (!s->proc) break;
      s->eof_in = 1;
      proc_write_stdin(s);
      break;
    case S_TCP: tcp_eof_in(s); break;
    default: break;
  }
}
