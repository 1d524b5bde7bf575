/* Users from /etc/passwd and /etc/group, read directly (a static binary has no NSS): the uid, gid, home and shell
 * of a name or number, and the supplementary groups initgroups() would set. */
#include "agent.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int user_lookup(const char *who, struct user *u) {
  char *end;
  long num = strtol(who, &end, 10);
  int numeric = *who && !*end && num >= 0;
  FILE *f = fopen("/etc/passwd", "r");
  char line[1024];
  int found = -1;
  while (f && fgets(line, sizeof line, f)) {
    char *fld[7] = {0};
    char *p = line;
    int n = 0;
    for (; n < 7 && p; n++) { fld[n] = p; p = strchr(p, ':'); if (p) *p++ = 0; }
    if (n < 7) continue;
    fld[6][strcspn(fld[6], "\n")] = 0;
    if (numeric ? strtol(fld[2], NULL, 10) != num : strcmp(fld[0], who)) continue;
    u->uid = (uid_t)strtoul(fld[2], NULL, 10);
    u->gid = (gid_t)strtoul(fld[3], NULL, 10);
    snprintf(u->name, sizeof u->name, "%s", fld[0]);
    snprintf(u->home, sizeof u->home, "%s", fld[5][0] ? fld[5] : "/");
    snprintf(u->shell, sizeof u->shell, "%s", fld[6][0] ? fld[6] : "/bin/sh");
    found = 0;
    break;
  }
  if (f) fclose(f);
  if (found && numeric) { /* a uid without an entry: its own group, home / */
    u->uid = (uid_t)num; u->gid = (gid_t)num;
    snprintf(u->name, sizeof u->name, "%ld", num);
    snprintf(u->home, sizeof u->home, "/");
    snprintf(u->shell, sizeof u->shell, "/bin/sh");
    found = 0;
  }
  return found;
}

int user_groups(const struct user *u, gid_t *out, int max) {
  int n = 0;
  out[n++] = u->gid;
  FILE *f = fopen("/etc/group", "r");
  char line[4096];
  while (f && fgets(line, sizeof line, f) && n < max) {
    char *name = line, *pw = strchr(name, ':');
    if (!pw) continue;
    char *gid = strchr(pw + 1, ':');
    if (!gid) continue;
    char *mem = strchr(gid + 1, ':');
    if (!mem) continue;
    *mem++ = 0;
    mem[strcspn(mem, "\n")] = 0;
    for (char *m = strtok(mem, ","); m; m = strtok(NULL, ",")) {
      if (strcmp(m, u->name)) continue;
      gid_t g = (gid_t)strtoul(gid + 1, NULL, 10);
      if (g != u->gid) out[n++] = g;
      break;
    }
  }
  if (f) fclose(f);
  return n;
}
