import sys, os
n, natout, out = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3]
T = 'ip skiff'
def cip(i): return '10.96.%d.%d' % (((i + 16) >> 8) & 255, (i + 16) & 255)
def ep(i, e):
    v = (10 << 24) | (244 << 16) | (i * 5 + e + 1)
    return '%d.%d.%d.%d' % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)
L = []; a = L.append
a('add table ' + T)
K = 'ip daddr . meta l4proto . th dport'
a('add map %s endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . tcp dport ; }' % T)
a('add set %s clusterips { type ipv4_addr . inet_proto . inet_service ; }' % T)
for c in (4, 5): a('add set %s count-%d { type ipv4_addr . inet_proto . inet_service ; }' % (T, c))
a('add set %s hairpin { type ipv4_addr . ipv4_addr ; }' % T)
a('add map %s no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }' % T)
a('add chain %s nat-prerouting { type nat hook prerouting priority dstnat ; }' % T)
if natout: a('add chain %s nat-output { type nat hook output priority -100 ; }' % T)
for c, h in (('filter-input', 'input'), ('filter-forward', 'forward'), ('filter-output', 'output')):
    a('add chain %s %s { type filter hook %s priority filter ; }' % (T, c, h))
a('add chain %s nat-postrouting-hairpin { type nat hook postrouting priority srcnat - 1 ; }' % T)
for c in ('services', 'reject-chain', 'service-endpoints-check', 'pick-4', 'pick-5'): a('add chain %s %s' % (T, c))
a('add rule %s nat-prerouting jump services' % T)
if natout: a('add rule %s nat-output jump services' % T)
for c in ('filter-input', 'filter-forward', 'filter-output'): a('add rule %s %s ct state new jump service-endpoints-check' % (T, c))
a('add rule %s service-endpoints-check %s vmap @no-endpoint-services' % (T, K))
a('add rule %s reject-chain reject with tcp reset' % T)
a('add rule %s reject-chain reject' % T)
a('add rule %s nat-postrouting-hairpin ip saddr . ip daddr @hairpin meta mark set meta mark | 0x00004000' % T)
a('add rule %s services %s @clusterips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000' % (T, K))
for c in (4, 5):
    a('add rule %s services %s @count-%d goto pick-%d' % (T, K, c, c))
    a('add rule %s pick-%d meta l4proto tcp dnat ip to %s . numgen random mod %d map @endpoints' % (T, c, K, c))
E = []; C = []; H = []
for i in range(n):
    k = '%s . tcp . 80' % cip(i)
    C.append(k)
    E.extend('%s . %d : %s . 8080' % (k, s, ep(i, s)) for s in range(5))
    H.extend('%s . %s' % (ep(i, s), ep(i, s)) for s in range(5))
def chunks(name, xs, m=1000):
    for j in range(0, len(xs), m): a('add element %s %s { %s }' % (T, name, ', '.join(xs[j:j + m])))
chunks('clusterips', C); chunks('count-5', C); chunks('endpoints', E); chunks('hairpin', H)
open(out + '/cold.nft', 'w').write('\n'.join(L) + '\n')
for r in range(3):
    i = 7 + 13 * r; k = '%s . tcp . 80' % cip(i); old = ep(i, 0); new = '10.244.250.%d' % (r + 1)
    open(out + '/change%d.nft' % r, 'w').write('\n'.join([
        'delete element %s endpoints { %s . 0 : %s . 8080 }' % (T, k, old),
        'add element %s endpoints { %s . 0 : %s . 8080 }' % (T, k, new),
        'delete element %s hairpin { %s . %s }' % (T, old, old),
        'add element %s hairpin { %s . %s }' % (T, new, new)]) + '\n')
    i = 100 + r; k = '%s . tcp . 80' % cip(i); e4 = ep(i, 4)
    open(out + '/count%d.nft' % r, 'w').write('\n'.join([
        'delete element %s count-5 { %s }' % (T, k), 'add element %s count-4 { %s }' % (T, k),
        'delete element %s endpoints { %s . 4 : %s . 8080 }' % (T, k, e4),
        'delete element %s hairpin { %s . %s }' % (T, e4, e4)]) + '\n')
    i = n + r; k = '%s . tcp . 80' % cip(i)
    open(out + '/add%d.nft' % r, 'w').write('\n'.join([
        'add element %s clusterips { %s }' % (T, k), 'add element %s count-5 { %s }' % (T, k),
        'add element %s endpoints { %s }' % (T, ', '.join('%s . %d : 10.244.251.%d . 8080' % (k, s, 10 * r + s) for s in range(5))),
        'add element %s hairpin { %s }' % (T, ', '.join('10.244.251.%d . 10.244.251.%d' % (10 * r + s, 10 * r + s) for s in range(5)))]) + '\n')
open(out + '/newcount.nft', 'w').write('add chain %s pick-7\nadd rule %s pick-7 meta l4proto tcp dnat ip to %s . numgen random mod 7 map @endpoints\nadd set %s count-7 { type ipv4_addr . inet_proto . inet_service ; }\nadd rule %s services %s @count-7 goto pick-7\n' % (T, T, K, T, T, K))
open(out + '/elem.nft', 'w').write('add element %s no-endpoint-services { 10.96.250.1 . tcp . 80 : drop }\ndelete element %s no-endpoint-services { 10.96.250.1 . tcp . 80 : drop }\n' % (T, T))
