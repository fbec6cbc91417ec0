/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The records shared by the BPF side and tracer/src/event.rs.
 * Byte layouts are fixed (no implicit padding); event.rs decodes them by
 * offset and a test there pins every offset below.
 */
#ifndef __UNLINK_H__
#define __UNLINK_H__

#define FNAME_MAX 512
#define COMM_LEN 16

/* record kinds: the first u32 of every ring buffer record */
#define REC_ENTRY 1
#define REC_RETURN 2

/* entry flags */
#define EV_FNAME_TRUNCATED (1u << 0) /* the kernel's path was longer than FNAME_MAX - 1 */
#define EV_FNAME_FAULT (1u << 1)     /* the path could not be read at entry */
#define EV_NO_DFD (1u << 2)          /* the traced function has no dfd parameter */

/* Sent by the entry probe. Only filename[0 .. name_len) is written: the
 * rest of the reserved record is whatever the ring held before. */
struct entry_rec {
	__u32 kind;               /*  0: REC_ENTRY */
	__u32 tid;                /*  4: thread id */
	__u32 pid;                /*  8: thread group id */
	__s32 dfd;                /* 12: directory fd argument */
	__u64 ts_ns;              /* 16: entry time, CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u32 flags;              /* 24: EV_* */
	__s32 name_len;           /* 28: bytes of filename written, NUL included */
	char comm[COMM_LEN];      /* 32 */
	char filename[FNAME_MAX]; /* 48 */
};                                /* 560 */

/* Sent by the return probe of the same thread, after its entry_rec. */
struct return_rec {
	__u32 kind;  /*  0: REC_RETURN */
	__u32 tid;   /*  4 */
	__u64 ts_ns; /*  8: return time */
	__s64 ret;   /* 16: return value, sign-extended from the function's width */
};                   /* 24 */

/*
 * Counters kept in the BPF object's .bss, read by user space. The hot path
 * touches only `entries` and `returns`; the rest move when the ring buffer
 * is full.
 */
struct unlink_counters {
	__u64 entries;         /* entry probes that passed the filter */
	__u64 returns;         /* return probes that passed the filter */
	__u64 lost_entries;    /* entry records the full ring could not take */
	__u64 lost_returns;    /* return records the full ring could not take (their entry was sent) */
	__u64 returns_of_lost; /* returns whose entry record was lost: no record sent */
	__u64 lost_untracked;  /* lost entries that could not be remembered for their return */
};

#endif /* __UNLINK_H__ */
