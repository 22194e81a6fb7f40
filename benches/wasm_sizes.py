#!/usr/bin/env python3
"""What the Worker's wasm is made of, by crate: function body sizes from the code section,
named by the name section of the unoptimized build (wasm-opt strips names from build/).

    cargo build --release --target wasm32-unknown-unknown --lib   # scripts/build.sh does it too
    python3 benches/wasm_sizes.py target/wasm32-unknown-unknown/release/sessiongate.wasm

Sizes are before wasm-opt (build/index_bg.wasm is smaller), so read them as shares.

    python3 benches/wasm_sizes.py <build with names>/index_bg.wasm <VS_JS_COMPILED file>

also sums what a first request made V8 compile (benches/vs_js.mjs with VS_JS_COMPILED) by the
same path segment, with V8's compile time, and lists its largest functions. The wasm must be
the one the trace was taken of (its function indices)."""
import sys, re, collections
data=open(sys.argv[1],'rb').read()
def leb(b,i):
    r=0;s=0
    while True:
        x=b[i];i+=1;r|=(x&0x7f)<<s;s+=7
        if x<0x80: return r,i
i=8; sections=[]
while i<len(data):
    sid=data[i]; i+=1; size,i=leb(data,i); sections.append((sid,i,size)); i+=size
imports_funcs=0; code=None; names={}; data_size=0
for sid,off,size in sections:
    if sid==2:
        j=off; n,j=leb(data,j)
        for _ in range(n):
            l,j=leb(data,j); j+=l; l,j=leb(data,j); j+=l
            kind=data[j]; j+=1
            if kind==0: _,j=leb(data,j); imports_funcs+=1
            elif kind==1: j+=1; fl,j=leb(data,j); _,j=leb(data,j); 
            elif kind==2:
                fl,j=leb(data,j); _,j=leb(data,j)
                if fl&1: _,j=leb(data,j)
            elif kind==3: j+=2
            elif kind==4: j+=1; _,j=leb(data,j)
    elif sid==10: code=(off,size)
    elif sid==11: data_size=size
    elif sid==0:
        j=off; l,j=leb(data,j); nm=data[j:j+l].decode(); j+=l
        if nm=='name':
            end=off+size
            while j<end:
                sub=data[j]; j+=1; ssz,j=leb(data,j); sj=j; j+=ssz
                if sub==1:
                    k=sj; n,k=leb(data,k)
                    for _ in range(n):
                        idx,k=leb(data,k); l,k=leb(data,k); names[idx]=data[k:k+l].decode('utf8','replace'); k+=l
off,size=code; j=off; n,j=leb(data,j)
total=0
for f in range(n):
    bs,j2=leb(data,j); body=bs; j=j2+bs
    total+=body
print('code',total,'bytes; data',data_size,'bytes; file',len(data),'bytes')

def segs(nm):
    if not nm.startswith('_ZN'): return [nm]
    i=3; out=[]
    while i<len(nm) and nm[i].isdigit():
        j=i
        while nm[j].isdigit(): j+=1
        l=int(nm[i:j]); out.append(nm[j:j+l]); i=j+l
    return out
def first_segment(nm):
    """The crate, or the type of an impl, of a mangled or a demangled name."""
    if '::' in nm and not nm.startswith('_ZN'):
        path=nm.lstrip('<&').removeprefix('mut ').split('::')
        # This crate by its two layers: the Room, the rest of the Worker, the core.
        if path[0]=='sessiongate' and path[1:2]==['edge']:
            return 'sessiongate::edge::room' if path[2:3]==['room'] else 'sessiongate::edge'
        return path[0].split('[')[0]
    s=segs(nm)
    first=s[0] if s else '?'
    if first.startswith('_$LT$'):
        first=first[5:]
        first=first.split('..')[0].split('$')[0]
    return first
agg2=collections.Counter()
j=off; n,j=leb(data,j)
for f in range(n):
    bs,j2=leb(data,j); j=j2+bs
    agg2[first_segment(names.get(imports_funcs+f,'?'))]+=bs
print('--- by first path segment (crate, or the type of an impl) ---')
for k,v in agg2.most_common(30): print(f'{v:8d} {100*v/total:5.1f}% {k}')

if len(sys.argv)>2:
    rows=[]
    for line in open(sys.argv[2]):
        idx,size,us=map(int,line.split())
        rows.append((size,us,names.get(idx,f'#{idx}')))
    size_sum=sum(r[0] for r in rows); us_sum=sum(r[1] for r in rows)
    print(f'--- compiled by the first request ({sys.argv[2]}): {len(rows)} functions, {size_sum} bytes, {us_sum/1000:.1f} ms ---')
    by=collections.Counter(); by_us=collections.Counter()
    for size,us,nm in rows:
        by[first_segment(nm)]+=size; by_us[first_segment(nm)]+=us
    for k,v in by.most_common(20): print(f'{v:8d} {100*v/size_sum:5.1f}% {by_us[k]/1000:6.2f} ms {k}')
    print('--- its largest functions ---')
    for size,us,nm in sorted(rows,reverse=True)[:15]: print(f'{size:8d} {us/1000:6.2f} ms {nm[:140]}')
