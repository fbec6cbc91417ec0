// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The unlink tracer's BPF side.
 *
 * Entry (kprobe or fentry) sends pid, tid, comm, dfd and the path as one
 * ring buffer record; the return (kretprobe or fexit) of the same thread
 * sends the return value as a second, small one. User space pairs them per
 * thread (records of one thread reach the ring in the order they were
 * made). Nothing is stashed in a map and nothing is copied twice: the path
 * is read straight into the ring. The consumer is woken per batch
 * (wakeup_bytes), not per record.
 *
 * When the ring is full a record is lost and counted; a return whose entry
 * record was lost sends nothing (it is counted as dropped), which a small
 * per-thread map remembers only while such losses are outstanding.
 *
 * printk_entry/printk_exit are the classic tutorial, kept word for word
 * apart from the sign of ret.
 *
 * Which parameter holds the dfd and the struct filename *, how many
 * parameters the function has, and whether it returns int or long are
 * read from the running kernel's BTF by user space and written to
 * .rodata before load.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "unlink.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 filter_tgid = 0;  /* 0: every process */
/* Only threads whose comm is this (NUL-terminated); "" : every command. */
const volatile char filter_comm[COMM_LEN] = {};
const volatile bool ret_is_int = true; /* the traced function returns a 32-bit int */
const volatile __u32 dfd_arg = 0;      /* parameter index of dfd, NO_ARG if none */
const volatile __u32 name_arg = 1;     /* parameter index of struct filename * */
/* Wake the consumer only once this much is waiting (it also drains on its
 * own poll timeout): one wakeup per batch instead of one per record. */
const volatile __u64 wakeup_bytes = 1024 * 1024;

#define NO_ARG 0xff
#define MAX_LOST_THREADS 10240

struct unlink_counters counters = {};
/* Never written: these put the record layouts into the skeleton's types
 * (`skel::types`), from which tracer/src/event.rs takes every offset it
 * decodes at, so the two cannot drift apart (584 bytes of .bss, read by
 * nobody). */
struct entry_rec layout_entry_rec = {};
struct return_rec layout_return_rec = {};
/* Threads whose entry record was lost and whose return has not come yet. */
__u64 lost_pending = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

/* tid -> 1: this thread's entry record was lost (see lost_pending). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOST_THREADS);
	__type(key, __u32);
	__type(value, __u8);
} lost SEC(".maps");

/* Keeps clang from folding a value back into the load that produced it. */
#define opaque(x) asm volatile("" : "+r"(x))

static __always_inline __s64 fix_ret(__u64 raw)
{
	return ret_is_int ? (__s64)(__s32)raw : (__s64)raw;
}

static __always_inline bool wanted(__u64 id)
{
	char comm[COMM_LEN];

	if (filter_tgid != 0 && (__u32)(id >> 32) != filter_tgid)
		return false;
	if (!filter_comm[0])
		return true;
	/* A constant in .rodata: without --comm the verifier drops this. */
	bpf_get_current_comm(comm, sizeof(comm));
#pragma unroll
	for (int i = 0; i < COMM_LEN; i++) {
		if (comm[i] != filter_comm[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

static __always_inline __u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP :
									      BPF_RB_NO_WAKEUP;
}

#define PATH_PEEK 64
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Reads the path into buf (FNAME_MAX bytes) and returns what
 * bpf_probe_read_kernel_str would: the bytes written, NUL included, or < 0.
 *
 * The _str helper copies a byte at a time; most paths are short, so their
 * first PATH_PEEK bytes are copied a word at a time instead and searched
 * for the NUL here, and only a longer path is read on by the _str helper.
 * The bytes after the NUL are whatever followed the path in kernel memory:
 * user space reads only the first `len`.
 */
static __always_inline long read_path(char *buf, const char *path)
{
	const __u64 *words = (const __u64 *)buf;
	long len;

	if (bpf_probe_read_kernel(buf, PATH_PEEK, path) != 0)
		/* The peek crossed into unreadable memory: read it exactly. */
		return bpf_probe_read_kernel_str(buf, FNAME_MAX, path);

#pragma unroll
	for (int i = 0; i < PATH_PEEK / 8; i++) {
		__u64 w = words[i];

		/* Nonzero iff some byte of w is zero (both arches are little-endian). */
		if ((w - ONES) & ~w & HIGHS) {
#pragma unroll
			for (int j = 0; j < 8; j++)
				if (((w >> (8 * j)) & 0xff) == 0)
					return i * 8 + j + 1;
		}
	}
	len = bpf_probe_read_kernel_str(buf + PATH_PEEK, FNAME_MAX - PATH_PEEK, path + PATH_PEEK);
	return len < 0 ? len : PATH_PEEK + len;
}

static __always_inline int on_entry(__s64 dfd, const struct filename *fname)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct entry_rec *e;
	const char *path;
	long len;
	char next = 0;
	__u8 one = 1;

	if (!wanted(id))
		return 0;
	__sync_fetch_and_add(&counters.entries, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&counters.lost_entries, 1);
		/* Tell this thread's return not to send a record. */
		long err = bpf_map_update_elem(&lost, &tid, &one, BPF_NOEXIST);
		if (err == 0)
			__sync_fetch_and_add(&lost_pending, 1);
		else if (err != -17 /* EEXIST: a stale mark, reused */)
			__sync_fetch_and_add(&counters.lost_untracked, 1);
		return 0;
	}
	/* A mark left by a lost entry whose return never came is stale now. */
	if (lost_pending && bpf_map_delete_elem(&lost, &tid) == 0)
		__sync_fetch_and_add(&lost_pending, -1);

	e->kind = REC_ENTRY;
	e->tid = tid;
	e->pid = id >> 32;
	e->dfd = dfd_arg == NO_ARG ? 0 : (__s32)dfd;
	e->flags = dfd_arg == NO_ARG ? EV_NO_DFD : 0;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	path = BPF_CORE_READ(fname, name);
	len = read_path(e->filename, path);
	if (len < 0) {
		len = 0;
		e->flags |= EV_FNAME_FAULT;
	} else if (len == sizeof(e->filename)) {
		/* Full buffer: truncated unless the kernel string ends right here. */
		bpf_probe_read_kernel(&next, 1, path + sizeof(e->filename) - 1);
		if (next != '\0')
			e->flags |= EV_FNAME_TRUNCATED;
	}
	e->name_len = len;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

static __always_inline int on_return(__u64 raw_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct return_rec *r;

	if (!wanted(id))
		return 0;
	__sync_fetch_and_add(&counters.returns, 1);

	if (lost_pending && bpf_map_delete_elem(&lost, &tid) == 0) {
		__sync_fetch_and_add(&lost_pending, -1);
		__sync_fetch_and_add(&counters.returns_of_lost, 1);
		return 0;
	}

	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&counters.lost_returns, 1);
		return 0;
	}
	r->kind = REC_RETURN;
	r->tid = tid;
	r->ts_ns = bpf_ktime_get_ns();
	r->ret = fix_ret(raw_ret);
	bpf_ringbuf_submit(r, wakeup_flag());
	return 0;
}

/*
 * Registers are read straight from the context, every candidate at its
 * constant offset, and then one is picked: a switch over the loads would be
 * folded by clang into one load at a computed offset, which the verifier
 * rejects ("dereference of modified ctx ptr"). The pick is on .rodata
 * constants, so the verifier drops the branches not taken.
 */
static __always_inline __u64 pick_arg(__u32 idx, __u64 a0, __u64 a1, __u64 a2, __u64 a3)
{
	opaque(a0);
	opaque(a1);
	opaque(a2);
	opaque(a3);
	switch (idx) {
	case 0:
		return a0;
	case 1:
		return a1;
	case 2:
		return a2;
	case 3:
		return a3;
	default:
		return 0;
	}
}

#define KPROBE_ARG(ctx, idx)                                                                       \
	pick_arg(idx, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx))

SEC("kprobe")
int kprobe_unlink(struct pt_regs *ctx)
{
	return on_entry((__s64)KPROBE_ARG(ctx, dfd_arg),
			(const struct filename *)KPROBE_ARG(ctx, name_arg));
}

SEC("kretprobe")
int kretprobe_unlink(struct pt_regs *ctx)
{
	return on_return(PT_REGS_RC(ctx));
}

/*
 * Trampoline contexts are u64 arrays and the verifier needs constant
 * offsets, so these two are written for the one layout every kernel so far
 * has, (int dfd, struct filename *name); user space refuses fentry mode for
 * any other prototype.
 */
SEC("fentry")
int fentry_unlink(__u64 *ctx)
{
	return on_entry((__s64)(__s32)ctx[0], (const struct filename *)ctx[1]);
}

SEC("fexit")
int fexit_unlink(__u64 *ctx)
{
	return on_return(ctx[2]);
}

/* The tutorial, as written, with ret read at the function's real width. */
SEC("kprobe")
int printk_entry(struct pt_regs *ctx)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	const struct filename *fname = (const struct filename *)KPROBE_ARG(ctx, name_arg);
	const char *filename = BPF_CORE_READ(fname, name);

	bpf_printk("KPROBE ENTRY pid = %d, filename = %s\n", pid, filename);
	return 0;
}

SEC("kretprobe")
int printk_exit(struct pt_regs *ctx)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	long ret = fix_ret(PT_REGS_RC(ctx));

	bpf_printk("KPROBE EXIT: pid = %d, ret = %ld\n", pid, ret);
	return 0;
}

/* Programs that do nothing: the cost of the attach mechanism alone. */
SEC("kprobe")
int empty_kprobe(struct pt_regs *ctx)
{
	return 0;
}

SEC("kretprobe")
int empty_kretprobe(struct pt_regs *ctx)
{
	return 0;
}
