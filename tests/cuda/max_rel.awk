# The largest relative difference between the losses of two train.csv files pasted side by
# side (paste -d, A B | awk -F, -f max_rel.awk): columns 4 to the one before the last of
# each (train_loss, the terms, val_loss), relative to the larger magnitude of the pair.
NR > 1 {
  n = NF / 2
  for (c = 4; c < n; c++) {
    a = $c; b = $(c + n); d = a - b; if (d < 0) d = -d
    m = a < 0 ? -a : a; mb = b < 0 ? -b : b; if (mb > m) m = mb
    r = m > 0 ? d / m : d
    if (r > worst) worst = r
  }
}
END { printf "%.2e\n", worst + 0 }
