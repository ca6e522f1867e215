/* The operating system's floor for a message round trip: two processes ping-pong 100 bytes over loopback TCP (built and run by scripts/bench-floor.ts). */

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 100

static void exact(int fd, char *buf, int n, int reading) {
  int done = 0;
  while (done < n) {
    int r = reading ? (int)read(fd, buf + done, n - done) : (int)write(fd, buf + done, n - done);
    if (r <= 0) { perror(reading ? "read" : "write"); exit(1); }
    done += r;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  int one = 1;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 1) ||
      getsockname(listener, (struct sockaddr *)&addr, &len)) { perror("listen"); return 1; }
  pid_t child = fork();
  char buf[MSG] = {0};
  if (child == 0) {
    int fd = accept(listener, NULL, NULL);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < n; i++) { exact(fd, buf, MSG, 1); exact(fd, buf, MSG, 0); }
    return 0;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) { perror("connect"); return 1; }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double *rtt = malloc(sizeof(double) * n);
  struct timespec a, b;
  for (int i = 0; i < n; i++) {
    clock_gettime(CLOCK_MONOTONIC, &a);
    exact(fd, buf, MSG, 0);
    exact(fd, buf, MSG, 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    rtt[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
  }
  waitpid(child, NULL, 0);
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  double cpu_us = (self.ru_utime.tv_sec + kids.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_stime.tv_sec) * 1e6 +
                  (self.ru_utime.tv_usec + kids.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_stime.tv_usec);
  qsort(rtt, n, sizeof(double), cmp);
  /* One JSON line: the round trip's p50 and p99 in ms, and the CPU of both processes per round trip in µs. */
  printf("{\"p50\":%.4f,\"p99\":%.4f,\"cpuUs\":%.2f}\n", rtt[n / 2], rtt[(int)(n * 0.99)], cpu_us / n);
  return 0;
}
