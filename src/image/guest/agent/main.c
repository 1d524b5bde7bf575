/* hangar-agent's entry: options, the transports (the virtio-serial port org.hangar.guest, AF_VSOCK port 1024,
 * --stdio, --listen-unix PATH) and the single-threaded poll() loop that drives everything else. */
#include "agent.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define PORT_NAME "org.hangar.guest"
#define VSOCK_PORT 1024
#define MAX_CONNS 32

struct conn *conns;
const char *default_user = "hangar";

int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the poll set, rebuilt every iteration */
static struct pollfd *pfds;
static struct { poll_cb cb; void *ctx; } *pcbs;
static size_t npoll, cappoll;

void poll_add(int fd, short events, poll_cb cb, void *ctx) {
  if (fd < 0) return;
  if (npoll == cappoll) {
    cappoll = cappoll ? cappoll * 2 : 64;
    pfds = realloc(pfds, cappoll * sizeof *pfds);
    pcbs = realloc(pcbs, cappoll * sizeof *pcbs);
    if (!pfds || !pcbs) abort();
  }
  pfds[npoll].fd = fd; pfds[npoll].events = events; pfds[npoll].revents = 0;
  pcbs[npoll].cb = cb; pcbs[npoll].ctx = ctx;
  npoll++;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static struct conn *conn_add(enum ckind k, int rfd, int wfd) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->kind = k; c->rfd = rfd; c->wfd = wfd;
  set_nonblock(rfd);
  if (wfd != rfd) set_nonblock(wfd);
  c->next = conns;
  conns = c;
  return c;
}

static void conn_lost(struct conn *c) {
  conn_reset(c);
  if (c->kind == C_STDIO) exit(0);
  if (c->kind == C_PORT) { c->hup = 1; c->hup_until = now_ms() + 100; return; }
  c->closed = 1;
}

static void conn_io(void *ctx, short rev) {
  struct conn *c = ctx;
  if (rev & POLLOUT) {
    ssize_t w = write(c->wfd, c->out.p, c->out.len);
    if (w > 0) buf_consume(&c->out, (size_t)w);
    else if (w < 0 && errno != EAGAIN && errno != EINTR) { conn_lost(c); return; }
  }
  if (rev & (POLLIN | POLLHUP | POLLERR)) {
    char tmp[CHUNK];
    ssize_t r = read(c->rfd, tmp, sizeof tmp);
    if (r > 0) { buf_add(&c->in, tmp, (size_t)r); conn_input(c); }
    else if (r == 0 || (errno != EAGAIN && errno != EINTR)) conn_lost(c);
  }
}

static int listen_fd = -1, vsock_fd = -1, sig_fd = -1;
static char port_path[300];
static int64_t port_retry;

static void accept_cb(void *ctx, short rev) {
  (void)rev;
  int fd = accept4(*(int *)ctx, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;
  int n = 0;
  for (struct conn *c = conns; c; c = c->next) n++;
  if (n >= MAX_CONNS) { close(fd); return; }
  conn_add(C_SOCK, fd, fd);
}

static void sig_cb(void *ctx, short rev) {
  (void)ctx; (void)rev;
  struct signalfd_siginfo si;
  while (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {}
  procs_reap();
}

/* /sys/class/virtio-ports/vportNpM/name == PORT_NAME → /dev/vportNpM */
static int find_port(char *out, size_t n) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[300], name[128] = "";
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
    fclose(f);
    if (!strcmp(name, PORT_NAME)) { snprintf(out, n, "/dev/%s", e->d_name); found = 0; break; }
  }
  closedir(d);
  return found;
}

static void open_port(void) {
  if (!port_path[0] && find_port(port_path, sizeof port_path)) { port_path[0] = 0; port_retry = now_ms() + 2000; return; }
  int fd = open(port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) { port_retry = now_ms() + 2000; return; }
  conn_add(C_PORT, fd, fd);
  fprintf(stderr, "hangar-agent: serving %s\n", port_path);
}

static int listen_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof a.sun_path) { fprintf(stderr, "hangar-agent: socket path too long\n"); exit(2); }
  strcpy(a.sun_path, path);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16)) { perror("hangar-agent: listen-unix"); exit(2); }
  set_nonblock(fd);
  return fd;
}

static int listen_vsock(void) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = VSOCK_PORT };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16)) { close(fd); return -1; }
  set_nonblock(fd);
  fprintf(stderr, "hangar-agent: listening on vsock port %d\n", VSOCK_PORT);
  return fd;
}

static void usage(void) {
  fputs("usage: hangar-agent [--stdio | --listen-unix PATH] [--no-port] [--default-user NAME]\n"
        "  default: the virtio-serial port " PORT_NAME " and vsock port 1024\n", stderr);
  exit(2);
}

int main(int argc, char **argv) {
  int use_stdio = 0, use_port = 1;
  const char *unix_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--stdio")) use_stdio = 1;
    else if (!strcmp(argv[i], "--listen-unix") && i + 1 < argc) unix_path = argv[++i];
    else if (!strcmp(argv[i], "--no-port")) use_port = 0;
    else if (!strcmp(argv[i], "--default-user") && i + 1 < argc) default_user = argv[++i];
    else usage();
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t ss;
  sigemptyset(&ss);
  sigaddset(&ss, SIGCHLD);
  sigprocmask(SIG_BLOCK, &ss, NULL);
  sig_fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
  if (use_stdio) conn_add(C_STDIO, 0, 1);
  else if (unix_path) listen_fd = listen_unix(unix_path);
  else {
    vsock_fd = listen_vsock();
    if (use_port) open_port();
  }
  for (;;) {
    npoll = 0;
    int64_t now = now_ms();
    if (listen_fd >= 0) poll_add(listen_fd, POLLIN, accept_cb, &listen_fd);
    if (vsock_fd >= 0) poll_add(vsock_fd, POLLIN, accept_cb, &vsock_fd);
    poll_add(sig_fd, POLLIN, sig_cb, NULL);
    procs_poll();
    files_poll();
    tcp_poll();
    watch_poll();
    int have_port = 0;
    for (struct conn *c = conns; c; c = c->next) {
      if (c->kind == C_PORT) have_port = 1;
      if (c->hup && now < c->hup_until) continue;
      c->hup = 0;
      short ev = c->in.len < MAX_PAYLOAD + 2 * CHUNK ? POLLIN : 0;
      if (c->rfd == c->wfd) poll_add(c->rfd, (short)(ev | (c->out.len ? POLLOUT : 0)), conn_io, c);
      else { poll_add(c->rfd, ev, conn_io, c); if (c->out.len) poll_add(c->wfd, POLLOUT, conn_io, c); }
    }
    if (use_port && !use_stdio && !unix_path && !have_port && now >= port_retry) open_port();
    int64_t dl = procs_deadline();
    int timeout = 1000;
    for (struct conn *c = conns; c; c = c->next) if (c->hup) timeout = 100;
    if (dl >= 0 && dl - now < timeout) timeout = dl - now < 0 ? 0 : (int)(dl - now);
    if (files_busy()) timeout = 0;
    int n = poll(pfds, npoll, timeout);
    if (n < 0 && errno != EINTR) { perror("hangar-agent: poll"); return 1; }
    size_t cnt = npoll;
    for (size_t i = 0; n > 0 && i < cnt; i++) {
      /* a POLLHUP of a hung-up virtio port is handled once, then the port waits out hup_until */
      if (pfds[i].revents) pcbs[i].cb(pcbs[i].ctx, pfds[i].revents);
    }
    procs_reap();
    procs_tick();
    files_pump();
    streams_gc();
    for (struct conn *c = conns; c; c = c->next) { /* flush at once what this iteration produced */
      if (!c->out.len || c->closed || c->hup) continue;
      ssize_t w = write(c->wfd, c->out.p, c->out.len);
      if (w > 0) buf_consume(&c->out, (size_t)w);
    }
    struct conn **pp = &conns;
    while (*pp) {
      struct conn *c = *pp;
      if (c->closed) {
        *pp = c->next;
        if (c->rfd >= 0) close(c->rfd);
        if (c->wfd != c->rfd && c->wfd >= 0) close(c->wfd);
        buf_free(&c->in); buf_free(&c->out);
        free(c);
      } else pp = &c->next;
    }
  }
}
