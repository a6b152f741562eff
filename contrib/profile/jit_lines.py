#!/usr/bin/env python3
"""Where xlb_balancer's nanoseconds go: a perf profile of one per-packet path,
split by kernel function (the JITed program, the map and clock helpers it
calls) and, inside the JITed program, by BPF source line.

No hardware counters are needed (VMs often have none): sample with the
software clock while `xlb-bench` runs one scenario, keeping a balancer of the
same build loaded meanwhile so its JIT line table can be read:

    perf record -g -e cpu-clock -F 20000 -o flow_hit.data -- \
        target/release/xlb-bench --only per-packet --scenario v4_tcp_flow_hit --calls 1000000
    target/release/xlb-bench --only per-packet --scenario floor_pass --calls 30000000 &
    contrib/profile/jit_lines.py flow_hit.data $(bpftool prog show name xlb_balancer | cut -d: -f1 | head -1)

Another program of the same kind (e.g. the essential-work floors
`xlb_floor_lb`, `xlb_floor_lb16` of the auxiliary object) with
`--program NAME` before the arguments:

    contrib/profile/jit_lines.py --program xlb_floor_lb lb.data

Samples are attributed to the leaf function; inside the JITed program to the
source line of the nearest preceding JIT line-info entry (bpf_prog_info's
jited_line_info; perf's own BPF annotation needs a libopcodes build). A
helper call's cost lands on the helper, its return on the calling line.
Both programs must come from the same object: the JIT layout is per build.
`--by-insn` (first argument) counts by line-info record instead and prints
each hot record's xlated instructions: which map lookup, which load.
"""
import collections, ctypes, re, struct, subprocess, sys
PROGRAM = "xlb_balancer"
def in_program(s):
    # JIT symbols are bpf_prog_<tag>_<name>; the exact suffix, so that
    # xlb_floor_lb does not match xlb_floor_lb16.
    return s.startswith("bpf_prog_") and s.endswith("_" + PROGRAM)
cats = {
 "JIT body": in_program,
 "hash-map key hash (htab_map_hash = jhash)": lambda s: s=="htab_map_hash",
 "hash-map bucket walk + key compare": lambda s: s in ("lookup_nulls_elem_raw","__htab_map_lookup_elem","memcmp","htab_lru_map_lookup_elem","__htab_lru_percpu_map_lookup_elem"),
 "clock (bpf_ktime_get_coarse_ns)": lambda s: s in ("bpf_ktime_get_coarse_ns","ktime_get_coarse_ts64","set_normalized_timespec64"),
 "bpf_xdp_adjust_head": lambda s: s.startswith("bpf_xdp_adjust_head"),
 "FIB lookup": lambda s: "fib" in s,
}
def by_function(f):
    out = subprocess.run(["perf","script","-i",f,"-F","ip,sym"],capture_output=True,text=True).stdout
    c = collections.Counter(); other=collections.Counter()
    for s in out.split("\n\n"):
        lines=[l.strip() for l in s.strip().split("\n") if l.strip()]
        if not lines: continue
        syms=[l.split(None,1)[1] if len(l.split(None,1))>1 else "?" for l in lines]
        if not any(x=="bpf_test_run" for x in syms): continue
        # samples whose chain passes through the program
        if not any(in_program(x) for x in syms): continue
        leaf=syms[0]
        for k,fn in cats.items():
            if fn(leaf): c[k]+=1; break
        else: other[leaf]+=1
    tot=sum(c.values())+sum(other.values())
    print(f"== {f}: {tot} samples in {PROGRAM} or its helpers")
    for k in cats:
        if c[k]: print(f"  {100*c[k]/tot:5.1f}%  {k}")
    for k,v in other.most_common(5): print(f"  {100*v/tot:5.1f}%  other: {k}")

libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf = 321
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_bpf, cmd, buf, 128)
    if r < 0: raise OSError(ctypes.get_errno(), f"bpf cmd {cmd}")
    return r
def prog_fd(pid): return bpf(13, struct.pack("III", pid, 0, 0))
INFO=256
def info(fd, fill=None):
    b = ctypes.create_string_buffer(fill or bytes(INFO), INFO)
    bpf(15, struct.pack("IIQ", fd, INFO, ctypes.addressof(b)))
    return b
def by_line(samples_file, prog_id, top):
    fd = prog_fd(prog_id)
    b = info(fd)
    nr_ksyms, = struct.unpack_from("I", b, 104)
    nr_line, = struct.unpack_from("I", b, 148)
    nr_jline, = struct.unpack_from("I", b, 168)
    line_rec, jline_rec = struct.unpack_from("II", b, 172)
    ks = (ctypes.c_uint64*nr_ksyms)(); li = ctypes.create_string_buffer(nr_line*line_rec); jl=(ctypes.c_uint64*nr_jline)()
    req = bytearray(INFO)
    struct.pack_into("II", req, 104, nr_ksyms, 0)
    struct.pack_into("Q", req, 112, ctypes.addressof(ks))
    struct.pack_into("I", req, 148, nr_line)
    struct.pack_into("Q", req, 152, ctypes.addressof(li))
    struct.pack_into("Q", req, 160, ctypes.addressof(jl))
    struct.pack_into("I", req, 168, nr_jline)
    struct.pack_into("III", req, 172, line_rec, jline_rec, 0)
    info(fd, bytes(req))
    ksyms = sorted(ks)
    insn_offs = [struct.unpack_from("I", li, i*line_rec)[0] for i in range(nr_line)]
    # xlated insn offset -> source text (from bpftool's linum dump)
    dump = subprocess.run(["bpftool","prog","dump","xlated","id",str(prog_id),"linum"],capture_output=True,text=True).stdout
    src_at = {}; cur=None
    for l in dump.splitlines():
        if l.startswith("; "): cur = l[2:]
        else:
            m = re.match(r"\s*(\d+):", l)
            if m and cur is not None: src_at[int(m.group(1))] = cur; cur=None
    # function index -> sorted [(offset in function, line index)]
    def func_of(addr):
        i = max(j for j,k in enumerate(ksyms) if k <= addr); return i, addr-ksyms[i]
    per_func = collections.defaultdict(list)
    for i,a in enumerate(jl):
        f, off = func_of(a); per_func[f].append((off, i))
    for f in per_func: per_func[f].sort()
    # perf samples: sym+off of the balancer's functions; ksym order = name tags order in kallsyms
    names = {}
    for l in open("/proc/kallsyms"):
        a, t, n = l.split()[:3]
        if int(a,16) in ks: names[n.split("[")[0]] = ksyms.index(int(a,16))
    out = subprocess.run(["perf","script","-G","-i",samples_file,"-F","ip,sym,symoff"],capture_output=True,text=True).stdout
    count = collections.Counter(); total=0
    for l in out.splitlines():
        m = re.search(r"(bpf_prog_[0-9a-f]+_" + re.escape(PROGRAM) + r")\+0x([0-9a-f]+)", l)
        if not m: continue
        # only the leaf frame: the first line of each sample block
        sym, off = m.group(1), int(m.group(2),16)
        if sym not in names: continue
        f = names[sym]; lst = per_func[f]
        idx = max((i for o,i in lst if o <= off), default=None, key=lambda i: jl[i])
        if idx is None: continue
        insn = insn_offs[idx]
        if BY_INSN:
            count[insn] += 1; total += 1
            continue
        text = src_at.get(insn, f"insn {insn}")
        text = re.sub(r"\s*\[file:.*/(\S+) line_num:(\d+).*\]", r"  [\1:\2]", text)
        count[text] += 1; total += 1
    print("samples:", total)
    if BY_INSN:
        # The xlated instructions from each hot line-info record's offset to
        # the next record's: what the samples on that record executed.
        xl = {}
        for l in dump.splitlines():
            m = re.match(r"\s*(\d+):", l)
            if m: xl[int(m.group(1))] = l.strip()
        starts = sorted(set(insn_offs))
        for k,v in count.most_common(top):
            nxt = next((o for o in starts if o > k), k + 1)
            print(f"{100*v/total:5.1f}%  insn {k}: {src_at.get(k, '')[:100]}")
            for o in range(k, min(nxt, k + 12)):
                if o in xl: print(f"          {xl[o][:110]}")
        return
    for k,v in count.most_common(top):
        print(f"{100*v/total:5.1f}%  {k[:150]}")
    byfile = collections.Counter()
    for k,v in count.items():
        m = re.search(r"\[(\S+):\d+\]$", k); byfile[m.group(1) if m else "?"] += v
    print("by file:", ", ".join(f"{f} {100*v/total:.0f}%" for f,v in byfile.most_common(12)))

if __name__ == "__main__":
    BY_INSN = len(sys.argv) > 1 and sys.argv[1] == "--by-insn"
    if BY_INSN:
        del sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[1] == "--program":
        PROGRAM = sys.argv[2]
        del sys.argv[1:3]
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    by_function(sys.argv[1])
    if len(sys.argv) > 2:
        by_line(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25)
