#!/bin/bash
# run.sh DIR : cold load + change timings in a fresh netns
d=$1; ns=skiff-perf-$(basename $d)
ip netns del $ns 2>/dev/null; ip netns add $ns
s=$(date +%s.%N); ip netns exec $ns nft -f $d/cold.nft || echo COLD FAILED; e=$(date +%s.%N)
echo "$d cold nft -f: $(echo "$e - $s" | bc) s"
commit() { # kernel time of the batch sendmsg
  ip netns exec $ns strace -T -e trace=sendmsg nft -f $1 2>&1 >/dev/null | grep -o '<[0-9.]*>' | tr -d '<>' | sort -g | tail -1; }
for f in elem vmapgoto change0 change1 change2 count0 count1 count2 add0 add1 add2 newcount; do
  [ -f $d/$f.nft ] || continue
  t=$(commit $d/$f.nft); echo "$d $f commit_s=$t"
done
[ -n "$KEEP" ] || ip netns del $ns
