/* info: evidence for the doctor from inside the guest: hostname, uptime, boot id, interfaces and their addresses
 * (getifaddrs), IPv4 routes (/proc/net/route), listening TCP sockets (/proc/net/tcp, tcp6) and the processes the
 * agent started that failed. */
#include "agent.h"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int prefix_len(const struct sockaddr *m) {
  if (!m) return 0;
  const unsigned char *p;
  size_t n;
  if (m->sa_family == AF_INET) { p = (const unsigned char *)&((const struct sockaddr_in *)m)->sin_addr; n = 4; }
  else if (m->sa_family == AF_INET6) { p = (const unsigned char *)&((const struct sockaddr_in6 *)m)->sin6_addr; n = 16; }
  else return 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) for (int b = 7; b >= 0; b--) if (p[i] & (1 << b)) bits++;
  return bits;
}

static void ifaces(struct buf *b) {
  struct ifaddrs *ifa, *i;
  buf_printf(b, "\"ifaces\":[");
  if (getifaddrs(&ifa)) { buf_printf(b, "]"); return; }
  char seen[64][IF_NAMESIZE];
  int ns = 0, first = 1;
  for (i = ifa; i; i = i->ifa_next) {
    int dup = 0;
    for (int k = 0; k < ns; k++) if (!strcmp(seen[k], i->ifa_name)) dup = 1;
    if (dup || ns >= 64) continue;
    snprintf(seen[ns++], IF_NAMESIZE, "%s", i->ifa_name);
    if (!first) buf_addc(b, ',');
    first = 0;
    buf_printf(b, "{\"name\":");
    jesc(b, i->ifa_name);
    buf_printf(b, ",\"up\":%s,\"addrs\":[", (i->ifa_flags & IFF_UP) && (i->ifa_flags & IFF_RUNNING) ? "true" : "false");
    int fa = 1;
    for (struct ifaddrs *j = ifa; j; j = j->ifa_next) {
      if (strcmp(j->ifa_name, i->ifa_name) || !j->ifa_addr) continue;
      int fam = j->ifa_addr->sa_family;
      if (fam != AF_INET && fam != AF_INET6) continue;
      char a[INET6_ADDRSTRLEN];
      const void *src = fam == AF_INET ? (const void *)&((struct sockaddr_in *)j->ifa_addr)->sin_addr : (const void *)&((struct sockaddr_in6 *)j->ifa_addr)->sin6_addr;
      inet_ntop(fam, src, a, sizeof a);
      buf_printf(b, "%s\"%s/%d\"", fa ? "" : ",", a, prefix_len(j->ifa_netmask));
      fa = 0;
    }
    buf_printf(b, "]}");
  }
  freeifaddrs(ifa);
  buf_printf(b, "]");
}

static void routes(struct buf *b) {
  buf_printf(b, ",\"routes\":[");
  FILE *f = fopen("/proc/net/route", "r");
  char line[512], dev[64];
  unsigned dst, gw, flags, mask;
  int first = 1;
  if (f && fgets(line, sizeof line, f)) {
    while (fgets(line, sizeof line, f)) {
      int ref, use, metric;
      if (sscanf(line, "%63s %x %x %x %d %d %d %x", dev, &dst, &gw, &flags, &ref, &use, &metric, &mask) != 8) continue;
      char d[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN];
      struct in_addr x = { .s_addr = dst }, y = { .s_addr = gw }, m = { .s_addr = mask };
      inet_ntop(AF_INET, &x, d, sizeof d);
      inet_ntop(AF_INET, &y, g, sizeof g);
      int bits = __builtin_popcount(m.s_addr);
      struct buf r = {0};
      if (!dst && !mask) buf_printf(&r, "default");
      else buf_printf(&r, "%s/%d", d, bits);
      if (flags & 2) buf_printf(&r, " via %s", g);
      buf_printf(&r, " dev %s", dev);
      if (metric) buf_printf(&r, " metric %d", metric);
      buf_addc(&r, 0);
      if (!first) buf_addc(b, ',');
      first = 0;
      jesc(b, r.p);
      buf_free(&r);
    }
  }
  if (f) fclose(f);
  buf_printf(b, "]");
}

static void listening(struct buf *b) {
  buf_printf(b, ",\"listening\":[");
  int first = 1;
  for (int v6 = 0; v6 < 2; v6++) {
    FILE *f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "r");
    char line[512];
    if (!f) continue;
    if (!fgets(line, sizeof line, f)) { fclose(f); continue; }
    while (fgets(line, sizeof line, f)) {
      char local[64];
      unsigned st;
      if (sscanf(line, "%*s %63s %*s %x", local, &st) != 2 || st != 0x0A) continue;
      char *colon = strchr(local, ':');
      if (!colon) continue;
      *colon = 0;
      unsigned port = (unsigned)strtoul(colon + 1, NULL, 16);
      char a[INET6_ADDRSTRLEN] = "?";
      if (!v6) { struct in_addr x = { .s_addr = (in_addr_t)strtoul(local, NULL, 16) }; inet_ntop(AF_INET, &x, a, sizeof a); }
      else if (strlen(local) == 32) {
        struct in6_addr x;
        for (int w = 0; w < 4; w++) { char h[9]; memcpy(h, local + w * 8, 8); h[8] = 0; uint32_t word = (uint32_t)strtoul(h, NULL, 16); memcpy(&x.s6_addr[w * 4], &word, 4); }
        inet_ntop(AF_INET6, &x, a, sizeof a);
      }
      buf_printf(b, "%s{\"proto\":\"%s\",\"addr\":\"%s\",\"port\":%u}", first ? "" : ",", v6 ? "tcp6" : "tcp", a, port);
      first = 0;
    }
    fclose(f);
  }
  buf_printf(b, "]");
}

void op_info(struct conn *c, uint32_t sid, const struct jv *r) {
  (void)r;
  struct buf b = {0};
  char host[256] = "", boot[64] = "";
  double up = 0;
  gethostname(host, sizeof host - 1);
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (f) { if (!fgets(boot, sizeof boot, f)) boot[0] = 0; fclose(f); boot[strcspn(boot, "\n")] = 0; }
  f = fopen("/proc/uptime", "r");
  if (f) { if (fscanf(f, "%lf", &up) != 1) up = 0; fclose(f); }
  buf_printf(&b, "{\"hostname\":");
  jesc(&b, host);
  buf_printf(&b, ",\"uptimeMs\":%lld,\"bootId\":", (long long)(up * 1000));
  jesc(&b, boot);
  buf_addc(&b, ',');
  ifaces(&b);
  routes(&b);
  listening(&b);
  buf_printf(&b, ",\"failed\":[");
  procs_failed_json(&b);
  buf_printf(&b, "]}");
  buf_addc(&b, 0);
  send_ok_c(c, sid, b.p);
  buf_free(&b);
}
