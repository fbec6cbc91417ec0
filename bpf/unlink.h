/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The record shared by the BPF side and tracer/src/event.rs.
 * The byte layout is fixed (no implicit padding); event.rs decodes it by
 * offset and a test there pins every offset below.
 */
#ifndef __UNLINK_H__
#define __UNLINK_H__

#define FNAME_MAX 512
#define COMM_LEN 16

/* flags */
#define EV_FNAME_TRUNCATED (1u << 0) /* the kernel's path was longer than FNAME_MAX - 1 */
#define EV_FNAME_FAULT (1u << 1)     /* the path could not be read at entry */
#define EV_NO_DFD (1u << 2)          /* the traced function has no dfd parameter */

struct unlink_event {
	__u64 ts_ns;      /*   0: entry time, CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 latency_ns; /*   8: return time minus entry time */
	__s64 ret;        /*  16: return value, sign-extended from the function's width */
	__u32 pid;        /*  24: thread group id */
	__u32 tid;        /*  28: thread id */
	__s32 dfd;        /*  32: directory fd argument */
	__u32 flags;      /*  36: EV_* */
	char comm[COMM_LEN];      /* 40 */
	char filename[FNAME_MAX]; /* 56 */
};                                /* 568 */

/* Counters kept in the BPF object's .bss, read by user space. */
struct unlink_counters {
	__u64 entries;          /* entry probes that passed the filter */
	__u64 returns;          /* return probes that found their entry */
	__u64 events;           /* events submitted to the ring buffer */
	__u64 dropped;          /* ring buffer full: event lost (entry and return were seen) */
	__u64 unpaired_returns; /* return probes with no stashed entry */
	__u64 stash_full;       /* entries that could not be stashed (in-flight map full) */
};

#endif /* __UNLINK_H__ */
