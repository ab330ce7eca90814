/*
 * SVP VL3 load generator for bench/svp-lookup: the SVP counterpart of redis-benchmark,
 * written like it (C, one thread, epoll) so that the generator's own cost is comparable
 * on both sides of the comparison. run.ts compiles and runs it.
 *
 *   svp-loadgen PORT CONNS DEPTH MAPPINGS WARMUP_MS DURATION_MS [SERVER_PID]
 *
 * Method, as redis-benchmark -c CONNS -P DEPTH -r MAPPINGS: each connection writes a batch
 * of DEPTH VL3_REQs (ids 0..DEPTH-1) for keys drawn uniformly at random over the bench
 * fleet's MAPPINGS NICs (fresh keys for every batch, all hits), waits for all DEPTH
 * replies, and writes the next batch. A request's latency is from its batch's write to
 * the batch's first read event, and every reply in the batch records that value (what
 * redis-benchmark does). Every reply is checked: op, id, CRC, status OK and the NIC's MAC.
 *
 * Prints one JSON line: requests and seconds of the measured window (after WARMUP_MS),
 * p50/p99 latency in ms, errors, and the CPU time this process and (given SERVER_PID)
 * the server used in that window.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define HDR 16
#define REQ_BYTES (HDR + 24)
#define ACK_BYTES (HDR + 28)
#define OP_VL3_REQ 5
#define OP_VL3_ACK 6
#define HISTO_MAX_US 200000
#define MAX_DEPTH 4096

struct conn {
	int fd;
	unsigned char *wbuf;
	size_t wlen, woff;
	unsigned char *rbuf;
	size_t rlen;
	uint32_t *nic;        /* NIC index asked for by id */
	unsigned char *seen;  /* id answered in this batch */
	int pending;
	int64_t start_ns;
	int64_t latency_ns;   /* -1 until the batch's first read event */
};

static uint32_t crc_table[256];
static uint64_t histo[HISTO_MAX_US + 1];
static uint64_t recorded;
static uint64_t errors;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
	uint32_t c = ~crc;
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

/* SVP CRC: header with the crc field zeroed, then the payload. */
static uint32_t frame_crc(const unsigned char *f, size_t payload)
{
	static const unsigned char zero[4];
	uint32_t c = crc_update(0, f, 12);
	c = crc_update(c, zero, 4);
	return crc_update(c, f + HDR, payload);
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time (user + system) of a process in microseconds, from /proc; -1 if unreadable. */
static int64_t proc_cpu_us(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return -1;
	unsigned long long utime = 0, stime = 0;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
		return -1;
	return (int64_t)((utime + stime) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static int64_t self_cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* The bench fleet (shape.ts): NIC i has IPv4 10.0.0.0 + i on vnet 10000 + i % 16, and MAC
 * 02 followed by the low 40 bits of i. */
static void fill_batch(struct conn *c, int depth, uint32_t mappings)
{
	for (int id = 0; id < depth; id++) {
		uint32_t i = (uint32_t)(next_rand() % mappings);
		unsigned char *f = c->wbuf + (size_t)id * REQ_BYTES;
		memset(f, 0, REQ_BYTES);
		f[1] = 1;
		f[3] = OP_VL3_REQ;
		put32(f + 4, 24);
		put32(f + 8, (uint32_t)id);
		f[HDR + 10] = 0xff;
		f[HDR + 11] = 0xff;
		put32(f + HDR + 12, 0x0a000000u + i);
		put32(f + HDR + 16, 1);
		put32(f + HDR + 20, 10000 + i % 16);
		put32(f + 12, frame_crc(f, 24));
		c->nic[id] = i;
		c->seen[id] = 0;
	}
	c->wlen = (size_t)depth * REQ_BYTES;
	c->woff = 0;
	c->pending = depth;
	c->latency_ns = -1;
}

static int check_reply(struct conn *c, const unsigned char *f, int depth)
{
	if (f[0] != 0 || f[1] != 1 || f[2] != 0 || f[3] != OP_VL3_ACK || get32(f + 4) != 28)
		return 0;
	if (get32(f + 12) != frame_crc(f, 28))
		return 0;
	uint32_t id = get32(f + 8);
	if (id >= (uint32_t)depth || c->seen[id])
		return 0;
	c->seen[id] = 1;
	if (get32(f + HDR) != 0)
		return 0;
	uint64_t i = c->nic[id];
	const unsigned char *mac = f + HDR + 4;
	return mac[0] == 0x02 && mac[1] == ((i >> 32) & 0xff) && mac[2] == ((i >> 24) & 0xff) &&
	       mac[3] == ((i >> 16) & 0xff) && mac[4] == ((i >> 8) & 0xff) && mac[5] == (i & 0xff);
}

static int fcntl_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void die(const char *what)
{
	fprintf(stderr, "svp-loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Writes what is left of the batch; 0 when all of it is out. */
static int flush_write(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 1;
			die("write");
		}
		c->woff += (size_t)n;
	}
	return 0;
}

static double pct_ms(double p)
{
	uint64_t want = (uint64_t)((p / 100.0) * (double)recorded + 0.999999);
	uint64_t acc = 0;
	for (int i = 0; i <= HISTO_MAX_US; i++) {
		acc += histo[i];
		if (acc >= want && want > 0)
			return i / 1000.0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: svp-loadgen PORT CONNS DEPTH MAPPINGS WARMUP_MS DURATION_MS [SERVER_PID]\n");
		return 2;
	}
	int port = atoi(argv[1]), nconns = atoi(argv[2]), depth = atoi(argv[3]);
	long mappings = atol(argv[4]), warmup_ms = atol(argv[5]), duration_ms = atol(argv[6]);
	long server_pid = argc > 7 ? atol(argv[7]) : 0;
	if (port <= 0 || nconns <= 0 || depth <= 0 || depth > MAX_DEPTH || mappings <= 0 || duration_ms <= 0) {
		fprintf(stderr, "svp-loadgen: bad arguments\n");
		return 2;
	}
	crc_init();
	rng ^= (uint64_t)now_ns();

	int ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	struct conn *conns = calloc((size_t)nconns, sizeof *conns);
	if (!conns)
		die("calloc");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int k = 0; k < nconns; k++) {
		struct conn *c = &conns[k];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0)
			die("socket");
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			die("connect");
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (fcntl_nonblock(c->fd) < 0)
			die("fcntl");
		c->wbuf = malloc((size_t)depth * REQ_BYTES);
		c->rbuf = malloc((size_t)depth * ACK_BYTES + 65536);
		c->nic = malloc((size_t)depth * sizeof *c->nic);
		c->seen = malloc((size_t)depth);
		if (!c->wbuf || !c->rbuf || !c->nic || !c->seen)
			die("malloc");
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			die("epoll_ctl");
	}

	int64_t t_start = now_ns();
	int64_t t_rec = t_start + (int64_t)warmup_ms * 1000000;
	int64_t t_end = t_rec + (int64_t)duration_ms * 1000000;
	int64_t cpu0 = 0, srv0 = -1, cpu1 = 0, srv1 = -1, t_rec_real = 0, t_end_real = 0;
	int recording = 0, stopping = 0, running = nconns;

	for (int k = 0; k < nconns; k++) {
		struct conn *c = &conns[k];
		fill_batch(c, depth, (uint32_t)mappings);
		c->start_ns = now_ns();
		if (flush_write(c)) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}

	struct epoll_event events[256];
	while (running > 0) {
		int n = epoll_wait(ep, events, 256, 10);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		int64_t now = now_ns();
		if (!recording && !stopping && now >= t_rec) {
			recording = 1;
			t_rec_real = now;
			cpu0 = self_cpu_us();
			if (server_pid > 0)
				srv0 = proc_cpu_us(server_pid);
		}
		if (recording && now >= t_end) {
			recording = 0;
			stopping = 1;
			t_end_real = now;
			cpu1 = self_cpu_us();
			if (server_pid > 0)
				srv1 = proc_cpu_us(server_pid);
		}
		if (stopping && now >= t_end + 5000000000LL) {
			fprintf(stderr, "svp-loadgen: %d connections still waiting for replies 5 s after the end\n", running);
			errors++;
			break;
		}
		for (int e = 0; e < n; e++) {
			struct conn *c = events[e].data.ptr;
			if (events[e].events & EPOLLOUT) {
				if (flush_write(c) == 0) {
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			if (c->latency_ns < 0)
				c->latency_ns = now - c->start_ns;
			ssize_t r = read(c->fd, c->rbuf + c->rlen, (size_t)depth * ACK_BYTES + 65536 - c->rlen);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				die("read");
			}
			if (r == 0) {
				fprintf(stderr, "svp-loadgen: the server closed a connection\n");
				exit(1);
			}
			c->rlen += (size_t)r;
			size_t off = 0;
			while (c->rlen - off >= ACK_BYTES && c->pending > 0) {
				if (!check_reply(c, c->rbuf + off, depth))
					errors++;
				if (recording) {
					int64_t us = c->latency_ns / 1000;
					histo[us > HISTO_MAX_US ? HISTO_MAX_US : us]++;
					recorded++;
				}
				c->pending--;
				off += ACK_BYTES;
			}
			memmove(c->rbuf, c->rbuf + off, c->rlen - off);
			c->rlen -= off;
			if (c->pending > 0)
				continue;
			if (c->rlen > 0)
				errors++; /* bytes beyond the batch's replies */
			if (stopping) {
				running--;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			fill_batch(c, depth, (uint32_t)mappings);
			c->start_ns = now_ns();
			if (flush_write(c)) {
				struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
		}
	}
	for (int k = 0; k < nconns; k++)
		close(conns[k].fd);
	double seconds = (double)(t_end_real - t_rec_real) / 1e9;
	printf("{\"requests\":%llu,\"seconds\":%.6f,\"p50ms\":%.3f,\"p99ms\":%.3f,\"errors\":%llu,"
	       "\"clientCpuMicros\":%lld,\"serverCpuMicros\":%lld}\n",
	       (unsigned long long)recorded, seconds, pct_ms(50), pct_ms(99), (unsigned long long)errors,
	       (long long)(cpu1 - cpu0), (long long)(srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1));
	return 0;
}
