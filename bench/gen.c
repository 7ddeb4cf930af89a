/*
 * Load generator for bench/run.mjs: replays datagram templates over UDP at a fixed rate.
 *
 *   gen HOST PORT RATE DURATION_MS TEMPLATE_FILE
 *
 * TEMPLATE_FILE: one datagram per line, "<timestamp delta ms>\t<datagram text>". A group of
 * lines is one call (attempt(s) then ApiCall); the generator sends whole groups, so every call is
 * complete. Groups are separated by an empty line. In each datagram:
 *   TTTTTTTTTTTTT            (13 chars) becomes the epoch-ms timestamp (group time + delta);
 *   RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR (36 chars) becomes "b<seq 15 digits>-<send CLOCK_MONOTONIC ns 19 digits>"
 *                            (unique per group; the receiver reads latency out of it).
 * Pacing: every 1 ms tick it sends what the rate owes so far, in sendmmsg batches of up to 256.
 * Prints one JSON line: {"sent":..,"groups":..,"elapsedMs":..,"sendErrors":..}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DG 64
#define MAX_LEN 4096
#define BATCH 256

struct tmpl { long delta; size_t len; int ts_off; int rid_off; char text[MAX_LEN]; int group_end; };

static struct tmpl T[MAX_DG];
static int nT = 0;

static long long now_ns(clockid_t c) { struct timespec t; clock_gettime(c, &t); return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: gen HOST PORT RATE DURATION_MS TEMPLATE_FILE\n"); return 2; }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  double rate = atof(argv[3]);
  long long duration_ns = atoll(argv[4]) * 1000000LL;
  FILE *f = fopen(argv[5], "r");
  if (!f) { perror("template"); return 2; }
  static char line[MAX_LEN + 64];
  while (fgets(line, sizeof line, f)) {
    size_t l = strlen(line);
    while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
    if (l == 0) { if (nT > 0) T[nT - 1].group_end = 1; continue; }
    if (nT >= MAX_DG) { fprintf(stderr, "too many templates\n"); return 2; }
    char *tab = strchr(line, '\t');
    if (!tab || strlen(tab + 1) >= MAX_LEN) { fprintf(stderr, "bad template line\n"); return 2; }
    struct tmpl *t = &T[nT++];
    t->delta = atol(line);
    strcpy(t->text, tab + 1);
    t->len = strlen(t->text);
    char *p = strstr(t->text, "TTTTTTTTTTTTT");
    t->ts_off = p ? (int)(p - t->text) : -1;
    p = strstr(t->text, "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR");
    t->rid_off = p ? (int)(p - t->text) : -1;
    t->group_end = 0;
  }
  fclose(f);
  if (nT == 0) { fprintf(stderr, "no templates\n"); return 2; }
  T[nT - 1].group_end = 1;

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
  if (inet_pton(AF_INET, host, &to.sin_addr) != 1) { fprintf(stderr, "bad host\n"); return 2; }
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 2; }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

  static char bufs[BATCH][MAX_LEN];
  static struct iovec iov[BATCH];
  static struct mmsghdr msgs[BATCH];
  long long sent = 0, groups = 0, errors = 0;
  int ti = 0; /* next template */
  long long start = now_ns(CLOCK_MONOTONIC);
  long long group_mono = 0, group_ms = 0;
  for (;;) {
    long long now = now_ns(CLOCK_MONOTONIC);
    long long el = now - start;
    if (el >= duration_ns) break;
    long long owed = (long long)(rate * (double)el / 1e9) - sent;
    while (owed > 0) {
      int n = 0;
      /* fill a batch with whole groups */
      while (n < BATCH) {
        if (ti == 0 || T[ti - 1].group_end) {
          /* a new group: take its size into account so groups are never split */
          int gs = 0;
          while (!T[ti + gs].group_end) gs++;
          gs++;
          if (n + gs > BATCH || (n > 0 && n + gs > owed)) break;
          group_mono = now_ns(CLOCK_MONOTONIC);
          group_ms = now_ns(CLOCK_REALTIME) / 1000000LL;
          groups++;
        }
        struct tmpl *t = &T[ti];
        memcpy(bufs[n], t->text, t->len);
        if (t->ts_off >= 0) {
          char ts[32];
          snprintf(ts, sizeof ts, "%013lld", group_ms + t->delta);
          memcpy(bufs[n] + t->ts_off, ts, 13);
        }
        if (t->rid_off >= 0) {
          char rid[64];
          snprintf(rid, sizeof rid, "b%015lld-%019lld", groups, group_mono);
          memcpy(bufs[n] + t->rid_off, rid, 36);
        }
        iov[n].iov_base = bufs[n];
        iov[n].iov_len = t->len;
        memset(&msgs[n].msg_hdr, 0, sizeof msgs[n].msg_hdr);
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
        n++;
        ti = (ti + 1) % nT;
      }
      if (n == 0) break;
      int off = 0;
      while (off < n) {
        int r = sendmmsg(fd, msgs + off, n - off, 0);
        if (r < 0) { if (errno == EINTR) continue; errors += n - off; break; }
        off += r;
      }
      sent += off;
      owed -= n;
      if (off < n) break;
    }
    /* sleep to the next 1 ms tick */
    long long next = start + ((el / 1000000LL) + 1) * 1000000LL;
    struct timespec ts = { .tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL };
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  }
  long long el = now_ns(CLOCK_MONOTONIC) - start;
  printf("{\"sent\":%lld,\"groups\":%lld,\"elapsedMs\":%.3f,\"sendErrors\":%lld}\n", sent, groups, el / 1e6, errors);
  return 0;
}
