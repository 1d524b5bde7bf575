/* Processes: exec (argv or sh -c, env, cwd, user, stdin, pty, background, timeout TERM→KILL), their output streamed
 * within the host's window (a background process keeps its last 64 KiB), reaping and exit events, and the ops on
 * running processes: signal, resize, ps, attach, wait, stdin. */
#include "agent.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

struct proc;
struct pout { struct proc *p; int which; };
struct proc {
  struct proc *next;
  char id[24];
  pid_t pid;
  char *argv_json, *tag;
  int background, pty, reaped, status, timed_out, done, exited_nonzero;
  int outfd, errfd, infd;
  struct pout po[2];
  char ring[RING_SIZE];
  size_t rlen, rstart;
  int64_t started_at, deadline, kill_at, idle_since;
  struct stream *att, *in;
};
static struct proc *procs;
static unsigned proc_seq;

static const struct { int n; const char *s; } SIGS[] = {
  {SIGHUP, "HUP"}, {SIGINT, "INT"}, {SIGQUIT, "QUIT"}, {SIGILL, "ILL"}, {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"}, {SIGBUS, "BUS"},
  {SIGFPE, "FPE"}, {SIGKILL, "KILL"}, {SIGUSR1, "USR1"}, {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"}, {SIGPIPE, "PIPE"},
  {SIGALRM, "ALRM"}, {SIGTERM, "TERM"}, {SIGCHLD, "CHLD"}, {SIGCONT, "CONT"}, {SIGSTOP, "STOP"}, {SIGTSTP, "TSTP"},
  {SIGTTIN, "TTIN"}, {SIGTTOU, "TTOU"}, {SIGWINCH, "WINCH"}, {SIGXCPU, "XCPU"}, {SIGSYS, "SYS"},
};
static const char *sig_name(int n) {
  for (size_t i = 0; i < sizeof SIGS / sizeof *SIGS; i++) if (SIGS[i].n == n) return SIGS[i].s;
  return "UNKNOWN";
}
static int sig_num(const char *s) {
  if (!s) return -1;
  if (!strncmp(s, "SIG", 3)) s += 3;
  for (size_t i = 0; i < sizeof SIGS / sizeof *SIGS; i++) if (!strcmp(SIGS[i].s, s)) return SIGS[i].n;
  return -1;
}

static int64_t wall_ms(void) { struct timeval t; gettimeofday(&t, NULL); return (int64_t)t.tv_sec * 1000 + t.tv_usec / 1000; }

static struct proc *proc_find(const char *id) {
  for (struct proc *p = procs; p && id; p = p->next) if (!strcmp(p->id, id)) return p;
  return NULL;
}

static void exit_json(const struct proc *p, struct buf *b, int event) {
  buf_printf(b, "{%s", event ? "\"type\":\"exit\"," : "");
  if (WIFEXITED(p->status)) buf_printf(b, "\"code\":%d,\"signal\":null", WEXITSTATUS(p->status));
  else buf_printf(b, "\"code\":null,\"signal\":\"%s\"", sig_name(WTERMSIG(p->status)));
  buf_printf(b, ",\"timedOut\":%s}", p->timed_out ? "true" : "false");
}

static void ring_add(struct proc *p, const char *d, size_t n) {
  if (n >= RING_SIZE) { d += n - RING_SIZE; n = RING_SIZE; }
  for (size_t i = 0; i < n; i++) {
    size_t at = (p->rstart + p->rlen) % RING_SIZE;
    p->ring[at] = d[i];
    if (p->rlen < RING_SIZE) p->rlen++;
    else p->rstart = (p->rstart + 1) % RING_SIZE;
  }
}

static void kill_group(struct proc *p, int sig) {
  if (p->reaped) return;
  if (kill(-p->pid, sig) < 0) kill(p->pid, sig);
}

/* The exit event to the output stream (after its replay) and to waiters. */
static void send_exit(struct proc *p, struct stream *s) {
  struct buf b = {0};
  exit_json(p, &b, 1);
  buf_addc(&b, 0);
  send_event(s, b.p);
  buf_free(&b);
  if (p->att == s) p->att = NULL;
  if (p->in == s) p->in = NULL;
  s->proc = NULL;
  stream_end(s);
}

static void close_out(struct proc *p, int which) {
  int *fd = which ? &p->errfd : &p->outfd;
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void check_done(struct proc *p) {
  if (p->done || !p->reaped || p->outfd >= 0 || p->errfd >= 0) return;
  p->done = 1;
  if (p->infd >= 0) { close(p->infd); p->infd = -1; }
  for (struct stream *s = streams; s; s = s->next) if (!s->dead && s->proc == p && s->kind == S_WAIT) send_exit(p, s);
  if (p->in && p->in != p->att) { p->in->proc = NULL; stream_end(p->in); p->in = NULL; }
}

/* Reads what the window allows from one of the process's outputs. Returns bytes read, 0 at EOF, -1 if nothing. */
static ssize_t read_output(struct proc *p, int which) {
  int fd = which ? p->errfd : p->outfd;
  if (fd < 0) return -1;
  size_t max = CHUNK;
  if (p->att) {
    if (p->att->pend.len || !conn_can_send(p->att->c)) return -1;
    if ((int64_t)max > p->att->send_win) max = (size_t)p->att->send_win;
    if (!max) return -1;
  }
  char tmp[CHUNK];
  ssize_t r = read(fd, tmp, max);
  if (r > 0) {
    if (p->background) ring_add(p, tmp, (size_t)r);
    if (p->att) { conn_send(p->att->c, which ? FT_STDERR : FT_DATA, p->att->id, tmp, (size_t)r); p->att->send_win -= r; }
    p->idle_since = 0;
    return r;
  }
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return -1;
  close_out(p, which); /* EOF, or EIO of a PTY whose other side closed */
  check_done(p);
  return 0;
}

static void out_cb(void *ctx, short rev) {
  (void)rev;
  struct pout *po = ctx;
  read_output(po->p, po->which);
}

void proc_write_stdin(struct stream *s) {
  struct proc *p = s->proc;
  if (!p || p->infd < 0) { s->pend.len = 0; return; }
  while (s->pend.len) {
    ssize_t w = write(p->infd, s->pend.p, s->pend.len);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      s->pend.len = 0; /* the process closed its stdin: further bytes are dropped */
      break;
    }
    buf_consume(&s->pend, (size_t)w);
    stream_grant(s, (size_t)w);
  }
  if (s->eof_in && p->infd >= 0) {
    if (p->pty) { if (write(p->infd, "\x04", 1) < 0) {} } else { close(p->infd); p->infd = -1; }
    s->eof_in = 0;
  }
}

int proc_takes_stdin(const struct stream *s) { return s->proc && s->proc->in == s; }

static void in_cb(void *ctx, short rev) { (void)rev; proc_write_stdin(ctx); }

void procs_poll(void) {
  for (struct proc *p = procs; p; p = p->next) {
    struct stream *a = p->att;
    if (a && a->pend.len && a->send_win > 0 && conn_can_send(a->c)) { /* replay of kept output */
      size_t n = a->pend.len < CHUNK ? a->pend.len : CHUNK;
      if ((int64_t)n > a->send_win) n = (size_t)a->send_win;
      conn_send(a->c, FT_DATA, a->id, a->pend.p, n);
      a->send_win -= (int64_t)n;
      buf_consume(&a->pend, n);
    }
    if (a && !a->pend.len && p->done) { send_exit(p, a); continue; }
    int can = !a || (!a->pend.len && a->send_win > 0 && conn_can_send(a->c));
    if (can) {
      poll_add(p->outfd, POLLIN, out_cb, &p->po[0]);
      poll_add(p->errfd, POLLIN, out_cb, &p->po[1]);
    }
    if (p->in && p->in->pend.len && p->infd >= 0) poll_add(p->infd, POLLOUT, in_cb, p->in);
  }
}

void procs_reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (struct proc *p = procs; p; p = p->next) {
      if (p->pid != pid || p->reaped) continue;
      p->reaped = 1;
      p->status = st;
      p->exited_nonzero = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
      check_done(p);
    }
  }
}

int64_t procs_deadline(void) {
  int64_t d = -1;
  for (struct proc *p = procs; p; p = p->next) {
    int64_t x = p->kill_at ? p->kill_at : p->deadline;
    if (p->reaped && !p->done) x = now_ms() + 200; /* drain and the idle check below */
    if (x && !p->reaped && (d < 0 || x < d)) d = x;
    if (p->reaped && !p->done && (d < 0 || x < d)) d = x;
  }
  return d;
}

void procs_tick(void) {
  int64_t now = now_ms();
  int finished = 0;
  for (struct proc *p = procs; p; p = p->next) {
    if (!p->reaped && p->deadline && now >= p->deadline && !p->kill_at) { p->timed_out = 1; kill_group(p, SIGTERM); p->kill_at = now + 2000; }
    if (!p->reaped && p->kill_at && now >= p->kill_at) { kill_group(p, SIGKILL); p->kill_at = 0; p->deadline = 0; }
    if (p->reaped && !p->done) {
      /* the process is gone; outputs still open belong to its descendants: once idle for 1 s they are closed */
      int got = 0;
      for (int w = 0; w < 2; w++) if (read_output(p, w) > 0) got = 1;
      if (!p->done && !got && (!p->att || (p->att->send_win > 0 && !p->att->pend.len))) {
        if (!p->idle_since) p->idle_since = now;
        else if (now - p->idle_since > 1000) { close_out(p, 0); close_out(p, 1); check_done(p); }
      }
    }
    if (p->done) finished++;
  }
  /* keep the records of at most 64 finished processes */
  while (finished > 64) {
    struct proc **pp = &procs, **last = NULL;
    for (; *pp; pp = &(*pp)->next) if ((*pp)->done && !(*pp)->att) last = pp;
    if (!last) break;
    struct proc *old = *last;
    *last = old->next;
    free(old->argv_json); free(old->tag); free(old);
    finished--;
  }
}

void proc_stream_lost(struct stream *s) {
  struct proc *p = s->proc;
  s->proc = NULL;
  if (!p) return;
  if (p->in == s) p->in = NULL;
  if (p->att == s) {
    p->att = NULL;
    if (!p->background && !p->done) kill_group(p, SIGKILL);
  }
}

/* ---- exec */
struct child_err { int stage, err; };

static char **build_env(const struct jv *env, const struct user *u, int pty) {
  size_t n = env && env->t == J_OBJ ? env->len : 0;
  char **e = calloc(n + 10, sizeof *e);
  size_t k = 0;
  struct buf b = {0};
#define ADD(...) do { b.len = 0; buf_printf(&b, __VA_ARGS__); buf_addc(&b, 0); e[k++] = strdup(b.p); } while (0)
  ADD("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  ADD("HOME=%s", u->home);
  ADD("USER=%s", u->name);
  ADD("LOGNAME=%s", u->name);
  ADD("SHELL=%s", u->shell);
  ADD("LANG=C.UTF-8");
  if (pty) ADD("TERM=xterm-256color");
  for (size_t i = 0; i < n; i++) {
    if (env->kids[i].t != J_STR || !env->keys[i][0] || strchr(env->keys[i], '=')) continue;
    size_t kl = strlen(env->keys[i]);
    for (size_t j = 0; j < k; j++) if (!strncmp(e[j], env->keys[i], kl) && e[j][kl] == '=') { free(e[j]); e[j] = e[--k]; break; }
    ADD("%s=%s", env->keys[i], env->kids[i].s);
  }
#undef ADD
  buf_free(&b);
  e[k] = NULL;
  return e;
}

static void free_strv(char **v) { for (size_t i = 0; v && v[i]; i++) free(v[i]); free(v); }

void op_exec(struct conn *c, uint32_t sid, const struct jv *r) {
  const struct jv *av = jget(r, "argv");
  const char *cmd = jstr(r, "cmd");
  if ((av && av->t != J_ARR) || (!av == !cmd) || (av && !av->len)) { send_err_c(c, sid, "BAD_REQUEST", "exactly one of argv (non-empty) and cmd"); return; }
  char **argv = calloc((av ? av->len : 3) + 1, sizeof *argv);
  struct buf aj = {0};
  buf_addc(&aj, '[');
  if (av) {
    for (size_t i = 0; i < av->len; i++) {
      if (av->kids[i].t != J_STR) { free_strv(argv); buf_free(&aj); send_err_c(c, sid, "BAD_REQUEST", "argv holds strings"); return; }
      argv[i] = strdup(av->kids[i].s);
      if (i) buf_addc(&aj, ',');
      jesc(&aj, argv[i]);
    }
  } else {
    argv[0] = strdup("/bin/sh"); argv[1] = strdup("-c"); argv[2] = strdup(cmd);
    buf_add(&aj, "\"/bin/sh\",\"-c\",", 15);
    jesc(&aj, cmd);
  }
  buf_addc(&aj, ']');
  buf_addc(&aj, 0);

  /* who runs it */
  struct user u;
  const struct jv *uv = jget(r, "user");
  char ubuf[32];
  const char *uname = NULL;
  if (uv && uv->t == J_STR) uname = uv->s;
  else if (uv && uv->t == J_NUM) { snprintf(ubuf, sizeof ubuf, "%.0f", uv->n); uname = ubuf; }
  int am_root = geteuid() == 0;
  int sw = 0;
  if (uname) {
    if (user_lookup(uname, &u)) { free_strv(argv); buf_free(&aj); send_err_c(c, sid, "NO_SUCH_USER", "no such user in the guest"); return; }
    if (u.uid != geteuid()) { if (!am_root) { free_strv(argv); buf_free(&aj); send_err_c(c, sid, "EPERM", "the agent is not root: it cannot switch users"); return; } sw = 1; }
  } else if (am_root && default_user[0] && !user_lookup(default_user, &u)) sw = u.uid != 0;
  else { char self[32]; snprintf(self, sizeof self, "%u", (unsigned)geteuid()); if (user_lookup(self, &u)) { u.uid = geteuid(); u.gid = getegid(); snprintf(u.name, sizeof u.name, "%s", self); snprintf(u.home, sizeof u.home, "/"); snprintf(u.shell, sizeof u.shell, "/bin/sh"); } }

  const struct jv *ptyv = jget(r, "pty");
  int pty = ptyv && ptyv->t == J_OBJ;
  int want_in = jbool(r, "stdin", 0) || pty;
  int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1}, ep[2], master = -1, slave = -1;
  if (pipe2(ep, O_CLOEXEC)) { send_errno(c, sid, errno, "pipe"); goto out; }
  if (pty) {
    struct winsize ws = { .ws_col = (unsigned short)jnum(ptyv, "cols", 80), .ws_row = (unsigned short)jnum(ptyv, "rows", 24) };
    if (openpty(&master, &slave, NULL, NULL, &ws)) { send_errno(c, sid, errno, "openpty"); close(ep[0]); close(ep[1]); goto out; }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
  } else {
    if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || (want_in && pipe2(inp, O_CLOEXEC))) { send_errno(c, sid, errno, "pipe"); close(ep[0]); close(ep[1]); goto out; }
  }
  char **env = build_env(jget(r, "env"), &u, pty);
  const char *cwd = jstr(r, "cwd");
  gid_t groups[64];
  int ng = sw ? user_groups(&u, groups, 64) : 0;
  pid_t pid = fork();
  if (pid == 0) {
    struct child_err ce = {0, 0};
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (pty) {
      ioctl(slave, TIOCSCTTY, 0);
      dup2(slave, 0); dup2(slave, 1); dup2(slave, 2);
    } else {
      int nul = open("/dev/null", O_RDWR);
      dup2(want_in ? inp[0] : nul, 0);
      dup2(outp[1], 1);
      dup2(errp[1], 2);
    }
    if (sw && (setgroups((size_t)ng, groups) || setgid(u.gid) || setuid(u.uid))) { ce.stage = 2; goto fail; }
    if (cwd ? chdir(cwd) : (chdir(u.home) && chdir("/"))) { ce.stage = 1; goto fail; }
    execvpe(argv[0], argv, env);
    ce.stage = 3;
  fail:
    ce.err = errno;
    if (write(ep[1], &ce, sizeof ce) < 0) {}
    _exit(127);
  }
  free_strv(env);
  close(ep[1]);
  if (slave >= 0) close(slave);
  if (outp[1] >= 0) close(outp[1]);
  if (errp[1] >= 0) close(errp[1]);
  if (inp[0] >= 0) close(inp[0]);
  if (pid < 0) { send_errno(c, sid, errno, "fork"); close(ep[0]); goto out_fds; }
  struct child_err ce;
  ssize_t got;
  do got = read(ep[0], &ce, sizeof ce); while (got < 0 && errno == EINTR);
  close(ep[0]);
  if (got == (ssize_t)sizeof ce) {
    waitpid(pid, NULL, 0);
    char what[600];
    snprintf(what, sizeof what, "%s %s", ce.stage == 1 ? "cwd" : ce.stage == 2 ? "switching to user" : "exec", ce.stage == 1 ? cwd : ce.stage == 2 ? u.name : argv[0]);
    send_errno(c, sid, ce.err, what);
    goto out_fds;
  }
  struct proc *p = calloc(1, sizeof *p);
  snprintf(p->id, sizeof p->id, "p%u", ++proc_seq);
  p->pid = pid;
  p->argv_json = strdup(aj.p);
  p->tag = jstr(r, "tag") ? strdup(jstr(r, "tag")) : NULL;
  p->background = jbool(r, "background", 0);
  p->pty = pty;
  p->started_at = wall_ms();
  double t = jnum(r, "timeoutMs", 0);
  if (t > 0) p->deadline = now_ms() + (int64_t)t;
  if (pty) { p->outfd = master; p->infd = dup(master); p->errfd = -1; fcntl(p->infd, F_SETFD, FD_CLOEXEC); }
  else { p->outfd = outp[0]; p->errfd = errp[0]; p->infd = want_in ? inp[1] : -1; }
  fcntl(p->outfd, F_SETFL, O_NONBLOCK);
  if (p->errfd >= 0) fcntl(p->errfd, F_SETFL, O_NONBLOCK);
  if (p->infd >= 0) fcntl(p->infd, F_SETFL, O_NONBLOCK);
  p->po[0].p = p; p->po[0].which = 0; p->po[1].p = p; p->po[1].which = 1;
  p->next = procs;
  procs = p;
  struct stream *s = stream_new(c, sid, S_EXEC);
  s->proc = p;
  p->att = s;
  if (want_in) p->in = s;
  char ok[96];
  snprintf(ok, sizeof ok, "{\"proc\":\"%s\",\"pid\":%d}", p->id, (int)pid);
  send_ok(s, ok);
  goto out;
out_fds:
  if (master >= 0) close(master);
  if (outp[0] >= 0) close(outp[0]);
  if (errp[0] >= 0) close(errp[0]);
  if (inp[1] >= 0) close(inp[1]);
out:
  free_strv(argv);
  buf_free(&aj);
}

static struct proc *need_proc(struct conn *c, uint32_t sid, const struct jv *r) {
  struct proc *p = proc_find(jstr(r, "proc"));
  if (!p) send_err_c(c, sid, "NO_SUCH_PROC", "no such process");
  return p;
}

void op_signal(struct conn *c, uint32_t sid, const struct jv *r) {
  struct proc *p = need_proc(c, sid, r);
  if (!p) return;
  int sig = sig_num(jstr(r, "signal"));
  if (sig < 0) { send_err_c(c, sid, "BAD_REQUEST", "unknown signal"); return; }
  kill_group(p, sig);
  send_ok_c(c, sid, "{}");
}

void op_resize(struct conn *c, uint32_t sid, const struct jv *r) {
  struct proc *p = need_proc(c, sid, r);
  if (!p) return;
  if (!p->pty || p->outfd < 0) { send_err_c(c, sid, "BAD_REQUEST", "the process has no PTY"); return; }
  struct winsize ws = { .ws_col = (unsigned short)jnum(r, "cols", 80), .ws_row = (unsigned short)jnum(r, "rows", 24) };
  if (ioctl(p->outfd, TIOCSWINSZ, &ws)) { send_errno(c, sid, errno, "resize"); return; }
  send_ok_c(c, sid, "{}");
}

void op_ps(struct conn *c, uint32_t sid, const struct jv *r) {
  (void)r;
  struct buf b = {0};
  buf_printf(&b, "{\"procs\":[");
  int first = 1;
  for (struct proc *p = procs; p; p = p->next) {
    if (!first) buf_addc(&b, ',');
    first = 0;
    buf_printf(&b, "{\"proc\":\"%s\",\"pid\":%d,\"argv\":%s,\"tag\":", p->id, (int)p->pid, p->argv_json);
    if (p->tag) jesc(&b, p->tag); else buf_printf(&b, "null");
    buf_printf(&b, ",\"background\":%s,\"running\":%s,\"startedAt\":%lld", p->background ? "true" : "false", p->reaped ? "false" : "true", (long long)p->started_at);
    if (p->reaped) { buf_printf(&b, ",\"exit\":"); exit_json(p, &b, 0); }
    buf_addc(&b, '}');
  }
  buf_printf(&b, "]}");
  buf_addc(&b, 0);
  send_ok_c(c, sid, b.p);
  buf_free(&b);
}

void op_attach(struct conn *c, uint32_t sid, const struct jv *r) {
  struct proc *p = need_proc(c, sid, r);
  if (!p) return;
  if (p->att) { struct stream *old = p->att; old->proc = NULL; p->att = NULL; if (p->in == old) p->in = NULL; stream_end(old); }
  struct stream *s = stream_new(c, sid, S_EXEC);
  s->proc = p;
  p->att = s;
  for (size_t i = 0; i < p->rlen; i++) buf_addc(&s->pend, p->ring[(p->rstart + i) % RING_SIZE]);
  char ok[48];
  snprintf(ok, sizeof ok, "{\"pid\":%d}", (int)p->pid);
  send_ok(s, ok);
}

void op_wait(struct conn *c, uint32_t sid, const struct jv *r) {
  struct proc *p = need_proc(c, sid, r);
  if (!p) return;
  struct stream *s = stream_new(c, sid, S_WAIT);
  s->proc = p;
  send_ok(s, "{}");
  if (p->done) send_exit(p, s);
}

void op_stdin(struct conn *c, uint32_t sid, const struct jv *r) {
  struct proc *p = need_proc(c, sid, r);
  if (!p) return;
  if (p->infd < 0 || p->done) { send_err_c(c, sid, "BAD_REQUEST", "the process has no stdin"); return; }
  if (p->in) { struct stream *old = p->in; p->in = NULL; if (old != p->att) { old->proc = NULL; stream_end(old); } }
  struct stream *s = stream_new(c, sid, S_STDIN);
  s->proc = p;
  p->in = s;
  send_ok(s, "{}");
}

void procs_failed_json(struct buf *b) {
  int first = 1;
  for (struct proc *p = procs; p; p = p->next) {
    if (!p->reaped || !p->exited_nonzero) continue;
    if (!first) buf_addc(b, ',');
    first = 0;
    buf_printf(b, "{\"name\":");
    jesc(b, p->argv_json);
    buf_printf(b, ",\"pid\":%d,\"exit\":", (int)p->pid);
    struct buf e = {0};
    if (WIFEXITED(p->status)) buf_printf(&e, "code %d", WEXITSTATUS(p->status)); else buf_printf(&e, "signal %s", sig_name(WTERMSIG(p->status)));
    buf_addc(&e, 0);
    jesc(b, e.p);
    buf_free(&e);
    buf_addc(b, '}');
  }
}
