#!/usr/bin/env python3
"""Where one end-to-end case's CPU time goes in the balancer namespace: a
`perf record -a -g` profile of `xlb-bench --only e2e`, cut to the NAPI
thread that runs PROGRAM (the thread with most of its samples) during the
case's first run (UDP: from its first sample to the first gap of over
0.3 s), split by leaf function category and listed by leaf function:

    perf record -a -g -F 5000 -o e2e.data -- \
        target/release/xlb-bench --only e2e --e2e-rounds 1
    contrib/profile/e2e_napi.py e2e.data xlb_floor_e2e   # the lb_floor case
    contrib/profile/e2e_napi.py e2e.data xlb_fwd_floor   # the xdp_floor case

(`xlb_balancer` runs in several cases in a row: its first run spans the
ipip, GUE, l2-dsr and nat UDP cases.)"""
import collections, subprocess, sys
data, prog = sys.argv[1], sys.argv[2]
out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,time,ip,sym"],
                     capture_output=True, text=True).stdout
samples = []
for block in out.split("\n\n"):
    lines = [l for l in block.strip().split("\n") if l.strip()]
    if not lines:
        continue
    head = lines[0].split()
    comm = head[0]
    try:
        tid = int(head[1])
        t = float(head[2].rstrip(":"))
    except (IndexError, ValueError):
        continue
    syms = []
    for l in lines[1:]:
        p = l.strip().split(None, 1)
        syms.append(p[1] if len(p) > 1 else "?")
    if syms:  # a sample without a call chain says nothing here
        samples.append((tid, t, syms))
has = lambda s: any(x.startswith("bpf_prog_") and x.endswith("_" + prog) for x in s[2])
tids = collections.Counter(s[0] for s in samples if has(s))
if not tids:
    sys.exit(f"no sample of {prog}")
napi_tid = tids.most_common(1)[0][0]
napi = [s for s in samples if s[0] == napi_tid]
hit = sorted(s[1] for s in napi if has(s))
# The first run of the case (UDP): up to the first gap of over 0.3 s.
t0 = t1 = hit[0]
for t in hit[1:]:
    if t - t1 > 0.3:
        break
    t1 = t
win = [s for s in napi if t0 <= s[1] <= t1]
def cat(leaf, syms):
    if leaf.startswith("bpf_prog_"):
        return "XDP program body (JITed)"
    if leaf in ("htab_map_hash",):
        return "connection lookup: jhash"
    if "htab" in leaf or leaf in ("lookup_nulls_elem_raw", "memcmp", "bpf_lru_pop_free", "htab_lru_map_update_elem"):
        return "connection lookup: bucket walk, compare, LRU"
    if "adjust_head" in leaf:
        return "bpf_xdp_adjust_head"
    if any("xdp_do_redirect" in x or "dev_map" in x or "bq_" in x or "veth_xdp_xmit" in x or "xdp_do_flush" in x for x in syms):
        return "redirect + transmit to the egress veth"
    if "page_pool" in leaf or "alloc" in leaf or "free" in leaf:
        return "page and buffer allocation/free"
    if leaf.startswith("veth") or any(x.startswith("veth_poll") for x in syms[:3]):
        return "veth receive (NAPI poll)"
    return "other kernel"
c = collections.Counter(cat(s[2][0], s[2]) for s in win)
leaves = collections.Counter(s[2][0] for s in win)
n = len(win)
print(f"{prog}: {n} samples of the balancer namespace's NAPI thread, {t1 - t0:.2f} s")
for k, v in c.most_common():
    print(f"  {100 * v / n:5.1f}%  {k}")
print("top leaf functions:")
for k, v in leaves.most_common(15):
    print(f"  {100 * v / n:5.1f}%  {k}")
