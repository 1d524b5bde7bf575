/* tcp: a byte stream to a guest-local TCP port. OK once connected; guest→host bytes within the host's window,
 * host→guest bytes within ours (pending bytes ≤ the window we granted); EOF half-closes either way. */
#include "agent.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void op_tcp(struct conn *c, uint32_t sid, const struct jv *r) {
  int port = (int)jnum(r, "port", 0);
  const char *host = jstr(r, "host");
  if (port < 1 || port > 65535) { send_err_c(c, sid, "BAD_REQUEST", "port must be 1..65535"); return; }
  if (!host) host = "127.0.0.1";
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) { a4->sin_family = AF_INET; a4->sin_port = htons((uint16_t)port); sl = sizeof *a4; }
  else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) { a6->sin6_family = AF_INET6; a6->sin6_port = htons((uint16_t)port); sl = sizeof *a6; }
  else { send_err_c(c, sid, "BAD_REQUEST", "host must be an IP address"); return; }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { send_errno(c, sid, errno, "socket"); return; }
  struct stream *s = stream_new(c, sid, S_TCP);
  s->fd = fd;
  if (connect(fd, (struct sockaddr *)&ss, sl) == 0) { send_ok(s, "{}"); return; }
  if (errno != EINPROGRESS) { send_errno(c, sid, errno, "connect"); stream_end(s); return; }
  s->connecting = 1;
}

static void maybe_done(struct stream *s) { if (s->eof_in && s->eof_out && !s->pend.len) stream_end(s); }

static void flush(struct stream *s) {
  while (s->pend.len) {
    ssize_t w = send(s->fd, s->pend.p, s->pend.len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      send_errno(s->c, s->id, errno, "tcp");
      stream_end(s);
      return;
    }
    buf_consume(&s->pend, (size_t)w);
    stream_grant(s, (size_t)w);
  }
  if (s->eof_in) shutdown(s->fd, SHUT_WR);
  maybe_done(s);
}

void tcp_data_in(struct stream *s, const char *p, size_t n) {
  if (s->connecting || s->eof_in) return;
  buf_add(&s->pend, p, n);
  flush(s);
}

void tcp_eof_in(struct stream *s) {
  s->eof_in = 1;
  flush(s);
}

static void tcp_cb(void *ctx, short rev) {
  struct stream *s = ctx;
  if (s->dead) return;
  if (s->connecting) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) { send_errno(s->c, s->id, err, "connect"); stream_end(s); return; }
    s->connecting = 0;
    send_ok(s, "{}");
    return;
  }
  if (rev & POLLOUT) flush(s);
  if (s->dead) return;
  if (rev & (POLLIN | POLLHUP | POLLERR)) {
    size_t max = CHUNK;
    if ((int64_t)max > s->send_win) max = (size_t)s->send_win;
    if (!max || s->eof_out) return;
    char tmp[CHUNK];
    ssize_t r = recv(s->fd, tmp, max, 0);
    if (r > 0) { conn_send(s->c, FT_DATA, s->id, tmp, (size_t)r); s->send_win -= r; }
    else if (r == 0) { conn_send(s->c, FT_EOF, s->id, NULL, 0); s->eof_out = 1; maybe_done(s); }
    else if (errno != EAGAIN && errno != EINTR) { send_errno(s->c, s->id, errno, "tcp"); stream_end(s); }
  }
}

void tcp_poll(void) {
  for (struct stream *s = streams; s; s = s->next) {
    if (s->dead || s->kind != S_TCP) continue;
    short ev = 0;
    if (s->connecting) ev = POLLOUT;
    else {
      if (!s->eof_out && s->send_win > 0 && conn_can_send(s->c)) ev |= POLLIN;
      if (s->pend.len) ev |= POLLOUT;
    }
    if (ev) poll_add(s->fd, ev, tcp_cb, s);
  }
}
