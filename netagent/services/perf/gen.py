import sys
# usage: gen.py layout n natout outdir
layout, n, natout, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1', sys.argv[4]
T = 'ip skiff'
def cip(i): return '10.96.%d.%d' % (((i + 16) >> 8) & 255, (i + 16) & 255)
def ep(i, e):
    v = (10 << 24) | (244 << 16) | (i * 5 + e + 1)
    return '%d.%d.%d.%d' % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)
L = []
a = L.append
a('add table ' + T)
a('add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }' % T)
a('add map %s service-nodeports { type inet_proto . inet_service : verdict ; }' % T)
a('add map %s no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }' % T)
a('add map %s no-endpoint-nodeports { type inet_proto . inet_service : verdict ; }' % T)
if layout != 'L0':
    a('add set %s hairpin { type ipv4_addr . ipv4_addr ; }' % T)
a('add chain %s nat-prerouting { type nat hook prerouting priority dstnat ; }' % T)
if natout: a('add chain %s nat-output { type nat hook output priority -100 ; }' % T)
for c, h in (('filter-input', 'input'), ('filter-forward', 'forward'), ('filter-output', 'output')):
    a('add chain %s %s { type filter hook %s priority filter ; }' % (T, c, h))
if layout != 'L0':
    a('add chain %s nat-postrouting-hairpin { type nat hook postrouting priority srcnat - 1 ; }' % T)
for c in ('services', 'reject-chain', 'service-endpoints-check', 'nodeport-endpoints-check'):
    a('add chain %s %s' % (T, c))
a('add rule %s nat-prerouting jump services' % T)
if natout: a('add rule %s nat-output jump services' % T)
a('add rule %s filter-input ct state new jump service-endpoints-check' % T)
a('add rule %s filter-input ct state new jump nodeport-endpoints-check' % T)
a('add rule %s filter-forward ct state new jump service-endpoints-check' % T)
a('add rule %s filter-output ct state new jump service-endpoints-check' % T)
a('add rule %s filter-output ct state new jump nodeport-endpoints-check' % T)
a('add rule %s services ip daddr . meta l4proto . th dport vmap @service-ips' % T)
a('add rule %s services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports' % T)
a('add rule %s service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services' % T)
a('add rule %s nodeport-endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports' % T)
a('add rule %s reject-chain reject with tcp reset' % T)
a('add rule %s reject-chain reject' % T)
if layout != 'L0':
    a('add rule %s nat-postrouting-hairpin ip saddr . ip daddr @hairpin meta mark set meta mark | 0x00004000' % T)
MARK = 'meta mark set meta mark | 0x00004000'
def svc_rules(i, eps, mod):
    r = ['add rule %s svc-%d ip daddr %s ip saddr != 10.244.0.0/16 %s' % (T, i, cip(i), MARK)]
    if layout == 'L0':
        r.append('add rule %s svc-%d numgen random mod %d vmap { %s }' % (T, i, len(eps), ', '.join('%d : goto ep-%d-%s' % (k, i, e) for k, e in enumerate(eps))))
    elif layout == 'L1':
        r.append('add rule %s svc-%d meta l4proto tcp dnat ip to numgen random mod %d map @eps-%d' % (T, i, mod, i))
    else:
        r.append('add rule %s svc-%d meta l4proto tcp dnat ip to numgen random mod %d map { %s }' % (T, i, len(eps), ', '.join('%d : %s . 8080' % (k, e) for k, e in enumerate(eps))))
    return r
def ep_chain(i, e):
    return ['add chain %s ep-%d-%s' % (T, i, e),
            'add rule %s ep-%d-%s ip saddr %s %s' % (T, i, e, e, MARK),
            'add rule %s ep-%d-%s meta l4proto tcp dnat to %s:8080' % (T, i, e, e)]
elems = []
hp = []
for i in range(n):
    eps = [ep(i, e) for e in range(5)]
    a('add chain %s svc-%d' % (T, i))
    if layout == 'L0':
        for e in eps: L.extend(ep_chain(i, e))
    if layout == 'L1':
        a('add map %s eps-%d { typeof numgen random mod 2 : ip daddr . tcp dport ; }' % (T, i))
        a('add element %s eps-%d { %s }' % (T, i, ', '.join('%d : %s . 8080' % (k, e) for k, e in enumerate(eps))))
    L.extend(svc_rules(i, eps, 5))
    elems.append('%s . tcp . 80 : goto svc-%d' % (cip(i), i))
    hp.extend('%s . %s' % (e, e) for e in eps)
for k in range(0, len(elems), 500):
    a('add element %s service-ips { %s }' % (T, ', '.join(elems[k:k + 500])))
if layout != 'L0':
    for k in range(0, len(hp), 1000):
        a('add element %s hairpin { %s }' % (T, ', '.join(hp[k:k + 1000])))
open(out + '/cold.nft', 'w').write('\n'.join(L) + '\n')
# changes: service 7+13r, endpoint 0 -> 10.244.250.r
def change(r):
    i = 7 + 13 * r
    old = [ep(i, e) for e in range(5)]
    new = ['10.244.250.%d' % (r + 1)] + old[1:]
    C = []
    if layout == 'L0':
        C += ['flush chain %s svc-%d' % (T, i)]
        C += ep_chain(i, new[0])
        C += svc_rules(i, new, 5)
        C += ['flush chain %s ep-%d-%s' % (T, i, old[0]), 'delete chain %s ep-%d-%s' % (T, i, old[0])]
    elif layout == 'L1':
        C += ['delete element %s eps-%d { 0 : %s . 8080 }' % (T, i, old[0]),
              'add element %s eps-%d { 0 : %s . 8080 }' % (T, i, new[0])]
    else:
        C += ['flush chain %s svc-%d' % (T, i)] + svc_rules(i, new, 5)
    if layout != 'L0':
        C += ['delete element %s hairpin { %s . %s }' % (T, old[0], old[0]),
              'add element %s hairpin { %s . %s }' % (T, new[0], new[0])]
    return C
import os
R0=int(os.environ.get('R0','0'))
for r in range(R0, R0+3):
    open(out + '/change%d.nft' % (r-R0), 'w').write('\n'.join(change(r)) + '\n')
# count change (L1): 5 -> 4 endpoints of service 100+r : rule rewrite
for r in range(R0, R0+3):
    i = 100 + r
    eps = [ep(i, e) for e in range(5)]
    C = []
    if layout == 'L1':
        C += ['flush chain %s svc-%d' % (T, i)] + svc_rules(i, eps[:4], 4)
        C += ['delete element %s eps-%d { 4 : %s . 8080 }' % (T, i, eps[4])]
    elif layout == 'L2':
        C += ['flush chain %s svc-%d' % (T, i)] + svc_rules(i, eps[:4], 4)
    else:
        C += ['flush chain %s svc-%d' % (T, i)] + svc_rules(i, eps[:4], 4)
        C += ['flush chain %s ep-%d-%s' % (T, i, eps[4]), 'delete chain %s ep-%d-%s' % (T, i, eps[4])]
    if layout != 'L0':
        C += ['delete element %s hairpin { %s . %s }' % (T, eps[4], eps[4])]
    open(out + '/count%d.nft' % (r-R0), 'w').write('\n'.join(C) + '\n')
# plain non-verdict element only (control)
open(out + '/elem.nft', 'w').write('add element %s no-endpoint-nodeports { tcp . 31999 : drop }\ndelete element %s no-endpoint-nodeports { tcp . 31999 : drop }\n' % (T, T))
open(out + '/vmapgoto.nft', 'w').write('add element %s service-ips { 10.96.250.1 . tcp . 80 : goto svc-1 }\n' % T)
