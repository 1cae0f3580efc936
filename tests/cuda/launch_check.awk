# launch_check.awk - checks manifest.json's "cuda" launch table against ptxas -v's log of the
# same model.cu (tests/cuda/target.sh): every launched kernel is an entry function ptxas
# compiled, with the static shared memory the manifest gives; with REGS=1, also the registers.
#   awk -v REGS=0 -f tests/cuda/launch_check.awk ptxas.log manifest.json
# prints "N launches agree" or each disagreement (exit status 1).
FNR == NR {
  if (match($0, /entry function '_Z[0-9]+/)) {
    s = substr($0, RSTART + 18); n = s + 0; sub(/^[0-9]+/, "", s); name = substr(s, 1, n)
  }
  if (name != "" && match($0, /Used [0-9]+ registers/)) regs[name] = substr($0, RSTART + 5, RLENGTH - 15) + 0
  if (name != "" && match($0, /[0-9]+ bytes smem/)) smem[name] = substr($0, RSTART, RLENGTH - 11) + 0
  next
}
/"kernel": / {
  k = $0; sub(/.*"kernel": "/, "", k); sub(/".*/, "", k)
  st = $0; sub(/.*"static_shared": /, "", st); st += 0
  r = $0; sub(/.*"registers": /, "", r); sub(/}.*/, "", r)
  launches++
  if (!(k in regs)) { print "manifest launches " k ", which ptxas did not compile"; bad = 1; next }
  if ((k in smem ? smem[k] : 0) != st) { print k ": static_shared " st " in the manifest, " smem[k] + 0 " bytes by ptxas"; bad = 1 }
  if (REGS && r != regs[k]) { print k ": registers " r " in the manifest, " regs[k] " by ptxas"; bad = 1 }
}
END {
  if (!launches) { print "no launches in the manifest"; exit 1 }
  if (bad) exit 1
  print launches " launches agree with ptxas"
}
