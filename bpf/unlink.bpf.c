// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The unlink tracer's BPF side.
 *
 * Entry (kprobe or fentry) stashes pid, tid, comm, dfd and the path per
 * thread; the return (kretprobe or fexit) joins it with the return value
 * and latency into one event sent through a ring buffer. The consumer is
 * woken per batch (wakeup_bytes), not per event.
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
const volatile bool ret_is_int = true; /* the traced function returns a 32-bit int */
const volatile __u32 dfd_arg = 0;      /* parameter index of dfd, NO_ARG if none */
const volatile __u32 name_arg = 1;     /* parameter index of struct filename * */
/* Wake the consumer only once this much is waiting (it also drains on its
 * own poll timeout): one wakeup per batch instead of one per event. */
const volatile __u64 wakeup_bytes = 64 * 1024;

#define NO_ARG 0xff
#define MAX_INFLIGHT 10240

struct unlink_counters counters = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, struct unlink_event);
} inflight SEC(".maps");

/* An event is larger than the BPF stack: it is built in this per-CPU slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unlink_event);
} scratch SEC(".maps");

static __always_inline __s64 fix_ret(__u64 raw)
{
	return ret_is_int ? (__s64)(__s32)raw : (__s64)raw;
}

static __always_inline bool wanted(__u64 id)
{
	return filter_tgid == 0 || (__u32)(id >> 32) == filter_tgid;
}

static __always_inline int on_entry(__s64 dfd, const struct filename *fname)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct unlink_event *e;
	const char *path;
	long len;
	char next = 0;

	if (!wanted(id))
		return 0;
	__sync_fetch_and_add(&counters.entries, 1);

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->latency_ns = 0;
	e->ret = 0;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->dfd = dfd_arg == NO_ARG ? 0 : (__s32)dfd;
	e->flags = dfd_arg == NO_ARG ? EV_NO_DFD : 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	path = BPF_CORE_READ(fname, name);
	len = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), path);
	if (len < 0) {
		e->filename[0] = '\0';
		e->flags |= EV_FNAME_FAULT;
	} else if (len == sizeof(e->filename)) {
		/* Full buffer: truncated unless the kernel string ends right here. */
		bpf_probe_read_kernel(&next, 1, path + sizeof(e->filename) - 1);
		if (next != '\0')
			e->flags |= EV_FNAME_TRUNCATED;
	}

	if (bpf_map_update_elem(&inflight, &id, e, BPF_ANY) != 0)
		__sync_fetch_and_add(&counters.stash_full, 1);
	return 0;
}

static __always_inline int on_return(__u64 raw_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct unlink_event *stashed, *e;

	if (!wanted(id))
		return 0;
	stashed = bpf_map_lookup_elem(&inflight, &id);
	if (!stashed) {
		__sync_fetch_and_add(&counters.unpaired_returns, 1);
		return 0;
	}
	__sync_fetch_and_add(&counters.returns, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&counters.dropped, 1);
		bpf_map_delete_elem(&inflight, &id);
		return 0;
	}
	__builtin_memcpy(e, stashed, sizeof(*e));
	e->latency_ns = bpf_ktime_get_ns() - e->ts_ns;
	e->ret = fix_ret(raw_ret);
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	__sync_fetch_and_add(&counters.events, 1);
	bpf_map_delete_elem(&inflight, &id);
	return 0;
}

/*
 * Register reads go through bpf_probe_read_kernel (the _CORE variants):
 * clang folds a switch over direct ctx loads into one load at a computed
 * offset, which the verifier rejects ("dereference of modified ctx ptr").
 */
static __always_inline __u64 kprobe_arg(struct pt_regs *ctx, __u32 idx)
{
	switch (idx) {
	case 0:
		return PT_REGS_PARM1_CORE(ctx);
	case 1:
		return PT_REGS_PARM2_CORE(ctx);
	case 2:
		return PT_REGS_PARM3_CORE(ctx);
	case 3:
		return PT_REGS_PARM4_CORE(ctx);
	default:
		return 0;
	}
}

SEC("kprobe")
int kprobe_unlink(struct pt_regs *ctx)
{
	return on_entry((__s64)kprobe_arg(ctx, dfd_arg),
			(const struct filename *)kprobe_arg(ctx, name_arg));
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
	const struct filename *fname = (const struct filename *)kprobe_arg(ctx, name_arg);
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
